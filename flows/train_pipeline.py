"""The training pipeline: validate-data → fine-tune → evaluate → register → build-bento.

Run locally without a server:

    python -m flows.train_pipeline --base-model tiny

or through a deployment: `prefect deployment run train-pipeline/local-cpu`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, State
from pydantic import BaseModel

from flows.options import SHORT_FLAGS, flow_arguments, flow_options, flow_parser
from keyword_extractor.common.files import markdown_cell
from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.common.quiet import quiet_third_party_output
from keyword_extractor.common.results import CHAMPION, EvaluationResult, Registration, TrainResult
from keyword_extractor.integrations import tracking
from keyword_extractor.model.config import TrainConfig, base_model_problem
from keyword_extractor.text.keywords import DEFAULT_MAX_KEYWORDS, DEFAULT_MAX_QUERY_CHARS

NOT_PROMOTED = "NotPromoted"  # name of the final state of a run whose model was not made champion
# The state's type stays COMPLETED (everything asked was done), which the UI's run list colours like any
# completed run and `prefect flow-run ls` shows as COMPLETED; the tag marks such runs in both, and filters them.
NOT_PROMOTED_TAG = "not-promoted"


class PipelineSummary(BaseModel):
    run_name: str
    run_dir: str
    model_dir: str
    best_val_loss: float | None
    best_val_f1: float | None
    train_seconds: float
    mlflow_run_id: str
    model_version: str
    alias: str
    f1: float
    baseline_f1: float
    promotion: str
    bento_tag: str | None
    extra_train_rows: int = 0  # rows from extra training files (accepted corrections), 0 without any
    mlflow_pages: dict[str, str] = {}  # the UI's runs table and registered model page (`tracking.ui_pages`)

    def next_steps(self) -> list[str]:
        """The commands that show this run's result: runs in MLflow, the Bento over HTTP, the app."""
        if self.bento_tag:
            serve = f"bentoml serve {self.bento_tag}"
        elif self.alias != CHAMPION:
            serve = "bentoml serve  # serves the last Bento built, if any: this run's model was not promoted"
        else:
            serve = "bentoml serve  # from the project directory"
        runs = self.mlflow_pages.get("runs")
        ui = tracking.ui_command() + (f"  # then open {runs}" if runs else "")
        return [ui, serve, "streamlit run app.py"]


def tag_this_run(tag: str) -> None:
    """Add `tag` to the current flow run's tags; a failure to tag is logged, never fatal."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run.get_id())
            client.update_flow_run(run.id, tags=sorted({*run.tags, tag}))
    except Exception as error:  # the run's result matters more than its label
        get_run_logger().warning("could not tag the flow run %r: %s", tag, error)


def publish_summary(summary: PipelineSummary) -> None:
    """The run's headline as a Prefect artifact, so the UI shows where everything went."""
    rows = [
        ("MLflow run", f"`{summary.mlflow_run_id}`"),
        ("registered", f"keyword-extractor v{summary.model_version} ({summary.alias})"),
        ("F1 vs Kiwi baseline", f"{summary.f1:.4f} vs {summary.baseline_f1:.4f}"),
        ("extra training rows", str(summary.extra_train_rows)),
        ("Bento", f"`{summary.bento_tag}`" if summary.bento_tag else "none built"),
        ("model directory", f"`{summary.model_dir}`"),
        *((f"MLflow {page}", address) for page, address in summary.mlflow_pages.items()),
        ("report", f"`{summary.run_dir}/evaluation/report.md`"),
    ]
    table = "\n".join(f"| {key} | {markdown_cell(value)} |" for key, value in rows)
    commands = "\n".join(summary.next_steps())
    # the decision is a sentence: a paragraph of its own, where the UI neither cuts nor squeezes it
    create_markdown_artifact(
        key="pipeline-summary",
        markdown=f"## Run {summary.run_name}\n\n**Promotion:** {markdown_cell(summary.promotion)}\n\n"
        f"| what | where / value |\n|---|---|\n{table}\n\n```bash\n{commands}\n```\n",
        description="what this pipeline run produced",
    )


