"""What validation found, and how it is shown: the report object, validation.json and validation.md.

The rules live in `validation`; this module only holds and renders their findings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyword_extractor.common.files import markdown_cell, write_atomic
from keyword_extractor.data.tsv import DataFileError, Problem

JSON_REPORT = "validation.json"
MARKDOWN_REPORT = "validation.md"
_SHOWN_IN_ERROR = 20
_SHOWN_IN_MARKDOWN = 200
_SUMMARY_HEADER = (
    "| file | rows | errors | keywords/row mean (min-max) | query chars p50 / p90 / p99 | ungrounded | sha256 |"
)


class DataValidationError(DataFileError):
    """The data files break the labelling rules; `problems` lists every row to fix."""

    def __init__(self, problems: list[Problem], report_path: str | None = None):
        super().__init__(problems)
        self.report_path = report_path
        self.args = (_error_summary(self.problems, report_path),)

    def __reduce__(self):
        return (type(self), (self.problems, self.report_path))


def _error_summary(problems: list[Problem], report_path: str | None) -> str:
    files = ", ".join(dict.fromkeys(Path(p.file).name for p in problems))
    lines = [f"data validation failed: {len(problems)} error(s) in {files}:"]
    lines += [f"  - {p}" for p in problems[:_SHOWN_IN_ERROR]]
    if len(problems) > _SHOWN_IN_ERROR:
        lines.append(f"  … and {len(problems) - _SHOWN_IN_ERROR} more")
    if report_path:
        lines.append(f"Full list: {report_path}")
    lines.append("Fix these rows and re-run.")
    return "\n".join(lines)


@dataclass
class ValidationReport:
    """What validation found: errors stop the pipeline, warnings and stats inform it."""

    files: dict[str, str]
    errors: list[Problem]
    warnings: list[str]
    stats: dict[str, dict[str, Any]]
    file_digests: dict[str, str | None]
    data_digest: str
    limits: dict[str, int]
    report_paths: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings allowed)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise `DataValidationError` listing the first problems when there are any."""
        if self.errors:
            raise DataValidationError(self.errors, self.report_paths.get("json"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, the content of validation.json."""
        return {
            "ok": self.ok,
            "error_count": len(self.errors),
            "warning_count": len(self.warnings),
            "files": self.files,
            "limits": self.limits,
            "data_digest": self.data_digest,
            "file_digests": self.file_digests,
            "stats": self.stats,
            "errors": [_problem_dict(p) for p in self.errors],
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        """A few plain lines for a terminal or a log."""
        verdict = "OK" if self.ok else f"FAILED with {len(self.errors)} error(s)"
        lines = [f"data validation {verdict}, {len(self.warnings)} warning(s); data sha256 {self.data_digest[:12]}"]
        for role, stats in self.stats.items():
            lines.append(f"  {role}: {self.files[role]} - {stats.get('rows', 0)} rows")
        lines += [f"  error: {p}" for p in self.errors[:_SHOWN_IN_ERROR]]
        if len(self.errors) > _SHOWN_IN_ERROR:
            lines.append(f"  … and {len(self.errors) - _SHOWN_IN_ERROR} more errors")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  report: {path}" for path in self.report_paths.values()]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """The human report: summary table, errors, warnings, statistics."""
        return _markdown(self)


def _problem_dict(problem: Problem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "column": problem.column, "message": problem.message}


def write_reports(report: ValidationReport, report_dir: str | Path) -> dict[str, str]:
    """Write validation.json and validation.md under report_dir; return their paths."""
    report_dir = Path(report_dir)
    paths = {"json": str(report_dir / JSON_REPORT), "markdown": str(report_dir / MARKDOWN_REPORT)}
    report.report_paths = paths
    write_atomic(Path(paths["json"]), json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n")
    write_atomic(Path(paths["markdown"]), report.to_markdown())
    return paths


# --- Markdown --------------------------------------------------------------------------------


def _summary_table(report: ValidationReport) -> list[str]:
    lines = [_SUMMARY_HEADER, "| --- | ---: | ---: | --- | --- | ---: | --- |"]
    for role, path in report.files.items():
        stats = report.stats.get(role, {})
        errors = sum(1 for p in report.errors if p.file == path)
        per_row = stats.get("keywords_per_row")
        per_row_text = f"{per_row['mean']} ({per_row['min']}-{per_row['max']})" if per_row else "-"
        chars = stats.get("query_chars")
        chars_text = " / ".join(f"{v:g}" for v in chars.values()) if chars else "-"
        digest = (report.file_digests.get(role) or "missing")[:12]
        lines.append(
            f"| {markdown_cell(path)} | {stats.get('rows', 0)} | {errors} | {per_row_text} | {chars_text} | "
            f"{stats.get('ungrounded_share', 0):.1%} | `{digest}` |"
        )
    return lines


def _markdown(report: ValidationReport) -> str:
    verdict = "passed" if report.ok else f"failed: {len(report.errors)} error(s)"
    limits = (
        f"Limits: at most {report.limits['max_query_chars']} characters per query, "
        f"{report.limits['max_keywords']} keywords per row. Data sha256 `{report.data_digest}`."
    )
    lines = [f"# Data validation {verdict}", "", limits, ""]
    lines += _summary_table(report)
    lines += ["", f"## Errors ({len(report.errors)})", ""]
    if report.errors:
        lines += ["| file | line | column | problem |", "| --- | ---: | --- | --- |"]
        lines += [
            f"| {markdown_cell(p.file)} | {p.line or ''} | {p.column or ''} | {markdown_cell(p.message)} |"
            for p in report.errors[:_SHOWN_IN_MARKDOWN]
        ]
        if len(report.errors) > _SHOWN_IN_MARKDOWN:
            lines.append(f"\n… and {len(report.errors) - _SHOWN_IN_MARKDOWN} more; see {JSON_REPORT}.")
        lines += ["", "Fix these rows and re-run."]
    else:
        lines.append("None.")
    lines += ["", f"## Warnings ({len(report.warnings)})", ""]
    lines += [f"- {markdown_cell(w)}" for w in report.warnings] or ["None."]
    lines += ["", "## Statistics", "", "```json", json.dumps(report.stats, ensure_ascii=False, indent=2), "```", ""]
    return "\n".join(lines)
