"""The training pipeline: validate-data → fine-tune (→ evaluate → register → build bento).

Run locally without a server:

    python -m flows.train_pipeline --base-model tiny

or through a deployment: `prefect deployment run train-pipeline/local-cpu`.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel

from tasks.finetune import FineTuneOptions, FineTuneResult, fine_tune
from tasks.validate import validate_data

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class PipelineSummary(BaseModel):
    run_name: str
    run_dir: str
    model_dir: str
    best_val_loss: float | None
    train_seconds: float


def default_run_name() -> str:
    name = flow_run.get_name() or "local"
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{name}"


@flow(name="train-pipeline", log_prints=True)
def train_pipeline(
    train_path: str = "data/train.tsv",
    test_path: str = "data/test.tsv",
    training: FineTuneOptions = FineTuneOptions(),
    artifacts_dir: str = "artifacts",
    run_name: str | None = None,
    max_query_chars: int = 300,
    max_keywords: int = 6,
) -> PipelineSummary:
    """Validate the data, then fine-tune a keyword model on it.

    Args:
        train_path: training TSV (query, keyword), relative to the project root or absolute.
        test_path: held-out TSV, checked for leakage against the training file and used for evaluation.
        training: every fine-tuning option; unset values take the profile's defaults ('tiny' or pretrained).
        artifacts_dir: where runs, models, reports and the MLflow store are written.
        run_name: re-use a previous run's name to resume its interrupted fine-tuning.
        max_query_chars: validation limit on question length.
        max_keywords: validation limit on keywords per row.
    """
    log = get_run_logger()
    root = PROJECT_ROOT
    train_file, test_file = (root / train_path).resolve(), (root / test_path).resolve()
    run_name = run_name or default_run_name()
    run_dir = (root / artifacts_dir / "runs" / run_name).resolve()
    log.info("run %s: writing to %s", run_name, run_dir)
    validation = validate_data(
        str(train_file), str(test_file), str(run_dir / "validation"), max_query_chars, max_keywords
    )
    trained: FineTuneResult = fine_tune(str(train_file), str(run_dir / "train"), training)
    log.info("validated %s rows, fine-tuned model at %s", validation.train_rows, trained.model_dir)
    return PipelineSummary(
        run_name=run_name,
        run_dir=str(run_dir),
        model_dir=trained.model_dir,
        best_val_loss=trained.best_val_loss,
        train_seconds=trained.seconds,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m flows.train_pipeline",
        description="Run the training pipeline locally (no Prefect server needed).",
    )
    parser.add_argument("--train", default="data/train.tsv", help="training TSV")
    parser.add_argument("--test", default="data/test.tsv", help="held-out TSV")
    parser.add_argument("--base-model", default="tiny", help="'tiny' (offline), a Hugging Face id, or a directory")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (profile default if unset)")
    parser.add_argument("--denoise-epochs", type=int, help="denoising warm-up epochs (profile default if unset)")
    parser.add_argument("--limit-train-rows", type=int, help="train on the first N rows only (smoke runs)")
    parser.add_argument("--devices", default="auto", help="devices per node (GPUs), or auto")
    parser.add_argument("--strategy", default="auto", help="auto, ddp, ...")
    parser.add_argument("--artifacts-dir", default="artifacts", help="where runs and stores are written")
    parser.add_argument("--run-name", help="resume the run of this name")
    args = parser.parse_args(argv)
    options = FineTuneOptions(
        base_model=args.base_model,
        epochs=args.epochs,
        denoise_epochs=args.denoise_epochs,
        limit_train_rows=args.limit_train_rows,
        devices=args.devices,
        strategy=args.strategy,
    )
    summary = train_pipeline(
        train_path=args.train,
        test_path=args.test,
        training=options,
        artifacts_dir=args.artifacts_dir,
        run_name=args.run_name,
    )
    print(summary.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
