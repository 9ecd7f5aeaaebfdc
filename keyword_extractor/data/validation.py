"""Step 1 of the pipeline: check the train/test files before anything is trained on them.

Every problem is reported at once, with file, line (as an editor shows it: the header is
line 1) and column, so a labeller can fix a whole file in one pass. Grounding and
statistics are warnings: they describe the data but do not stop the pipeline.

    python -m keyword_extractor.data.validation --train data/train.tsv --test data/test.tsv \
        --report-dir artifacts/validation
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from keyword_extractor.data.tsv import Problem, TsvTable, parse_tsv, read_tsv
from keyword_extractor.data.validation_report import (
    ValidationReport,
    write_reports,
)
from keyword_extractor.text.keywords import (
    DEFAULT_MAX_KEYWORDS,
    DEFAULT_MAX_QUERY_CHARS,
    is_grounded,
    normalize,
    parse_keywords,
)

_GROUNDING_EXAMPLES = 5
# --- the schema -------------------------------------------------------------------------------


def _has_keywords(cell: str) -> bool:
    """Blank cells are reported by `not_blank`; this catches cells of commas only."""
    return not cell.strip() or any(parse_keywords(cell))


_BIDI_CONTROLS = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))


def control_characters(text: str, every_format_character: bool = False) -> list[str]:
    """Control characters (NUL, ESC, …) and bidi overrides, as U+XXXX: they hide or rewrite what a cell shows.

    `every_format_character` adds every invisible format character (Cf: zero-width spaces and joiners, …),
    which a data file may carry (they are normalised away before comparing) but a new correction may not.
    """
    found = {
        c
        for c in text
        if unicodedata.category(c) == "Cc"
        or 0x202A <= ord(c) <= 0x202E
        or 0x2066 <= ord(c) <= 0x2069
        or (every_format_character and unicodedata.category(c) == "Cf")
    }
    return [f"U+{ord(c):04X}" for c in sorted(found)]


def _no_control_characters(cell: str) -> bool:
    return not control_characters(cell)


def _no_empty_items(cell: str) -> bool:
    items = parse_keywords(cell)
    return not any(items) or all(items)


def build_schema(
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS, max_keywords: int = DEFAULT_MAX_KEYWORDS
) -> pa.DataFrameSchema:
    """The row rules of LABELLING.md as a pandera schema over `query`, `keyword`, `line`."""
    not_blank = pa.Check(lambda s: s.str.strip() != "", name="not_blank")
    return pa.DataFrameSchema(
        {
            "query": pa.Column(
                str,
                [
                    not_blank,
                    pa.Check(_no_control_characters, element_wise=True, name="control_characters"),
                    pa.Check(lambda s: s.str.len() <= max_query_chars, name="max_query_chars"),
                ],
            ),
            "keyword": pa.Column(
                str,
                [
                    not_blank,
                    pa.Check(_no_control_characters, element_wise=True, name="control_characters"),
                    pa.Check(_has_keywords, element_wise=True, name="has_keywords"),
                    pa.Check(_no_empty_items, element_wise=True, name="no_empty_items"),
                    pa.Check(
                        lambda cell: sum(1 for k in parse_keywords(cell) if k) <= max_keywords,
                        element_wise=True,
                        name="max_keywords",
                    ),
                ],
            ),
            "line": pa.Column(int),
        },
        strict=False,
        name="query-keyword pairs",
    )


def _explain(check: str, column: str, value: str, limits: dict[str, int]) -> str:
    """Turn a failed check and the offending cell into a sentence a labeller can act on."""
    if check == "not_blank" and column == "keyword":
        return f"the keyword cell is empty or only whitespace; write 1 to {limits['max_keywords']} keywords"
    if check == "not_blank":
        return "the query cell is empty or only whitespace"
    if check == "control_characters":
        found = ", ".join(control_characters(value))
        return f"the {column} cell contains control characters ({found}): remove them (they hide what the cell shows)"
    if check == "max_query_chars":
        return f"the query has {len(value)} characters; at most {limits['max_query_chars']} are allowed"
    if check == "has_keywords":
        return (
            f"the keyword list {value!r} has no keywords; write 1 to {limits['max_keywords']} keywords joined by ', '"
        )
    if check == "no_empty_items":
        positions = ", ".join(str(i) for i, item in enumerate(parse_keywords(value), start=1) if not item)
        return (
            f"the keyword list {value!r} has an empty item (position {positions}): remove the doubled or trailing comma"
        )
    if check == "max_keywords":
        count = sum(1 for k in parse_keywords(value) if k)
        return f"the row has {count} keywords; at most {limits['max_keywords']} are allowed"
    return f"failed check '{check}' (value {value!r})"


def _schema_problems(table: TsvTable, limits: dict[str, int]) -> list[Problem]:
    """Run the schema lazily and turn every failure case into a located Problem."""
    if table.rows.empty:
        return []
    schema = build_schema(limits["max_query_chars"], limits["max_keywords"])
    try:
        schema.validate(table.rows, lazy=True)
    except SchemaErrors as errors:
        return [_failure_problem(table, case, limits) for case in errors.failure_cases.to_dict("records")]
    return []


def row_problems(
    query: str,
    keyword_cell: str,
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
    max_keywords: int = DEFAULT_MAX_KEYWORDS,
) -> list[str]:
    """One row through the same schema as a file, with the same sentences: for rows that come one at a time."""
    rows = pd.DataFrame({"query": [query], "keyword": [keyword_cell], "line": [1]})
    limits = {"max_query_chars": max_query_chars, "max_keywords": max_keywords}
    try:
        build_schema(max_query_chars, max_keywords).validate(rows, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases.to_dict("records")
        return [_explain(str(c["check"]), str(c["column"]), str(rows.loc[0, c["column"]]), limits) for c in cases]
    return []


def _failure_problem(table: TsvTable, case: dict[str, Any], limits: dict[str, int]) -> Problem:
    column = case.get("column")
    index = case.get("index")
    if index is None or pd.isna(index) or column not in table.rows.columns:
        return Problem(str(table.path), None, column, f"failed check '{case.get('check')}': {case.get('failure_case')}")
    row = table.rows.loc[index]
    message = _explain(str(case["check"]), column, str(row[column]), limits)
    return Problem(str(table.path), int(row["line"]), column, message)


# --- rules across rows and files -------------------------------------------------------------


def _query_lines(table: TsvTable) -> dict[str, list[int]]:
    """Normalised query → the lines it is on, in file order."""
    lines: dict[str, list[int]] = {}
    for query, line in zip(table.rows["query"], table.rows["line"]):
        key = normalize(query)
        if key:
            lines.setdefault(key, []).append(int(line))
    return lines


def _duplicate_problems(table: TsvTable, by_query: dict[str, list[int]]) -> list[Problem]:
    problems = []
    for lines in by_query.values():
        for line in lines[1:]:
            problems.append(
                Problem(
                    str(table.path),
                    line,
                    "query",
                    f"duplicate query: the same question is on line {lines[0]} (compared after normalising spaces and "
                    "Unicode); keep one row",
                )
            )
    return problems


def _leakage_problems(
    train: TsvTable, train_lines: dict[str, list[int]], test: TsvTable, test_lines: dict[str, list[int]]
) -> list[Problem]:
    problems = []
    for query, lines in test_lines.items():
        if query in train_lines:
            train_at = ", ".join(str(n) for n in train_lines[query])
            problems.append(
                Problem(
                    str(test.path),
                    lines[0],
                    "query",
                    f"train/test leakage: this query is also in {train.path} line {train_at}; "
                    "remove it from one of the two files",
                )
            )
    return problems


# --- warnings and statistics -----------------------------------------------------------------


def _ungrounded(table: TsvTable) -> tuple[int, list[tuple[int, str, str]]]:
    """Count keywords that do not occur in their query; keep every example (line, keyword, query)."""
    total = 0
    misses: list[tuple[int, str, str]] = []
    for query, cell, line in zip(table.rows["query"], table.rows["keyword"], table.rows["line"]):
        for keyword in filter(None, parse_keywords(cell)):
            total += 1
            if not is_grounded(keyword, query):
                misses.append((int(line), keyword, query))
    return total, misses


def _file_stats(table: TsvTable, digest: str | None, grounding: tuple[int, list]) -> dict[str, Any]:
    rows = table.rows
    counts = rows["keyword"].map(lambda cell: sum(1 for k in parse_keywords(cell) if k))
    lengths = rows["query"].str.len()
    total, misses = grounding
    stats: dict[str, Any] = {
        "rows": len(rows),
        "sha256": digest,
        "keywords": int(total),
        "ungrounded_keywords": len(misses),
        "ungrounded_share": round(len(misses) / total, 4) if total else 0.0,
    }
    if len(rows):
        stats["keywords_per_row"] = {
            "mean": round(float(counts.mean()), 3),
            "min": int(counts.min()),
            "max": int(counts.max()),
        }
        stats["query_chars"] = {f"p{q}": round(float(lengths.quantile(q / 100)), 1) for q in (50, 90, 99)}
    return stats


def _grounding_warning(table: TsvTable, grounding: tuple[int, list]) -> str | None:
    total, misses = grounding
    if not misses:
        return None
    examples = "; ".join(f"line {line}: {kw!r} not in {query!r}" for line, kw, query in misses[:_GROUNDING_EXAMPLES])
    return (
        f"{table.path}: {len(misses)} of {total} keywords ({len(misses) / total:.1%}) do not occur verbatim in "
        f"their query, e.g. {examples}"
    )


# --- digests and files -----------------------------------------------------------------------


def _sha256(raw: bytes | None) -> str | None:
    return hashlib.sha256(raw).hexdigest() if raw is not None else None


def combined_digest(file_digests: dict[str, str | None]) -> str:
    """One sha256 for the data set: over each role and its file's sha256, so it changes with any byte."""
    hasher = hashlib.sha256()
    for role in sorted(file_digests):
        hasher.update(f"{role}:{file_digests[role] or 'missing'}\n".encode())
    return hasher.hexdigest()


