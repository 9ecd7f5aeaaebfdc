"""Bulk prediction (`python -m keyword_extractor.inference.predict`): .txt and .tsv input, resuming, bad input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.predict import InputError, predict_file, read_questions
from tests.conftest import TEST_TSV, run_module

QUESTIONS = load_pairs(TEST_TSV)["query"].tolist()[:23]


class CountingExtractor:
    """The real extractor, recording which questions it was asked (to see what a resumed run recomputes)."""

    def __init__(self, extractor):
        self.extractor = extractor
        self.asked: list[str] = []

    def extract(self, questions, **options):
        self.asked.extend(questions)
        return self.extractor.extract(questions, **options)


@pytest.fixture(scope="module")
def extractor(tiny_model_dir):
    from keyword_extractor.inference.extractor import KeywordExtractor

    return KeywordExtractor(tiny_model_dir)


@pytest.fixture()
def questions_txt(tmp_path) -> Path:
    path = tmp_path / "questions.txt"
    # CRLF, a BOM and blank lines, as a file saved on Windows might have
    lines = [QUESTIONS[0], "", *QUESTIONS[1:], "   "]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_txt_input_gives_one_line_per_question_in_order(extractor, questions_txt, tmp_path):
    output = tmp_path / "out" / "keywords.jsonl"
    before = digest(questions_txt)
    assert predict_file("unused", questions_txt, output, batch_size=5, extractor=extractor) == (0, len(QUESTIONS))
    rows = records(output)
    assert [r["query"] for r in rows] == QUESTIONS
    assert [r["line"] for r in rows] == [1, *range(3, len(QUESTIONS) + 2)]  # line 2 is blank
    assert [r["keywords"] for r in rows] == extractor.extract(QUESTIONS)
    assert all(isinstance(k, str) for r in rows for k in r["keywords"])
    assert digest(questions_txt) == before  # the input is never written


def test_tsv_input_reads_the_chosen_column(extractor, tmp_path):
    path = tmp_path / "questions.tsv"
    path.write_text("id\tquestion\n" + "".join(f"{i}\t{q}\n" for i, q in enumerate(QUESTIONS[:7])), encoding="utf-8")
    output = tmp_path / "out.jsonl"
    predict_file("unused", path, output, column="question", extractor=extractor)
    rows = records(output)
    assert [r["query"] for r in rows] == QUESTIONS[:7] and [r["line"] for r in rows] == list(range(2, 9))
    with pytest.raises(InputError, match=r"no column 'query' in the header \(found 'id', 'question'\)"):
        read_questions(path)


def test_a_resumed_run_writes_only_the_remainder(extractor, questions_txt, tmp_path):
    complete = tmp_path / "complete.jsonl"
    predict_file("unused", questions_txt, complete, batch_size=4, extractor=extractor)
    expected = complete.read_bytes()
    # An interrupted run: 9 whole lines, then a line cut off in the middle of a UTF-8 character.
    lines = expected.split(b"\n")
    partial = tmp_path / "partial.jsonl"
    partial.write_bytes(b"\n".join(lines[:9]) + b"\n" + lines[9][: len(lines[9]) // 2 + 1])
    counting = CountingExtractor(extractor)
    assert predict_file("unused", questions_txt, partial, batch_size=4, extractor=counting) == (9, len(QUESTIONS) - 9)
    assert counting.asked == QUESTIONS[9:]
    assert partial.read_bytes() == expected  # every question once, in order
    again = CountingExtractor(extractor)
    assert predict_file("unused", questions_txt, partial, extractor=again) == (len(QUESTIONS), 0)
    assert again.asked == [] and partial.read_bytes() == expected


def test_an_output_of_another_input_is_not_continued(extractor, questions_txt, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("\n".join(reversed(QUESTIONS)) + "\n", encoding="utf-8")
    output = tmp_path / "out.jsonl"
    predict_file("unused", other, output, extractor=extractor)
    written = output.read_bytes()
    with pytest.raises(InputError, match="answers another input"):
        predict_file("unused", questions_txt, output, extractor=extractor)
    assert output.read_bytes() == written
    predict_file("unused", questions_txt, output, overwrite=True, extractor=extractor)
    assert [r["query"] for r in records(output)] == QUESTIONS


def test_cli_runs_and_resumes(tiny_model_dir, questions_txt, tmp_path):
    output = tmp_path / "keywords.jsonl"
    args = ["--model-dir", str(tiny_model_dir), "--input", str(questions_txt), "--output", str(output)]
    done = run_module("keyword_extractor.inference.predict", *args, "--batch-size", "8", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {len(QUESTIONS)} question(s)" in done.stdout and len(records(output)) == len(QUESTIONS)
    again = run_module("keyword_extractor.inference.predict", *args, timeout=300)
    assert again.returncode == 0 and f"wrote 0 question(s) to {output} ({len(QUESTIONS)} already there)" in again.stdout


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "file not found"),
        ("questions.csv", "a,b\n", "unsupported input type '.csv'"),
        ("questions.txt", "관세 환급은?\n".encode("cp949"), "not valid UTF-8"),
        ("questions.txt", "\n  \n", "no questions found"),
        ("questions.tsv", "keyword\tanswer\n관세\t환급\n", "no column 'query' in the header"),
        (
            "questions.tsv",
            "query\tkeyword\n관세 환급은?\t관세\textra\n",
            "line 2: expected 2 tab-separated fields, found 3",
        ),
    ],
)
def test_cli_explains_a_bad_input_and_exits_2(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    output = tmp_path / "out.jsonl"
    done = run_module(
        "keyword_extractor.inference.predict",
        "--model-dir",
        "unused",
        "--input",
        str(path),
        "--output",
        str(output),
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stderr.startswith("error: ")
    assert not output.exists()


def test_cli_refuses_to_write_over_its_input(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text("관세 환급은?\n", encoding="utf-8")
    done = run_module(
        "keyword_extractor.inference.predict", "--model-dir", "unused", "--input", str(path), "--output", str(path)
    )
    assert done.returncode == 2 and "must not be the input file" in done.stderr
    assert path.read_text(encoding="utf-8") == "관세 환급은?\n"


def test_cli_help_explains_the_options():
    done = run_module("keyword_extractor.inference.predict", "--help", timeout=120)
    assert done.returncode == 0
    for text in ("--model-dir", "--input", "--column", "--output", "--batch-size", "--overwrite", "Resumable", ".tsv"):
        assert text in done.stdout, text
