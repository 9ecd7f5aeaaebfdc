"""Small helpers that several modules need exactly the same way: atomic writes, file digests, spreadsheet-safe
and Markdown cells, CLI numbers, line splitting."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Temp file in the same folder, fsync, then os.replace: readers see the old file or the new one, never half.

    Text is written as UTF-8. The file is world-readable (0644), as reports and settings are meant to be read.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes it private
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB pieces (weights files run to gigabytes)."""
    hasher = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def markdown_cell(text: Any) -> str:
    """A value safe inside a Markdown table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


# A cell that starts like this is run as a formula by Excel, LibreOffice and Google Sheets (full-width forms
# too, which some of them convert); OWASP's advice for CSV injection: prefix it with a single quote.
# formula starters (ASCII and full-width), and the characters a spreadsheet may skip before one (ASVS 1.2.10)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\x00", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_cell(value: Any) -> str:
    """A value for a CSV/TSV cell that a spreadsheet shows as text and never evaluates.

    Questions and keywords come from users, so `=HYPERLINK(...)` or `@SUM(...)` can be one; prefixed with
    `'` it is shown as written. Write such files with every field quoted (csv.QUOTE_ALL) where the format
    allows quotes.
    """
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def split_lines(text: str) -> list[str]:
    """Lines split on LF only, each without one trailing CR (CRLF files); no empty line after the last LF.

    LF only, so line numbers match an editor's (`str.splitlines` also splits on U+2028, U+0085...).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line starts no new one
    return [line.removesuffix("\r") for line in lines]
