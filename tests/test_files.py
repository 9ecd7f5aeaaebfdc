"""keyword_extractor.common.files: the helpers every reader and writer shares."""

from __future__ import annotations

from keyword_extractor.common.files import markdown_cell, split_lines, spreadsheet_cell, write_atomic


def test_split_lines_counts_lines_as_an_editor_does():
    assert split_lines("") == []
    assert split_lines("a\nb") == ["a", "b"]
    assert split_lines("a\r\nb\r\n") == ["a", "b"]  # CRLF, and no phantom line after the last newline
    assert split_lines("a\n\nb\n") == ["a", "", "b"]  # a blank line in the middle stays, so numbers match
    assert split_lines("a\u2028b\x85c\n") == ["a\u2028b\x85c"]  # only LF ends a line
    assert split_lines("a\r\r\n") == ["a\r"]  # one CR per line belongs to the line ending


def test_cells_for_spreadsheets_and_markdown():
    assert spreadsheet_cell("=1+1").startswith("'")
    assert all(spreadsheet_cell(lead + "=1+1").startswith("'") for lead in ("\x00", "\n", "\r", "\t"))
    assert markdown_cell("a|b\nc") == "a\\|b c"


def test_write_atomic_replaces_whole_files(tmp_path):
    target = tmp_path / "out.json"
    write_atomic(target, "one")
    write_atomic(target, b"two")
    assert target.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["out.json"]
