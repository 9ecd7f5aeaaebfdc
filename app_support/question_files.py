"""Questions from an uploaded file (.txt, .csv, .tsv), with messages a person can act on.

Files come from spreadsheets more often than from editors, so the usual ways they go wrong are
named precisely: CP949/EUC-KR (the Korean Windows and Excel default) instead of UTF-8, an Excel
workbook renamed to .csv, a column that is not there, more questions than one upload may hold.

- `.txt`: one question per line, no header.
- `.csv`: comma-separated with a header row; fields with commas, quotes or line breaks in double quotes.
- `.tsv`: tab-separated with a header row and no quote processing (`"` is an ordinary character),
  like the project's data files, so `data/test.tsv` can be uploaded as is (column `query`).

UTF-8 with or without BOM is read, and UTF-16 with a BOM (Excel's "Unicode Text"); LF or CRLF.
Results go back out as CSV (UTF-8 with BOM, for Excel) or JSONL.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from keyword_extractor.common.files import split_lines, spreadsheet_cell
from keyword_extractor.text.keywords import format_keywords

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_QUESTIONS = 5_000
SUFFIXES = ("txt", "csv", "tsv")
# Column names that hold the questions in files people are likely to have; the first present is preselected.
QUESTION_COLUMNS = ("query", "question", "questions", "text", "질문", "문의", "질의")
_SHOWN_LINES = 5

FileKind = Literal["txt", "csv", "tsv"]


class QuestionFileError(ValueError):
    """The file cannot be used as it is; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Question:
    line: int  # where it starts in the file, 1-based, as an editor shows it
    text: str
    fields: tuple[str, ...] = ()  # every cell of its row (.csv/.tsv), so a download keeps the other columns


@dataclass(frozen=True)
class Questions:
    """The questions of one column, in file order; blank cells are skipped and counted."""

    items: list[Question]
    blank: int = 0
    columns: tuple[str, ...] = ()  # the file's header (.csv/.tsv); empty for .txt

    @property
    def texts(self) -> list[str]:
        return [question.text for question in self.items]


@dataclass(frozen=True)
class QuestionFile:
    """A decoded, split file; `columns` is empty for .txt (the whole line is the question)."""

    name: str
    kind: FileKind
    encoding: str
    columns: list[str] = field(default_factory=list)
    rows: list[tuple[int, list[str]]] = field(default_factory=list, repr=False)  # (line, fields)

    def default_column(self) -> str | None:
        """A column named like questions, else the first one; None for .txt."""
        if not self.columns:
            return None
        lowered = {name.strip().lower(): name for name in self.columns}
        return next((lowered[name] for name in QUESTION_COLUMNS if name in lowered), self.columns[0])

    def questions(self, column: str | None = None, max_questions: int = MAX_QUESTIONS) -> Questions:
        """The non-blank questions of `column` (ignored for .txt), at most `max_questions` of them."""
        if self.columns:
            if column is None:
                column = self.default_column()
            if column not in self.columns:
                found = ", ".join(f"'{name}'" for name in self.columns)
                raise QuestionFileError(f"{self.name} has no column '{column}'; its columns are {found}.")
            position = self.columns.index(column)
        else:
            position = 0
        items: list[Question] = []
        blank = 0
        for line, fields in self.rows:
            text = _clean(fields[position])
            if text:
                items.append(Question(line, text, tuple(fields) if self.columns else ()))
            else:
                blank += 1
        where = f" in column '{column}'" if self.columns else ""
        if not items:
            raise QuestionFileError(f"{self.name} has no questions{where}: every row is blank.")
        if len(items) > max_questions:
            raise QuestionFileError(
                f"{self.name} has {len(items):,} questions{where}; at most {max_questions:,} can be sent at once. "
                "Split it into smaller files."
            )
        return Questions(items, blank, tuple(self.columns))


def _clean(cell: str) -> str:
    # A BOM in the middle of a file (files pasted together) is invisible: drop it with the outer spaces.
    return cell.replace("\ufeff", "").strip()


def _kind(name: str) -> FileKind:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in SUFFIXES:
        shown = f".{suffix}" if suffix else "no extension"
        raise QuestionFileError(f"{name}: upload a .txt, .csv or .tsv file (this one has {shown}).")
    return suffix  # type: ignore[return-value]


def _looks_like_cp949(raw: bytes) -> bool:
    """Decodes as CP949 and its non-ASCII characters are mostly Hangul: Korean text in the Windows code page."""
    try:
        text = raw.decode("cp949")
    except UnicodeDecodeError:
        return False
    wide = [char for char in text if ord(char) > 127]
    hangul = sum(1 for char in wide if "\uac00" <= char <= "\ud7a3" or "\u3131" <= char <= "\u318e")
    return bool(wide) and hangul >= 0.5 * len(wide)


