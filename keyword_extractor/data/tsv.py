"""Reading `query<TAB>keyword` files exactly as LABELLING.md defines them.

The reader never raises on the first problem it sees: it returns every
structural problem with its line number so that validation can report them all.
`load_pairs` is the strict entry point for training and evaluation.

Semantics: UTF-8 with or without BOM, LF or CRLF line ends, no quote processing
(`"` is an ordinary character), lines split on `\\n` only so that line numbers
match what an editor shows (`str.splitlines` would also split on U+2028, U+0085...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from keyword_extractor.common.files import split_lines

REQUIRED_COLUMNS = ("query", "keyword")
_UTF8_BOM = b"\xef\xbb\xbf"
_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data file, located precisely enough to fix it."""

    file: str
    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"


class DataFileError(ValueError):
    """Raised when a data file cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:_SHOWN])
        extra = len(self.problems) - _SHOWN
        more = f"\n  … and {extra} more" if extra > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the data:\n{shown}{more}")

    def __reduce__(self):
        # Rebuild from the problems, not from the message, so the error survives pickling (Prefect, multiprocessing).
        return (type(self), (self.problems,))


@dataclass
class TsvTable:
    """Rows that could be parsed (with their line numbers) and the problems met."""

    path: Path
    rows: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {"query": pd.Series([], dtype=str), "keyword": pd.Series([], dtype=str), "line": pd.Series([], dtype="int64")}
    )


# byte-order marks of the encodings a spreadsheet or an editor may save "Unicode text" in; UTF-32's first
_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _decode(path: Path, raw: bytes) -> tuple[str | None, Problem | None]:
    for bom, encoding in _WIDE_BOMS:
        if raw.startswith(bom):
            message = (
                f"the file is {encoding} (it starts with a {encoding} byte-order mark), not UTF-8: re-save it as "
                f"UTF-8, or convert it with `iconv -f {encoding.lower()} -t utf-8 in.tsv > out.tsv`"
            )
            return None, Problem(str(path), 1, None, message)
    body = raw.removeprefix(_UTF8_BOM)
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError as error:
        offset = error.start + (len(raw) - len(body))
        line = body[: error.start].count(b"\n") + 1
        try:
            body.decode("cp949")
            hint = (
                " It decodes as CP949 (EUC-KR), which Excel uses for Korean: re-save it as"
                " 'CSV UTF-8', or convert it with `iconv -f cp949 -t utf-8 in.tsv > out.tsv`."
            )
        except UnicodeDecodeError:
            hint = " Re-save the file as UTF-8."
        message = f"the file is not valid UTF-8 (byte offset {offset}).{hint}"
        return None, Problem(str(path), line, None, message)


def _other_separator(header: list[str]) -> str | None:
    """'comma' or 'semicolon' when a one-column header holds the required names split by that character."""
    if len(header) != 1:
        return None
    for character, name in ((",", "comma"), (";", "semicolon")):
        names = [part.strip().strip('"') for part in header[0].split(character)]
        if all(required in names for required in REQUIRED_COLUMNS):
            return name
    return None


def _header_problems(path: Path, lines: list[str]) -> list[Problem]:
    if not "".join(lines).strip():
        return [Problem(str(path), 1, None, "the file is empty; expected a header 'query<TAB>keyword'")]
    if not lines[0].strip():
        return [Problem(str(path), 1, None, "the first line is blank; it must be the header 'query<TAB>keyword'")]
    if len(lines) == 1 and "\r" in lines[0].rstrip("\r"):
        message = (
            "the lines end in CR only (old Mac line endings), so the file reads as one line; "
            "convert it with `tr '\\r' '\\n' < in.tsv > out.tsv` or re-save it with LF or CRLF line endings"
        )
        return [Problem(str(path), 1, None, message)]
    header = [name.strip() for name in lines[0].split("\t")]
    found = ", ".join(repr(name) for name in header)
    separator = _other_separator(header)
    if separator:
        message = (
            f"the header is {lines[0].strip()!r}: the file looks {separator}-separated; this project reads "
            "tab-separated files ('query<TAB>keyword', keywords joined by ', ' inside the keyword column): "
            "export it as tab-separated text (Excel: 'Text (Tab delimited)'), or convert it with pandas "
            "(`pd.read_csv(path).to_csv(out, sep='\\t', index=False)`)"
        )
        return [Problem(str(path), 1, None, message)]
    problems = [
        Problem(
            str(path),
            1,
            name,
            f"missing column '{name}' in the header (found {found}); the header must be 'query<TAB>keyword'",
        )
        for name in REQUIRED_COLUMNS
        if name not in header
    ]
    problems += [
        Problem(str(path), 1, name, f"column '{name}' appears more than once in the header (found {found})")
        for name in REQUIRED_COLUMNS
        if header.count(name) > 1
    ]
    return problems


def parse_tsv(path: str | Path, raw: bytes) -> TsvTable:
    """Parse the bytes of a data file (named `path` in messages); collect structural problems."""
    path = Path(path)
    text, problem = _decode(path, raw)
    if problem is not None:
        return TsvTable(path, _empty_rows(), [problem])
    lines = split_lines(text)
    problems = _header_problems(path, lines)
    if problems:
        return TsvTable(path, _empty_rows(), problems)
    header = [name.strip() for name in lines[0].split("\t")]
    positions = {name: header.index(name) for name in REQUIRED_COLUMNS}
    records: list[tuple[str, str, int]] = []
    for number, line in enumerate(lines[1:], start=2):
        if "\t" not in line and not line.strip():
            continue  # a blank line carries no row; a line of tabs and spaces is a row of empty cells
        fields = line.split("\t")
        if len(fields) != len(header):
            problems.append(
                Problem(
                    str(path),
                    number,
                    None,
                    f"expected {len(header)} tab-separated fields, found {len(fields)}"
                    " (fields must not contain tabs; every row needs a query and a keyword list)",
                )
            )
            continue
        records.append((fields[positions["query"]], fields[positions["keyword"]], number))
    if not records:
        return TsvTable(path, _empty_rows(), problems)
    rows = pd.DataFrame.from_records(records, columns=["query", "keyword", "line"])
    return TsvTable(path, rows, problems)


def read_tsv(path: str | Path) -> TsvTable:
    """Parse a data file without quote processing; collect structural problems."""
    path = Path(path)
    if not path.is_file():
        return TsvTable(path, _empty_rows(), [Problem(str(path), None, None, missing_file_message(path))])
    return parse_tsv(path, path.read_bytes())


def missing_file_message(path: Path) -> str:
    """Why `path` cannot be read as a data file: not there, or a folder."""
    return "a directory, not a data file (give a 'query<TAB>keyword' .tsv)" if path.is_dir() else "file not found"


def load_pairs(path: str | Path) -> pd.DataFrame:
    """Strictly read a data file into `query`, `keyword`, `line`; raise on any structural problem."""
    table = read_tsv(path)
    if table.problems:
        raise DataFileError(table.problems)
    return table.rows
