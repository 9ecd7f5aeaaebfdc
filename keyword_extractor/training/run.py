"""One fine-tuning run: base model → Lightning training → exported model directory.

Driven by a `TrainConfig` (every option) and a `TrainJob` (this run's files). Started by
`python -m keyword_extractor.training`, a process of its own: Lightning's DDP launcher re-executes that
command line for every rank, which must never re-run a Prefect flow. Only rank 0 exports.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger

from keyword_extractor.common.files import write_atomic
from keyword_extractor.common.progress import progress_callbacks
from keyword_extractor.common.results import SUMMARY_FILE, TrainResult
from keyword_extractor.model.artifact import InferenceSettings, max_new_tokens_for
from keyword_extractor.model.config import CONFIG_FILE, TrainConfig
from keyword_extractor.model.encoding import EncodingSettings
from keyword_extractor.model.modeling import KeywordSeq2Seq, load_base
from keyword_extractor.model.tiny import build_tiny_base
from keyword_extractor.text.keywords import clean_keywords, parse_keywords
from keyword_extractor.training.checkpoints import VAL_F1, ValidationKeywordF1
from keyword_extractor.training.cpu_precision import Int8Check, measure_int8, store_int8_allowed
from keyword_extractor.training.datamodule import KeywordDataModule
from keyword_extractor.training.resume import (
    LAST_CHECKPOINT,
    check_or_record,
    checkpoints_dir,
    last_checkpoint,
    run_identity,
)

log = logging.getLogger("keyword_extractor.training")


@dataclass(frozen=True)
class TrainJob:
    """This run's files and tracking: what differs between two runs of the same config."""

    train: str
    output_dir: str
    val: str | None = None
    resume: bool = False
    mlflow_run_id: str | None = None
    mlflow_tracking_uri: str | None = None


def share_cpu_cores(config: TrainConfig) -> None:
    """Give each CPU rank its share of the cores.

    Ranks that each start one thread per core oversubscribe the machine, and
    OpenMP's spin-waiting then makes every step many times slower.
    """
    on_cpu = config.accelerator == "cpu" or (config.accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and config.devices not in ("auto", "1") and int(config.devices) > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(config.devices)))


def resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def prepare_base(config: TrainConfig, job: TrainJob) -> Path:
    """A local directory holding the base weights and tokenizer, built or downloaded as needed.

    Ranks launched together (torchrun, SLURM) would all build or download into the same folder; a file
    lock lets the first do it while the others wait, then find it ready.
    """
    from filelock import FileLock

    output_dir = Path(job.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(output_dir / ".base.lock"):
        return _prepare_base_unlocked(config, job, output_dir)


def _prepare_base_unlocked(config: TrainConfig, job: TrainJob, output_dir: Path) -> Path:
    if config.is_tiny:
        return build_tiny_base(job.train, output_dir / "base", config.tiny_spec()).resolve()
    if Path(config.base_model).is_dir():
        return Path(config.base_model).resolve()
    target = output_dir / "base"
    if not (target / "config.json").is_file():
        model, tokenizer = load_base(config.base_model)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    return target.resolve()


def mlflow_loggers(job: TrainJob) -> list[Logger]:
    """Lightning's MLflow logger attached to the pipeline's run, so epochs land next to the evaluation."""
    if not job.mlflow_run_id:
        return []
    from pytorch_lightning.loggers import MLFlowLogger

    from keyword_extractor.common.paths import tracking_uri

    return [MLFlowLogger(tracking_uri=job.mlflow_tracking_uri or tracking_uri(), run_id=job.mlflow_run_id)]


def build_trainer(
    config: TrainConfig, output_dir: Path, loggers: list[Logger], val_f1: ValidationKeywordF1
) -> tuple[pl.Trainer, ModelCheckpoint]:
    mode = "max" if config.select_by == VAL_F1 else "min"
    checkpoints = checkpoints_dir(output_dir)
    checkpoint = ModelCheckpoint(
        dirpath=checkpoints, filename="best", monitor=config.select_by, mode=mode, save_top_k=1
    )
    # `--resume` continues from last.ckpt. The best checkpoint's own `save_last` rewrites it only in an epoch
    # that is a new best (Lightning 2.6), so an interrupted run would go back to its best epoch and redo the
    # rest; a checkpoint without a monitor is written after every epoch.
    latest = ModelCheckpoint(dirpath=checkpoints, filename=LAST_CHECKPOINT, save_top_k=1, enable_version_counter=False)
    selection: list = [val_f1, checkpoint, latest]
    if config.early_stopping_patience:
        selection.append(EarlyStopping(monitor=config.select_by, mode=mode, patience=config.early_stopping_patience))
    trainer = pl.Trainer(
        max_epochs=config.epochs,
        max_steps=config.max_steps,
        accelerator=config.accelerator,
        devices=config.devices if config.devices == "auto" else int(config.devices),
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=resolve_precision(config.precision),
        gradient_clip_val=config.gradient_clip,
        callbacks=[*selection, LearningRateMonitor(logging_interval="step"), *progress_callbacks()],
        enable_progress_bar=sys.stdout.isatty(),
        enable_model_summary=sys.stdout.isatty(),
        logger=loggers,
        default_root_dir=output_dir,
        use_distributed_sampler=False,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    return trainer, checkpoint


def validation_f1(
    config: TrainConfig, tokenizer, datamodule: KeywordDataModule, inference: InferenceSettings
) -> ValidationKeywordF1:
    """The callback that decodes the first `val_f1_rows` validation questions every epoch."""
    rows = datamodule.val_rows.head(config.val_f1_rows)
    golds = [clean_keywords(parse_keywords(cell)) for cell in rows["keyword"]]
    greedy = InferenceSettings(**{**inference.__dict__, "num_beams": 1})
    return ValidationKeywordF1(tokenizer, rows["query"].tolist(), golds, greedy)


def choose_cpu_precision(config: TrainConfig, model_dir: Path, datamodule: KeywordDataModule) -> Int8Check | None:
    """Store whether int8 may serve the exported model on CPU; with 'auto', measured on the validation rows.

    Whether it then *does* is decided where the model is loaded (keyword_extractor.inference.serving_precision).
    """
    if config.quantize != "auto":
        store_int8_allowed(model_dir, config.quantize == "int8")
        return None
    rows = datamodule.val_rows
    golds = [clean_keywords(parse_keywords(cell)) for cell in rows["keyword"]]
    check = measure_int8(model_dir, rows["query"].tolist(), golds, max_f1_drop=config.int8_max_f1_drop)
    store_int8_allowed(model_dir, check.int8_allowed, check)
    log.info("%s, %.1fs", check.describe(), check.seconds)
    return check


def fit_span_selector(
    config: TrainConfig, model_dir: Path, train_rows: pd.DataFrame, val_rows: pd.DataFrame
) -> dict | None:
    """Fit the span selector (keyword_extractor.model.span_selector) and store it in the exported directory.

    Its scorer learns from the training rows, its combiner from the exported model's answers on the
    validation rows. Returns its validation report, or None when it is off or could not be fitted.
    Also called on its own (benchmarks/transfer.py) to try a change of the selector on a trained model.
    """
    if not config.span_selector or config.grounding != "morphemes":
        return None
    from keyword_extractor.inference.extractor import KeywordExtractor
    from keyword_extractor.model import span_selector

    started = time.time()
    extractor = KeywordExtractor(model_dir)
    val_questions = val_rows["query"].tolist()
    selector = span_selector.fit(
        extractor.analyser.parse_batch(train_rows["query"].tolist()),
        [clean_keywords(parse_keywords(cell)) for cell in train_rows["keyword"]],
        extractor.analyser.parse_batch(val_questions),
        [clean_keywords(parse_keywords(cell)) for cell in val_rows["keyword"]],
        extractor.extract(val_questions, select_spans=False),
        limit=extractor.settings.max_keywords,
        seed=config.seed,
    )
    if selector is None:
        return None
    selector.save(model_dir)
    log.info("span selector stored in %s (%.1fs)", model_dir, time.time() - started)
    return selector.report


def log_metrics(loggers: list[Logger], metrics: dict[str, float]) -> None:
    """Metrics measured after training (span selector, int8 check) into the MLflow run, next to the losses."""
    from pytorch_lightning.loggers import MLFlowLogger

    for logger in loggers:
        if isinstance(logger, MLFlowLogger):
            for name, value in metrics.items():
                logger.experiment.log_metric(logger.run_id, name, value)


def prepare_process(config: TrainConfig) -> None:
    """Seed, TF32 on GPUs, and this process's share of the CPU cores."""
    pl.seed_everything(config.seed, workers=True)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    share_cpu_cores(config)


def build_datamodule(config: TrainConfig, job: TrainJob, tokenizer) -> KeywordDataModule:
    """The training and validation rows, encoded as the tokenizer and the length limits say."""
    settings = EncodingSettings.from_tokenizer(tokenizer, config.max_source_length, config.max_target_length)
    datamodule = KeywordDataModule(
        tokenizer,
        job.train,
        job.val,
        settings=settings,
        batch_size=config.batch_size,
        val_fraction=config.val_fraction,
        num_workers=config.num_workers,
        seed=config.seed,
        group_by_length=config.group_by_length,
        limit_rows=config.limit_train_rows,
        augment_copies=config.augment_copies,
    )
    datamodule.setup("fit")
    return datamodule


def inference_settings(config: TrainConfig, datamodule: KeywordDataModule) -> InferenceSettings:
    """What the exported directory stores for inference; the generation cap sized from the training targets."""
    return InferenceSettings(
        max_source_length=config.max_source_length,
        num_beams=config.num_beams,
        max_new_tokens=max_new_tokens_for(datamodule.labelled_target_lengths(), cap=config.max_new_tokens),
        base_model=config.base_model,
        grounding=config.grounding,
    )


def resume_checkpoint(job: TrainJob, output_dir: Path) -> str | None:
    last = last_checkpoint(output_dir)
    if job.resume and not last.is_file():
        log.warning("resume asked for but %s does not exist; starting from scratch", last)
    return str(last) if job.resume and last.is_file() else None


def train(config: TrainConfig, job: TrainJob, extra_loggers: list[Logger] | None = None) -> TrainResult | None:
    """Run training; returns the result on rank 0 and None on the other ranks."""
    started = time.time()
    output_dir = Path(job.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    prepare_process(config)
    base_dir = prepare_base(config, job)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    datamodule = build_datamodule(config, job, tokenizer)
    inference = inference_settings(config, datamodule)
    loggers: list[Logger] = [CSVLogger(output_dir, name="logs"), *mlflow_loggers(job), *(extra_loggers or [])]
    val_f1 = validation_f1(config, tokenizer, datamodule, inference)
    trainer, checkpoint = build_trainer(config, output_dir, loggers, val_f1)
    if trainer.is_global_zero:
        config.save(output_dir / CONFIG_FILE)  # the run's exact settings, beside its checkpoints
    for logger in loggers:  # loggers write on rank 0 only; the same fields as the config file
        logger.log_hyperparams(config.model_dump())
    steps = config.epochs * datamodule.steps_per_epoch(datamodule.train_set, trainer.world_size)
    # The schedule always spans the planned epochs: max_steps stops early (like an
    # interruption) and a resume then continues the very same schedule.
    module = KeywordSeq2Seq(str(base_dir), config.model_dump(), total_steps=steps)
    resume_from = resume_checkpoint(job, output_dir)
    identity = run_identity(config, job.train, job.val, base_dir)
    check_or_record(checkpoints_dir(output_dir), identity, resume_from is not None, trainer.is_global_zero)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return None
    exported = after_fit(config, output_dir, checkpoint, datamodule, inference, loggers)
    result = TrainResult(
        **exported,
        epochs_run=trainer.current_epoch,
        seconds=round(time.time() - started, 1),
        resumed_from=resume_from,
        output_dir=str(output_dir.resolve()),
    )
    write_atomic(output_dir / SUMMARY_FILE, result.model_dump_json(indent=2))
    best = result.best_val_f1 if config.select_by == VAL_F1 else result.best_val_loss
    print(f"exported model to {result.model_dir} (best {config.select_by} {best}, {result.seconds}s)")
    return result


def after_fit(
    config: TrainConfig,
    output_dir: Path,
    checkpoint: ModelCheckpoint,
    datamodule: KeywordDataModule,
    inference: InferenceSettings,
    loggers: list[Logger],
) -> dict[str, Any]:
    """Export the best checkpoint, fit its span selector, decide whether int8 may serve it (rank 0).

    Returns the `TrainResult` fields these steps know; the run's epochs, time and resume point are the
    caller's.
    """
    best = checkpoint.best_model_path or str(last_checkpoint(output_dir))
    from keyword_extractor.training.export import export_checkpoint

    model_dir = export_checkpoint(best, output_dir / "model", inference)
    selector_report = fit_span_selector(config, model_dir, datamodule.train_rows, datamodule.val_rows)
    if selector_report:
        log_metrics(loggers, {k: v for k, v in selector_report.items() if k.startswith("val_f1")})
    int8_check = choose_cpu_precision(config, model_dir, datamodule)
    if int8_check:
        log_metrics(loggers, {"val_f1_fp32": int8_check.fp32_f1, "val_f1_int8": int8_check.int8_f1})
    best_score = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None
    return {
        "model_dir": str(model_dir.resolve()),
        "best_checkpoint": str(Path(best).resolve()),
        "best_val_loss": best_score if config.select_by == "val_loss" else None,
        "best_val_f1": best_score if config.select_by == VAL_F1 else None,
        "int8_allowed": InferenceSettings.load(model_dir).int8_allowed,
        "int8_check": int8_check.as_dict() if int8_check else None,
        "span_selector": selector_report,
    }
