"""Pipeline step 1, "validate-data": refuse to train on data that breaks the labelling rules.

The task wraps `keyword_extractor.data.validation.validate`, publishes its Markdown report as a
Prefect artifact and fails with the row-level problems; on valid data it also runs the label audit
(`keyword_extractor.data.label_audit`: spans labelled both ways, verbal nouns, rows likely mislabelled by
out-of-fold confidence) into the same folder and
an artifact of its own, which reports and never fails the run. Its cache key is the content of the
data files, the limits, the report folder and the validator's own source, so an unchanged
data set is not validated twice and any change in data or rules re-runs it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.context import TaskRunContext

from keyword_extractor.common.files import file_sha256
from keyword_extractor.data import label_audit, label_suspects, tsv, validation, validation_report
from keyword_extractor.data.validation import validate
from keyword_extractor.data.validation_report import JSON_REPORT, MARKDOWN_REPORT, ValidationReport
from keyword_extractor.text import keywords, morphology, span_features
from keyword_extractor.text.keywords import DEFAULT_MAX_KEYWORDS, DEFAULT_MAX_QUERY_CHARS

ARTIFACT_KEY = "validation-report"
AUDIT_ARTIFACT_KEY = "label-audit"
# what the cached outputs depend on
_RULE_MODULES = (validation, validation_report, tsv, keywords, label_audit, label_suspects, span_features, morphology)


@dataclass(frozen=True)
class ValidationResult:
    """What later steps need from validation: where the reports are and which data was checked."""

    ok: bool
    json_report: str
    markdown_report: str
    data_digest: str
    file_digests: dict[str, str | None]
    rows: dict[str, int]
    warnings: int


def _file_sha256(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        return "missing"
    return file_sha256(path)


def _rules_sha256() -> str:
    """The validator's source: editing a rule must invalidate earlier cached results."""
    hasher = hashlib.sha256()
    for module in _RULE_MODULES:
        hasher.update(Path(module.__file__).read_bytes())
    return hasher.hexdigest()


def validation_cache_key(context: TaskRunContext | None, parameters: dict[str, Any]) -> str:
    """Cache on what decides the outcome: data bytes, limits, report folder, rules, reports present."""
    report_dir = Path(parameters["report_dir"]).resolve()
    material = {
        "train": _file_sha256(parameters["train_path"]),
        "test": _file_sha256(parameters["test_path"]),
        "max_query_chars": parameters.get("max_query_chars", DEFAULT_MAX_QUERY_CHARS),
        "max_keywords": parameters.get("max_keywords", DEFAULT_MAX_KEYWORDS),
        "label_audit_suspects": parameters.get("label_audit_suspects", True),
        "report_dir": str(report_dir),
        "reports_present": all((report_dir / name).is_file() for name in (JSON_REPORT, MARKDOWN_REPORT)),
        "rules": _rules_sha256(),
    }
    return "validate-data-" + hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _result(report: ValidationReport) -> ValidationResult:
    return ValidationResult(
        ok=report.ok,
        json_report=report.report_paths["json"],
        markdown_report=report.report_paths["markdown"],
        data_digest=report.data_digest,
        file_digests=dict(report.file_digests),
        rows={role: int(stats.get("rows", 0)) for role, stats in report.stats.items()},
        warnings=len(report.warnings),
    )


@task(name="validate-data", cache_key_fn=validation_cache_key, persist_result=True)
def validate_data(
    train_path: str | Path,
    test_path: str | Path,
    report_dir: str | Path,
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
    max_keywords: int = DEFAULT_MAX_KEYWORDS,
    label_audit_suspects: bool = True,
) -> ValidationResult:
    """Validate both files, publish the report, and fail with every row to fix when there are errors.

    Then the label audit of the training file; `label_audit_suspects` adds its ranking of likely mislabelled
    rows (five scorer fits: about 25 s for 2,700 rows on 2 cores, longer on a larger file).
    """
    logger = get_run_logger()
    report = validate(train_path, test_path, report_dir, max_query_chars=max_query_chars, max_keywords=max_keywords)
    create_markdown_artifact(
        markdown=report.to_markdown(),
        key=ARTIFACT_KEY,
        description=f"Data validation of {report.files['train']} and {report.files['test']}",
    )
    logger.info(report.summary())
    if not report.ok:
        logger.error("%d error(s) in the data; full list in %s", len(report.errors), report.report_paths["json"])
    report.raise_for_errors()
    audited = label_audit.audit(train_path, suspects=label_audit_suspects)  # reports only: never stops a run
    label_audit.write_reports(audited, report_dir)
    create_markdown_artifact(
        markdown=label_audit.markdown(audited),
        key=AUDIT_ARTIFACT_KEY,
        description=f"Spans labelled both ways and verbal nouns in {report.files['train']}",
    )
    logger.info("%s (%s)", audited.summary(), Path(report_dir) / label_audit.MARKDOWN_REPORT)
    return _result(report)