def default_run_name() -> str:
    name = flow_run.get_name() or "local"
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{name}"


@dataclass(frozen=True)
class PromotionGate:
    """What the flow's caller asked of registration and packaging."""

    margin: float
    force: bool
    build: bool
    build_if_not_promoted: bool


def register_and_build(
    mlflow_run_id: str, model_dir: str, evaluation: EvaluationResult, test_file: Path, gate: PromotionGate
) -> tuple[Registration, str | None]:
    """Register the version through the quality gate, then package the champion as a Bento when asked."""
    from tasks.bento import build_bento
    from tasks.tracking import register_model

    registration = register_model(
        mlflow_run_id,
        model_dir,
        evaluation.f1,
        evaluation.baseline_f1,
        str(test_file),
        evaluation.test_digest,
        gate.margin,
        gate.force,
    )
    if not gate.build:
        return registration, None
    return registration, build_bento(promoted=registration.promoted, only_if_promoted=not gate.build_if_not_promoted)


def finish(
    run_name: str,
    run_dir: Path,
    trained: TrainResult,
    mlflow_run_id: str,
    evaluation: EvaluationResult,
    registration: Registration,
    bento_tag: str | None,
    extra_train_rows: int = 0,
) -> PipelineSummary | State:
    """The run's headline, logged (for `make run` and `prefect flow-run logs`) and published as an artifact.

    A version that was not promoted still ends a completed run (everything asked was done), in a state
    named NotPromoted and tagged `not-promoted`, so that the run list shows nothing new is being served.
    """
    log = get_run_logger()
    summary = PipelineSummary(
        run_name=run_name,
        run_dir=str(run_dir),
        model_dir=trained.model_dir,
        best_val_loss=trained.best_val_loss,
        best_val_f1=trained.best_val_f1,
        train_seconds=trained.seconds,
        mlflow_run_id=mlflow_run_id,
        model_version=registration.version,
        alias=registration.alias,
        f1=evaluation.f1,
        baseline_f1=evaluation.baseline_f1,
        promotion=registration.decision,
        bento_tag=bento_tag,
        extra_train_rows=extra_train_rows,
        mlflow_pages=tracking.ui_pages(),
    )
    publish_summary(summary)
    log.info(
        "pipeline summary: F1 %.4f vs Kiwi baseline %.4f; %s v%s is %s; Bento %s; report %s/evaluation/report.md; "
        "%d rows from extra training files",
        summary.f1,
        summary.baseline_f1,
        registration.name,
        summary.model_version,
        summary.alias,
        summary.bento_tag or "not built",
        summary.run_dir,
        summary.extra_train_rows,
    )
    log.info("look at the result: %s", " ; ".join(summary.next_steps()))
    if not registration.promoted:
        log.warning("not promoted: %s", registration.decision)
        tag_this_run(NOT_PROMOTED_TAG)
        return Completed(name=NOT_PROMOTED, message=registration.decision, data=summary)
    return summary


@dataclass(frozen=True)
class PreparedData:
    training_file: str  # what fine-tuning reads: the training file, or it combined with the extra files
    extra_files: list[Path]
    extra_rows: int
    validation_files: list[str]  # reports, logged to MLflow


