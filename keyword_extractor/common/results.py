"""What each pipeline step produced, declared once for the core code, the Prefect tasks and the flow.

Frozen pydantic models: they serialise to JSON as they are (the training process hands its result
to the task as `train_summary.json`), and Prefect renders and persists them without adapters.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

REGISTERED_MODEL = "keyword-extractor"  # the model's name in the MLflow registry
CHAMPION, CHALLENGER = "champion", "challenger"  # its aliases: the version served, the last one that lost
SUMMARY_FILE = "train_summary.json"  # a training run's TrainResult, in its output folder


class TrainResult(BaseModel):
    """A training run: written to <output-dir>/train_summary.json and returned by the fine-tune task."""

    model_config = ConfigDict(frozen=True)

    model_dir: str
    best_checkpoint: str
    best_val_loss: float | None
    best_val_f1: float | None = None
    epochs_run: int
    seconds: float
    resumed_from: str | None
    output_dir: str = ""  # the run's folder: checkpoints, logs, the summary, the config
    int8_allowed: bool = False  # may int8 serve it on CPU (used where also faster: serving_precision)
    int8_check: dict | None = None  # the validation measurement behind it (cpu_precision.Int8Check)
    span_selector: dict | None = None  # validation F1 of the seq2seq model alone and with the span selector


class Registration(BaseModel):
    """What the registry step did, with both numbers behind the promotion decision."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    run_id: str
    alias: str
    promoted: bool
    decision: str
    f1: float
    baseline_f1: float
    champion_version: str | None
    champion_f1: float | None
    created: bool


class EvaluationResult(BaseModel):
    """An evaluation on a test file: scores, latency, where the outputs are, and which test set it was.

    `model_metrics` / `latency` are None in baseline-only mode; `baseline_metrics` /
    `baseline_latency` are None with `include_baseline=False`. Latencies are amortised batch
    latencies per question (see `evaluate.evaluate`). `paths` is filled when the outputs are written.
    """

    model_metrics: dict[str, float] | None
    baseline_metrics: dict[str, float] | None
    latency: dict[str, float] | None
    baseline_latency: dict[str, float] | None
    paths: dict[str, str]
    test_path: str
    test_digest: str
    n: int
    model_dir: str | None = None
    batch_size: int | None = None
    device: str | None = None
    # how the model's precision was chosen on the machine that evaluated it (serving_precision.PrecisionDecision)
    precision: dict | None = None
    beats_baseline: bool = False
    # one row per question (texts, answers, per-row scores): for the report, not for passing around
    rows: list[dict[str, Any]] = Field(default_factory=list, repr=False, exclude=True)
    # the seq2seq model's own answers (no span selector), when the model has a selector: what each stage adds
    seq2seq_metrics: dict[str, float] | None = None

    @computed_field
    @property
    def f1(self) -> float:
        """The model's micro F1 (the baseline's in baseline-only mode)."""
        return (self.model_metrics or self.baseline_metrics or {}).get("f1", 0.0)

    @computed_field
    @property
    def baseline_f1(self) -> float | None:
        return None if self.baseline_metrics is None else self.baseline_metrics["f1"]

    @property
    def files(self) -> list[str]:
        """Every output file, for logging them as artifacts (MLflow)."""
        return list(self.paths.values())
