"""Prefect task: fine-tune in a child process and stream its log.

Training runs as `python -m keyword_extractor.train` in a subprocess because
Lightning's DDP launcher re-executes the command line for every rank; run
in-process, it would re-execute the Prefect flow instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from keyword_extractor.train import SUMMARY_FILE, TrainResult

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class FineTuneOptions(BaseModel):
    """Training options exposed as flow parameters; unset ones take the profile's defaults."""

    base_model: str = Field("tiny", description="Hugging Face id, local directory, or 'tiny' (offline)")
    epochs: int | None = Field(None, description="keyword fine-tuning epochs")
    denoise_epochs: int | None = Field(None, description="denoising warm-up epochs before fine-tuning")
    batch_size: int | None = Field(None, description="rows per batch and device")
    learning_rate: float | None = Field(None, description="peak learning rate")
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    schedule: str | None = Field(None, description="linear or onecycle")
    gradient_clip: float = 1.0
    max_source_length: int = 128
    max_target_length: int = 64
    seed: int = 42
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    num_workers: int = 0
    max_steps: int = -1
    limit_train_rows: int | None = Field(None, description="use only the first N rows (smoke runs)")
    num_beams: int | None = Field(None, description="beam width stored with the model (profile default if unset)")
    max_new_tokens: int = 48
    grounding: str = Field(
        "morphemes", description="decoding constraint: morphemes (whole Kiwi-word spans), substrings, or off"
    )
    select_by: str = Field("val_f1", description="checkpoint selection: val_f1 (keyword F1) or val_loss")
    early_stopping_patience: int | None = Field(None, description="epochs without improvement before stopping")
    augment_copies: int | None = Field(None, description="keyword-substituted copies of each training row")
    quantize: str = Field(
        "off", description="CPU serving precision: off (fp32), auto (int8 if validation F1 allows), int8"
    )
    int8_max_f1_drop: float = Field(0.01, description="F1 that quantize=auto may give up for int8")
    tiny_vocab_size: int | None = None
    tiny_d_model: int | None = None
    tiny_layers: int | None = None

    def to_cli(self) -> list[str]:
        args: list[str] = []
        for name, value in self.model_dump().items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        return args


class TrainingFailed(RuntimeError):
    """The training process exited non-zero; the message carries the end of its log."""


def training_command(
    train: Path, val: Path | None, output_dir: Path, options: FineTuneOptions, resume: bool, mlflow_run_id: str | None
) -> list[str]:
    command = [sys.executable, "-m", "keyword_extractor.train", "--train", str(train), "--output-dir", str(output_dir)]
    if val:
        command += ["--val", str(val)]
    command += options.to_cli()
    if resume:
        command.append("--resume")
    if mlflow_run_id:
        from keyword_extractor.tracking import tracking_uri

        command += ["--mlflow-run-id", mlflow_run_id, "--mlflow-tracking-uri", tracking_uri()]
    return command


def run_streaming(command: list[str], log, cwd: Path = PROJECT_ROOT) -> tuple[int, list[str]]:
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
        return process.wait(), tail


def cpu_precision(result: TrainResult) -> str:
    """'int8 (validation F1 0.5412 vs fp32 0.5398)' or 'fp32', for the summary artifact."""
    chosen = "int8" if result.quantize else "fp32"
    check = result.int8_check
    if not check:
        return f"{chosen} (set by option)"
    return f"{chosen} (validation F1 int8 {check['int8_f1']:.4f} vs fp32 {check['fp32_f1']:.4f})"


@task(name="fine-tune", retries=0, log_prints=True)
def fine_tune(
    train_path: str,
    output_dir: str,
    options: FineTuneOptions,
    val_path: str | None = None,
    mlflow_run_id: str | None = None,
) -> TrainResult:
    """Train, resuming from `<output_dir>/checkpoints/last.ckpt` when a previous attempt was interrupted."""
    log = get_run_logger()
    output = Path(output_dir).resolve()
    resume = (output / "checkpoints" / "last.ckpt").is_file() and not (output / SUMMARY_FILE).is_file()
    command = training_command(
        Path(train_path).resolve(),
        Path(val_path).resolve() if val_path else None,
        output,
        options,
        resume,
        mlflow_run_id,
    )
    log.info("%s: %s", "resuming" if resume else "starting", " ".join(command))
    code, tail = run_streaming(command, log)
    if code != 0:
        raise TrainingFailed(f"training exited with code {code}; last lines:\n" + "\n".join(tail[-15:]))
    result = TrainResult.model_validate_json((output / SUMMARY_FILE).read_text())
    create_markdown_artifact(
        key="fine-tune-summary",
        markdown=(
            f"## Fine-tune\n\n| | |\n|---|---|\n| base model | `{options.base_model}` |\n"
            f"| model directory | `{result.model_dir}` |\n| best val_loss | {result.best_val_loss} |\n"
            f"| best validation keyword F1 | {result.best_val_f1} |\n"
            f"| epochs | {result.epochs_run} |\n| seconds | {result.seconds} |\n"
            f"| resumed from | {result.resumed_from} |\n| CPU serving precision | {cpu_precision(result)} |\n"
        ),
        description="Fine-tuning result",
    )
    log.info("fine-tuned in %.0fs; model directory %s", result.seconds, result.model_dir)
    return result
