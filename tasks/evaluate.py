"""Pipeline step 3, "evaluate": score the fine-tuned model on the test file next to the Kiwi baseline.

The task wraps `keyword_extractor.evaluate.evaluate`, publishes the report (Markdown artifact
"evaluation-report") and the headline (table artifact "evaluation-headline") so a flow run shows
how good the model is without opening files, and returns what logging and registration need.
It is not cached: evaluating is cheap next to training, and a cache keyed on a model directory's
path would hide a retrained model written to the same place.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel

from keyword_extractor.evaluate import EvaluationResult, evaluate, render_report

REPORT_ARTIFACT_KEY = "evaluation-report"
HEADLINE_ARTIFACT_KEY = "evaluation-headline"


class ModelEvaluation(BaseModel):
    """Scores and output files of one evaluation; `f1` is the model's micro F1 on the test file."""

    f1: float
    baseline_f1: float | None
    beats_baseline: bool
    model_metrics: dict[str, float | int]
    baseline_metrics: dict[str, float | int] | None
    latency: dict[str, float | int]
    paths: dict[str, str]
    test_digest: str
    n: int

    @property
    def files(self) -> list[str]:
        """Every output file, for logging them to MLflow."""
        return list(self.paths.values())


def _summary(result: EvaluationResult) -> ModelEvaluation:
    assert result.model_metrics is not None and result.latency is not None  # the task always evaluates a model
    return ModelEvaluation(
        f1=result.model_metrics["f1"],
        baseline_f1=result.baseline_metrics["f1"] if result.baseline_metrics is not None else None,
        beats_baseline=result.beats_baseline,
        model_metrics=result.model_metrics,
        baseline_metrics=result.baseline_metrics,
        latency=result.latency,
        paths=result.paths,
        test_digest=result.test_digest,
        n=result.n,
    )


@task(name="evaluate", retries=0)
def evaluate_model(
    test_path: str,
    output_dir: str,
    model_dir: str,
    include_baseline: bool = True,
    batch_size: int | None = None,
) -> ModelEvaluation:
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
        table=result.headline(),
        key=HEADLINE_ARTIFACT_KEY,
        description="Model vs Kiwi baseline: micro P/R/F1, macro F1, exact match, amortised latency per question",
    )
    summary = _summary(result)
    latency = result.latency or {}
    if summary.baseline_f1 is None:
        log.info("model F1 %.4f on %d questions", summary.f1, summary.n)
    else:
        log.info(
            "model F1 %.4f vs baseline %.4f on %d questions: the model %s the baseline",
            summary.f1,
            summary.baseline_f1,
            summary.n,
            "beats" if summary.beats_baseline else "does not beat",
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
    return summary
