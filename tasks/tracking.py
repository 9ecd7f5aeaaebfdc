"""Prefect tasks around MLflow: open the pipeline's run, register its model behind the quality gate."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from pydantic import BaseModel

from keyword_extractor.common.results import Registration
from keyword_extractor.integrations import registry, tracking


class TrackingRun(BaseModel):
    run_id: str
    tracking_uri: str
    experiment: str
    data_digests: dict[str, str]
    ui_command: str


@task(name="open-tracking-run", retries=2, retry_delay_seconds=5)
def open_tracking_run(
    run_name: str, train_path: str, test_path: str, validation_files: list[str], extra_paths: list[str] | None = None
) -> TrackingRun:
    """One MLflow run per pipeline run, tagged with the Prefect flow run and the code version."""
    log = get_run_logger()
    uri = tracking.configure()
    tags = {
        "prefect.flow_run_id": str(flow_run.get_id() or ""),
        "prefect.flow_run_name": str(flow_run.get_name() or ""),
        "git.commit": tracking.git_commit(),
        "pipeline.run_name": run_name,
    }
    run_id = tracking.start_pipeline_run(run_name, tags)
    digests = tracking.log_datasets(run_id, train_path, test_path, extra_paths or [])
    tracking.log_files(run_id, validation_files, "validation")
    log.info("MLflow run %s in %s (%s)", run_id, uri, tracking.ui_command())
    return TrackingRun(
        run_id=run_id,
        tracking_uri=uri,
        experiment=tracking.EXPERIMENT_NAME,
        data_digests=digests,
        ui_command=tracking.ui_command(),
    )


@task(name="register", retries=2, retry_delay_seconds=5)
def register_model(
    run_id: str,
    model_dir: str,
    f1: float,
    baseline_f1: float,
    test_path: str,
    test_digest: str,
    margin: float = 0.0,
    force: bool = False,
) -> Registration:
    """New version as challenger; champion only if its test F1 is at least the baseline's and the champion's."""
    log = get_run_logger()
    tracking.configure()

    outcome = registry.register(
        run_id,
        model_dir,
        f1,
        test_digest,
        baseline_f1=baseline_f1,
        margin=margin,
        force=force,
        # <run>/evaluation/champion: the champion's answers on this test set, kept with the run
        evaluate_f1=registry.champion_f1_on(test_path, Path(model_dir).parent.parent / "evaluation" / "champion"),
    )
    tracking.describe_run(
        run_id,
        f"F1 {outcome.f1:.4f} vs Kiwi baseline {outcome.baseline_f1:.4f}; {outcome.name} v{outcome.version} is "
        f"{outcome.alias}: {outcome.decision}",
    )
    if outcome.promoted:
        log.info("%s v%s -> %s: %s", outcome.name, outcome.version, outcome.alias, outcome.decision)
    else:
        log.warning("%s v%s stays %s: %s", outcome.name, outcome.version, outcome.alias, outcome.decision)
    create_markdown_artifact(
        key="registration",
        markdown=(
            f"## Registered `{outcome.name}` v{outcome.version} as **{outcome.alias}**\n\n"
            f"{outcome.decision}\n\n| model | F1 |\n|---|---|\n| this version | {outcome.f1:.4f} |\n"
            f"| Kiwi baseline, same questions | {outcome.baseline_f1:.4f} |\n"
            f"| champion before | {outcome.champion_f1 if outcome.champion_f1 is not None else '—'} |\n"
        ),
        description="Model registry decision",
    )
    return outcome


@task(name="log-evaluation", retries=2, retry_delay_seconds=5)
def log_evaluation(run_id: str, model_metrics: dict, baseline_metrics: dict, latency: dict, files: list[str]) -> None:
    """Model and baseline side by side in the run, so `mlflow ui` compares runs on both."""
    tracking.configure()
    tracking.log_metrics(run_id, model_metrics, prefix="model")
    tracking.log_metrics(run_id, baseline_metrics, prefix="baseline")
    tracking.log_metrics(run_id, latency, prefix="latency")
    tracking.log_files(run_id, files, "evaluation")
    get_run_logger().info("logged evaluation metrics and %d files to MLflow run %s", len(files), run_id)