def decode(name: str, raw: bytes) -> tuple[str, str]:
    """(text, encoding name) of UTF-8 (BOM or not) or BOM-marked UTF-16; anything else is named and refused."""
    if raw.startswith(b"PK\x03\x04") or raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise QuestionFileError(
            f"{name} is an Excel workbook, not a text file: in Excel use Save As → 'CSV UTF-8 (Comma delimited)'."
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), "UTF-16"
        except UnicodeDecodeError:
            pass  # a BOM-like start of something else: the checks below name it
    if b"\x00" in raw:
        raise QuestionFileError(f"{name} looks like a binary file, not text: save the questions as UTF-8 text.")
    body, encoding = (raw[3:], "UTF-8 with BOM") if raw.startswith(codecs.BOM_UTF8) else (raw, "UTF-8")
    try:
        return body.decode("utf-8"), encoding
    except UnicodeDecodeError as error:
        if _looks_like_cp949(body):
            raise QuestionFileError(
                f"{name} looks like CP949/EUC-KR (the Korean Windows and Excel default), not UTF-8: save it as "
                "UTF-8 and upload it again (Excel: Save As → 'CSV UTF-8'; or `iconv -f cp949 -t utf-8`)."
            ) from error
        line, offset = body[: error.start].count(b"\n") + 1, error.start + len(raw) - len(body)
        raise QuestionFileError(
            f"{name} is not UTF-8 text (invalid byte at line {line}, byte offset {offset}): "
            "save it as UTF-8 and upload it again."
        ) from error


def _txt_rows(text: str) -> list[tuple[int, list[str]]]:
    return [(number, [line]) for number, line in enumerate(split_lines(text), start=1)]


def _table_rows(name: str, kind: FileKind, text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if kind == "csv":
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    records: list[tuple[int, list[str]]] = []
    previous = 0
    try:
        for fields in reader:
            records.append((previous + 1, fields))
            previous = reader.line_num
    except csv.Error as error:
        hint = ' (a field with a comma, a quote or a line break must be in double quotes, "" for a quote)'
        message = f"{name}, line {previous + 1}: not valid CSV: {error}{hint if kind == 'csv' else ''}."
        raise QuestionFileError(message) from error
    if not records or not any(cell.strip() for cell in records[0][1]):
        raise QuestionFileError(f"The first line of {name} is empty: it must be the header row naming the columns.")
    header = [_clean(cell) or f"column {i}" for i, cell in enumerate(records[0][1], start=1)]
    columns = [
        col if header.count(col) == 1 else f"{col} ({header[:i].count(col) + 1})" for i, col in enumerate(header)
    ]
    rows = [(line, cells) for line, cells in records[1:] if cells]  # csv gives [] for an empty line
    ragged = [line for line, cells in rows if len(cells) != len(columns)]
    if ragged:
        shown = ", ".join(str(line) for line in ragged[:_SHOWN_LINES]) + (" …" if len(ragged) > _SHOWN_LINES else "")
        separator = "commas" if kind == "csv" else "tabs"
        raise QuestionFileError(
            f"{name}: {len(ragged):,} row(s) do not have the header's {len(columns)} field(s) (line {shown}). "
            f"Check for {separator} inside questions"
            + (": such questions must be in double quotes." if kind == "csv" else ": tabs cannot occur inside a field.")
        )
    return columns, rows


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MB" if count >= 2**20 else f"{count / 2**10:.1f} KB"


def read_question_file(name: str, raw: bytes, max_bytes: int = MAX_FILE_BYTES) -> QuestionFile:
    """Check size and type, decode and split an uploaded file; choose the column afterwards."""
    kind = _kind(name)
    if len(raw) > max_bytes:
        raise QuestionFileError(
            f"{name} is {_size(len(raw))}; the limit is {_size(max_bytes)}. Split it into smaller files."
        )
    text, encoding = decode(name, raw)
    if not text.strip():
        raise QuestionFileError(f"{name} is empty.")
    if kind == "txt":
        return QuestionFile(name, kind, encoding, [], _txt_rows(text))
    columns, rows = _table_rows(name, kind, text)
    return QuestionFile(name, kind, encoding, columns, rows)


def too_long(questions: Questions, max_chars: int) -> str | None:
    """A message naming the questions longer than the service accepts, or None when all fit."""
    long = [question.line for question in questions.items if len(question.text) > max_chars]
    if not long:
        return None
    shown = ", ".join(str(line) for line in long[:_SHOWN_LINES]) + (" …" if len(long) > _SHOWN_LINES else "")
    return (
        f"{len(long):,} question(s) are longer than the {max_chars:,} characters the service accepts "
        f"(line {shown}). Shorten or remove them and upload the file again."
    )


def results_csv(questions: Questions, keywords: Sequence[Sequence[str]]) -> bytes:
    """line, the uploaded file's own columns (or `question` for .txt), keywords joined by ', ' like the data files.

    UTF-8 with BOM so that Excel keeps the Hangul; every field quoted and every cell that a spreadsheet would
    run as a formula prefixed with `'` (`files.spreadsheet_cell`): questions and keywords come from users.
    """
    columns = list(questions.columns) or ["question"]
    keywords_column = "keywords"
    while keywords_column in columns:  # the upload has its own 'keywords' column: keep it, add ours beside
        keywords_column = f"extracted {keywords_column}"
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    writer.writerow([spreadsheet_cell(name) for name in ["line", *columns, keywords_column]])
    for question, found in zip(questions.items, keywords, strict=True):
        cells = list(question.fields) if questions.columns else [question.text]
        cells += [""] * (len(columns) - len(cells))  # a short row: its missing cells stay empty
        writer.writerow([spreadsheet_cell(cell) for cell in [question.line, *cells, format_keywords(found)]])
    return buffer.getvalue().encode("utf-8-sig")


def results_jsonl(questions: Questions, keywords: Sequence[Sequence[str]]) -> bytes:
    """One JSON object per line: {"line", "question", "keywords": [...]}, UTF-8, Hangul as is."""
    rows = (
        json.dumps({"line": question.line, "question": question.text, "keywords": list(found)}, ensure_ascii=False)
        for question, found in zip(questions.items, keywords, strict=True)
    )
    return "".join(f"{row}\n" for row in rows).encode("utf-8")
