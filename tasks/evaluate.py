"""Pipeline step 3, "evaluate": score the fine-tuned model on the test file next to the Kiwi baseline.

The task wraps `keyword_extractor.evaluation.evaluate.evaluate`, publishes the report (Markdown artifact
"evaluation-report") and the headline (table artifact "evaluation-headline") so a flow run shows
how good the model is without opening files, and returns what logging and registration need.
It is not cached: evaluating is cheap next to training, and a cache keyed on a model directory's
path would hide a retrained model written to the same place.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from keyword_extractor.common.results import EvaluationResult
from keyword_extractor.evaluation.evaluate import evaluate
from keyword_extractor.evaluation.report import headline_rows, render_report

REPORT_ARTIFACT_KEY = "evaluation-report"
HEADLINE_ARTIFACT_KEY = "evaluation-headline"


@task(name="evaluate", retries=0)
def evaluate_model(
    test_path: str,
    output_dir: str,
    model_dir: str,
    include_baseline: bool = True,
    batch_size: int | None = None,
) -> EvaluationResult:
    """Evaluate `model_dir` on `test_path`, write the outputs under `output_dir`, publish the report."""
    log = get_run_logger()
    log.info("evaluating %s on %s", model_dir, test_path)
    result = evaluate(test_path, output_dir, model_dir, include_baseline=include_baseline, batch_size=batch_size)
    # The artifact cannot show a file beside the report, so it names the chart's path instead of embedding it.
    markdown = render_report(result, chart_ref=None) + f"\nChart: `{result.paths['chart']}`\n"
    create_markdown_artifact(
        markdown=markdown,
        key=REPORT_ARTIFACT_KEY,
        description=f"Evaluation of {Path(model_dir).name} on {result.n} questions of {Path(test_path).name}",
    )
    create_table_artifact(
        table=headline_rows(result),
        key=HEADLINE_ARTIFACT_KEY,
        description="Model vs Kiwi baseline: micro P/R/F1, macro F1, exact match, amortised latency per question",
    )
    latency = result.latency or {}
    if result.baseline_f1 is None:
        log.info("model F1 %.4f on %d questions", result.f1, result.n)
    else:
        log.info(
            "model F1 %.4f vs baseline %.4f on %d questions: the model %s the baseline",
            result.f1,
            result.baseline_f1,
            result.n,
            "beats" if result.beats_baseline else "does not beat",
        )
    log.info(
        "latency p50 %.1f ms, p95 %.1f ms per question (amortised, batch size %s), %.1f questions/s on %s",
        latency.get("p50_ms", 0.0),
        latency.get("p95_ms", 0.0),
        result.batch_size,
        latency.get("throughput_qps", 0.0),
        result.device,
    )
    log.info("wrote %s", ", ".join(result.files))
    return result
