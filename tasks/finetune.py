"""Prefect task: fine-tune in a child process and stream its log.

Training runs as `python -m keyword_extractor.training` in a subprocess because
Lightning's DDP launcher re-executes the command line for every rank; run
in-process, it would re-execute the Prefect flow instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact

from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.common.results import SUMMARY_FILE, TrainResult
from keyword_extractor.model.config import CONFIG_FILE, TrainConfig
from keyword_extractor.training.resume import last_checkpoint


class TrainingFailed(RuntimeError):
    """The training process exited non-zero; the message carries the end of its log."""


def training_command(
    train: Path, val: Path | None, output_dir: Path, config_file: Path, resume: bool, mlflow_run_id: str | None
) -> list[str]:
    """The training process's command line: its files, and every option in one JSON file."""
    command = [
        sys.executable,
        "-m",
        "keyword_extractor.training",
        "--train",
        str(train),
        "--output-dir",
        str(output_dir),
    ]
    command += ["--config", str(config_file)]
    if val:
        command += ["--val", str(val)]
    if resume:
        command.append("--resume")
    if mlflow_run_id:
        from keyword_extractor.integrations.tracking import tracking_uri

        command += ["--mlflow-run-id", mlflow_run_id, "--mlflow-tracking-uri", tracking_uri()]
    return command


EPOCH_LINE = re.compile(r"\bepoch (\d+)/(\d+) \|")  # progress.EpochSummary's line


def run_streaming(
    command: list[str], log, cwd: Path = PROJECT_ROOT, on_line: Callable[[str], None] | None = None
) -> tuple[int, list[str]]:
    """Run a command, forwarding each output line to the log; keep the tail for error messages."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    tail: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        for line in process.stdout:
            line = line.rstrip()
            if line:
                log.info(line)
                tail = (tail + [line])[-30:]
                if on_line is not None:
                    on_line(line)
        return process.wait(), tail


class EpochProgress:
    """A Prefect progress artifact that follows the training log's epoch lines, so the UI shows how far it is."""

    def __init__(self, key: str = "fine-tune-progress") -> None:
        self.artifact_id = create_progress_artifact(0.0, key=key, description="fine-tuning: epochs done")

    def __call__(self, line: str) -> None:
        found = EPOCH_LINE.search(line)
        if found:
            done, planned = int(found.group(1)), int(found.group(2))
            update_progress_artifact(
                self.artifact_id, 100.0 * done / max(planned, 1), description=line[found.start() :]
            )

    def finish(self) -> None:
        update_progress_artifact(self.artifact_id, 100.0, description="fine-tuning done")


def cpu_precision(result: TrainResult) -> str:
    """'int8 allowed (validation F1 0.5412 vs fp32 0.5398)' or 'fp32 only (set by option)', for the summary.

    Allowed int8 is used only where it is also faster, decided when the model is loaded.
    """
    chosen = "int8 allowed" if result.int8_allowed else "fp32 only"
    check = result.int8_check
    if not check:
        return f"{chosen} (set by option)"
    return f"{chosen} (validation F1 int8 {check['int8_f1']:.4f} vs fp32 {check['fp32_f1']:.4f})"


@task(name="fine-tune", retries=0, log_prints=True)
def fine_tune(
    train_path: str,
    output_dir: str,
    config: TrainConfig,
    val_path: str | None = None,
    mlflow_run_id: str | None = None,
) -> TrainResult:
    """Train, resuming from `<output_dir>/checkpoints/last.ckpt` when a previous attempt was interrupted.

    The options travel as `<output_dir>/train_config.json`, which stays there as the run's record.
    """
    log = get_run_logger()
    output = Path(output_dir).resolve()
    resume = last_checkpoint(output).is_file() and not (output / SUMMARY_FILE).is_file()
    output.mkdir(parents=True, exist_ok=True)
    config_file = config.save(output / CONFIG_FILE)
    command = training_command(
        Path(train_path).resolve(),
        Path(val_path).resolve() if val_path else None,
        output,
        config_file,
        resume,
        mlflow_run_id,
    )
    log.info("%s: %s", "resuming" if resume else "starting", " ".join(command))
    progress = EpochProgress()
    code, tail = run_streaming(command, log, on_line=progress)
    if code != 0:
        raise TrainingFailed(f"training exited with code {code}; last lines:\n" + "\n".join(tail[-15:]))
    result = TrainResult.model_validate_json((output / SUMMARY_FILE).read_text())
    progress.finish()  # early stopping ends before the planned epochs
    create_markdown_artifact(
        key="fine-tune-summary",
        markdown=(
            f"## Fine-tune\n\n| | |\n|---|---|\n| base model | `{config.base_model}` |\n"
            f"| model directory | `{result.model_dir}` |\n| best val_loss | {result.best_val_loss} |\n"
            f"| best validation keyword F1 | {result.best_val_f1} |\n"
            f"| epochs | {result.epochs_run} |\n| seconds | {result.seconds} |\n"
            f"| resumed from | {result.resumed_from} |\n| CPU serving precision | {cpu_precision(result)} |\n"
        ),
        description="Fine-tuning result",
    )
    log.info("fine-tuned in %.0fs; model directory %s", result.seconds, result.model_dir)
    return result