def _read(path: Path) -> tuple[bytes | None, TsvTable]:
    """Read the bytes once: the digest and the parse describe the same content."""
    if not path.is_file():
        return None, read_tsv(path)  # reports "file not found" or a directory
    raw = path.read_bytes()
    table = parse_tsv(path, raw)
    if not table.problems and table.rows.empty:
        table.problems.append(Problem(str(path), None, None, "the file has a header but no data rows"))
    return raw, table


# --- the entry point -------------------------------------------------------------------------


def validate(
    train_path: str | Path,
    test_path: str | Path,
    report_dir: str | Path,
    *,
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
    max_keywords: int = DEFAULT_MAX_KEYWORDS,
) -> ValidationReport:
    """Check both files against LABELLING.md, write the reports, return what was found (never raises on bad data)."""
    limits = {"max_query_chars": max_query_chars, "max_keywords": max_keywords}
    raws, tables = {}, {}
    for role, path in (("train", Path(train_path)), ("test", Path(test_path))):
        raws[role], tables[role] = _read(path)
    errors: list[Problem] = []
    query_lines = {}
    for role, table in tables.items():
        errors += table.problems + _schema_problems(table, limits)
        query_lines[role] = _query_lines(table)
        errors += _duplicate_problems(table, query_lines[role])
    errors += _leakage_problems(tables["train"], query_lines["train"], tables["test"], query_lines["test"])
    file_digests = {role: _sha256(raw) for role, raw in raws.items()}
    grounding = {role: _ungrounded(table) for role, table in tables.items()}
    report = ValidationReport(
        files={role: str(table.path) for role, table in tables.items()},
        errors=_sorted(errors, [str(t.path) for t in tables.values()]),
        warnings=[w for w in (_grounding_warning(t, grounding[r]) for r, t in tables.items()) if w],
        stats={role: _file_stats(table, file_digests[role], grounding[role]) for role, table in tables.items()},
        file_digests=file_digests,
        data_digest=combined_digest(file_digests),
        limits=limits,
    )
    write_reports(report, report_dir)
    return report


def _sorted(problems: list[Problem], file_order: list[str]) -> list[Problem]:
    """Train before test, then by line, so the report reads top to bottom like the files."""
    columns = [None, "query", "keyword"]

    def key(p: Problem) -> tuple[int, int, int]:
        rank = file_order.index(p.file) if p.file in file_order else len(file_order)
        column = columns.index(p.column) if p.column in columns else len(columns)
        return rank, p.line if p.line is not None else -1, column

    return sorted(problems, key=key)


if __name__ == "__main__":  # the command line lives in keyword_extractor.data.cli
    from keyword_extractor.data.cli import validation_main

    raise SystemExit(validation_main())