def prepare_data(
    train_file: Path,
    extra_train: list[str],
    test_file: Path,
    run_dir: Path,
    limits: tuple[int, int],
    label_audit_suspects: bool = True,
) -> PreparedData:
    """validate-data on the training file and on each extra file (each against the test file), then combine."""
    from tasks.combine import combine_training_data
    from tasks.validate import validate_data

    def checked_file(path: Path, report_dir: Path):
        return validate_data(str(path), str(test_file), str(report_dir), *limits, label_audit_suspects)

    checked = [checked_file(train_file, run_dir / "validation")]
    extra_files = [(PROJECT_ROOT / path).resolve() for path in extra_train]
    for index, extra in enumerate(extra_files, start=1):
        checked.append(checked_file(extra, run_dir / "validation" / f"extra-{index}"))
    reports = [path for result in checked for path in (result.json_report, result.markdown_report)]
    if not extra_files:
        return PreparedData(str(train_file), [], 0, reports)
    combined = combine_training_data(
        str(train_file), [str(p) for p in extra_files], str(run_dir / "data" / "train.tsv")
    )
    return PreparedData(combined.path, extra_files, combined.extra_rows, reports)


def train_and_evaluate(
    run_name: str, run_dir: Path, train_file: Path, test_file: Path, data: PreparedData, training: TrainConfig
) -> tuple[str, TrainResult, EvaluationResult]:
    """open-tracking-run → fine-tune → evaluate → log-evaluation, all in one MLflow run; returns its id too."""
    # imported here: the steps pull in torch, MLflow, BentoML and pandera, which --help never needs
    from tasks.evaluate import evaluate_model
    from tasks.finetune import fine_tune
    from tasks.tracking import log_evaluation, open_tracking_run

    tracked = open_tracking_run(
        run_name, str(train_file), str(test_file), data.validation_files, [str(path) for path in data.extra_files]
    )
    trained: TrainResult = fine_tune(data.training_file, str(run_dir / "train"), training, mlflow_run_id=tracked.run_id)
    evaluation = evaluate_model(str(test_file), str(run_dir / "evaluation"), trained.model_dir)
    log_evaluation(
        tracked.run_id, evaluation.model_metrics, evaluation.baseline_metrics, evaluation.latency, evaluation.files
    )
    return tracked.run_id, trained, evaluation


@flow(name="train-pipeline", log_prints=True)
def train_pipeline(
    train_path: str = "data/train.tsv",
    test_path: str = "data/test.tsv",
    training: TrainConfig = TrainConfig(),
    artifacts_dir: str = "artifacts",
    run_name: str | None = None,
    max_query_chars: int = DEFAULT_MAX_QUERY_CHARS,
    max_keywords: int = DEFAULT_MAX_KEYWORDS,
    promotion_margin: float = 0.0,
    force_promotion: bool = False,
    build: bool = True,
    build_if_not_promoted: bool = False,
    extra_train: list[str] | None = None,
    label_audit_suspects: bool = True,
) -> PipelineSummary:
    """Validate the data, fine-tune, evaluate against the Kiwi baseline, register in MLflow.

    The new model becomes champion only if it beats the Kiwi baseline and the current champion on the
    test set (by `promotion_margin`). When it does not, the run ends in a Completed state named
    `NotPromoted` whose message says why ("model below baseline: not promoted ..."), and no Bento is
    built unless `build_if_not_promoted`.

    Args:
        train_path: training TSV (query, keyword), relative to the project root or absolute.
        test_path: held-out TSV, checked for leakage against the training file and used for evaluation.
        training: every fine-tuning option (keyword_extractor.model.config.TrainConfig); fields left unset take the
            recipe of the base model (KoBART's, or the tiny preset for `base_model: tiny`, offline).
        artifacts_dir: where runs, models, reports and the MLflow store are written.
        run_name: re-use a previous run's name to resume its interrupted fine-tuning.
        max_query_chars: validation limit on question length.
        max_keywords: validation limit on keywords per row.
        promotion_margin: F1 the new model must add over the Kiwi baseline and over the champion (both on
            this test set) to become champion; a model below the baseline is never promoted.
        force_promotion: make the new model champion whatever its F1.
        build: package the champion as a Bento at the end.
        build_if_not_promoted: build a Bento of the champion even when this run's model was not promoted.
        extra_train: more training files (e.g. data/feedback.tsv, the accepted corrections), each validated like
            train_path and logged to MLflow as its own dataset; a question they label again takes their keywords.
        label_audit_suspects: rank the training rows most likely mislabelled in validate-data's label audit
            (cleanlab; about 25 s for 2,700 rows on 2 cores); the audit's other reports are always made.
    """
    quiet_third_party_output()
    train_file, test_file = (PROJECT_ROOT / train_path).resolve(), (PROJECT_ROOT / test_path).resolve()
    unreadable = data_file_problems({"train_path": train_path, "test_path": test_path, "extra_train": extra_train})
    if unreadable:  # before the run folder exists: nothing to clean up, nothing half-made
        raise FileNotFoundError("; ".join(unreadable))
    run_name = run_name or default_run_name()
    run_dir = (PROJECT_ROOT / artifacts_dir / "runs" / run_name).resolve()
    get_run_logger().info("run %s: writing to %s", run_name, run_dir)
    limits = (max_query_chars, max_keywords)
    data = prepare_data(train_file, extra_train or [], test_file, run_dir, limits, label_audit_suspects)
    run_id, trained, evaluation = train_and_evaluate(run_name, run_dir, train_file, test_file, data, training)
    gate = PromotionGate(promotion_margin, force_promotion, build, build_if_not_promoted)
    registration, bento_tag = register_and_build(run_id, trained.model_dir, evaluation, test_file, gate)
    return finish(run_name, run_dir, trained, run_id, evaluation, registration, bento_tag, data.extra_rows)


def data_file_problems(paths: dict[str, str | list[str] | None]) -> list[str]:
    """One sentence per data file that is missing or not a file, naming the flag it came from."""
    from keyword_extractor.data.tsv import missing_file_message  # pandas: not for --help

    problems = []
    for parameter, given in paths.items():
        flag = SHORT_FLAGS.get(parameter, "--" + parameter.replace("_", "-"))
        for path in [given] if isinstance(given, str) else given or []:
            resolved = PROJECT_ROOT / path
            if not resolved.is_file():
                where = "" if resolved.is_dir() else f" (relative paths start at {PROJECT_ROOT})"
                problems.append(f"{flag} {path}: {missing_file_message(resolved)}{where}")
    return problems


def pipeline_options() -> type[BaseModel]:
    """The flow's own parameters (all but `training`) as a pydantic model, for the command line."""
    return flow_options(train_pipeline.fn)


def build_parser() -> argparse.ArgumentParser:
    return flow_parser(
        train_pipeline.fn,
        "python -m flows.train_pipeline",
        "Run the training pipeline locally (no Prefect server needed): validate-data → fine-tune → "
        "evaluate → register → build-bento. The pipeline options are the flow's parameters (the same a "
        "deployment takes); the training options are those of `python -m keyword_extractor.training`. "
        "--base-model tiny trains a small model offline on CPU, the default fine-tunes KoBART.",
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    arguments = flow_arguments(train_pipeline.fn, args)
    unreadable = data_file_problems({name: arguments.get(name) for name in ("train_path", "test_path", "extra_train")})
    base_model = arguments["training"].base_model
    if base_model and (problem := base_model_problem(base_model)):
        unreadable.append(f"--base-model {problem}")
    if unreadable:  # one line each, exit 2, before any server, run folder or model is touched
        print("\n".join(f"error: {problem}" for problem in unreadable), file=sys.stderr)
        raise SystemExit(2)
    quiet_third_party_output()  # before the temporary local server starts: it reads its settings once
    summary = train_pipeline(**arguments)
    print(summary.model_dump_json(indent=2))
    ui, serve, app = summary.next_steps()
    print(
        f"\nF1 {summary.f1:.3f} (Kiwi baseline {summary.baseline_f1:.3f}); "
        f"keyword-extractor v{summary.model_version} is {summary.alias}: {summary.promotion}.\n"
        f"Reports: {summary.run_dir}/evaluation/report.md\n\n"
        f"Look at the result:\n  {ui}\n  {serve}\n  {app}"
    )


if __name__ == "__main__":
    main()
