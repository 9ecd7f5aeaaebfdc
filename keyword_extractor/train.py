"""Fine-tune a BART-family model to write the keywords of a question.

    python -m keyword_extractor.train --train data/train.tsv --base-model tiny --output-dir artifacts/train

A process of its own: Lightning's DDP launcher re-executes this command line
for every rank, which must never re-run a Prefect flow. Only rank 0 exports.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pydantic import BaseModel, ConfigDict
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger

from keyword_extractor.artifact import GROUNDING_MODES, InferenceSettings, max_new_tokens_for
from keyword_extractor.cpu_precision import DEFAULT_MAX_F1_DROP, Int8Check, measure_int8, store_cpu_precision
from keyword_extractor.data import EncodingSettings, KeywordDataModule
from keyword_extractor.keywords import clean_keywords, parse_keywords
from keyword_extractor.modeling import DEFAULT_BASE_MODEL, TINY, BaseModelUnavailable, KeywordSeq2Seq, load_base
from keyword_extractor.progress import progress_callbacks
from keyword_extractor.selection import VAL_F1, ValidationKeywordF1
from keyword_extractor.tiny import TinySpec, build_tiny_base
from keyword_extractor.tsv import DataFileError

log = logging.getLogger("keyword_extractor.train")
SUMMARY_FILE = "train_summary.json"

EARLY_STOPPING_PATIENCE_TINY = 4
AUGMENT_COPIES_TINY = 1

# The original KoBART recipe, and what a from-scratch tiny model needs instead.
PROFILE_DEFAULTS: dict[str, dict] = {
    "pretrained": dict(
        epochs=2,
        denoise_epochs=0,
        batch_size=8,
        learning_rate=3e-5,
        warmup_ratio=0.1,
        weight_decay=0.01,
        schedule="linear",
        num_beams=1,
        early_stopping_patience=0,
        augment_copies=0,
    ),
    # Copy-friendly init + keyword- and morpheme-aware BPE (see tiny.TinySpec) learn in a few epochs. With
    # keyword-substituted copies and val_f1 selection the validation F1 (a split of data/train.tsv) still
    # rose at epoch 12, so up to 14 epochs run, stopped early after 4 without a better val_f1.
    "tiny": dict(
        epochs=14,
        denoise_epochs=0,
        batch_size=16,
        learning_rate=1e-3,
        warmup_ratio=0.1,
        weight_decay=0.01,
        schedule="onecycle",
        # Greedy: 0.96 F1 points below beam 3 on data/test.tsv, 2.5x the batched throughput (benchmarks/README.md).
        num_beams=1,
        early_stopping_patience=EARLY_STOPPING_PATIENCE_TINY,
        augment_copies=AUGMENT_COPIES_TINY,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keyword_extractor.train",
        description="Fine-tune a BART-family seq2seq model (default KoBART) to extract keywords from Korean "
        "questions, then export the best checkpoint as a Hugging Face model directory (<output-dir>/model).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--train", required=True, help="training TSV (columns: query, keyword)")
    data.add_argument("--val", help="validation TSV; if omitted, --val-fraction of --train is held out")
    data.add_argument("--val-fraction", type=float, default=0.05, help="share of --train held out when no --val")
    data.add_argument("--max-source-length", type=int, default=128, help="question tokens kept (incl. <s> </s>)")
    data.add_argument("--max-target-length", type=int, default=64, help="keyword tokens kept (incl. </s>)")
    data.add_argument("--limit-train-rows", type=int, help="use only the first N training rows (smoke tests)")
    data.add_argument(
        "--no-group-by-length",
        dest="group_by_length",
        action="store_false",
        help="plain shuffling instead of batching rows of similar length together",
    )
    data.add_argument(
        "--augment-copies",
        type=int,
        help="extra training rows per row, with keywords swapped for other rows' keywords "
        f"(keyword_extractor.augment) [0; tiny {AUGMENT_COPIES_TINY}]",
    )
    data.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")

    model = p.add_argument_group("model")
    model.add_argument(
        "--base-model",
        default=DEFAULT_BASE_MODEL,
        help="Hugging Face id or local directory of a BART-family model, or 'tiny' to build a "
        "small model from scratch offline (tokenizer trained on --train)",
    )
    model.add_argument("--tiny-vocab-size", type=int, default=TinySpec.vocab_size, help="tiny profile: BPE vocab")
    model.add_argument("--tiny-d-model", type=int, default=TinySpec.d_model, help="tiny profile: hidden size")
    model.add_argument(
        "--tiny-layers", type=int, default=TinySpec.layers, help="tiny profile: encoder = decoder layers"
    )
    model.add_argument(
        "--no-tiny-morpheme-tokenizer",
        dest="tiny_morpheme_tokenizer",
        action="store_false",
        help="tiny profile: let BPE merges cross Kiwi morpheme boundaries",
    )
    model.add_argument("--tiny-ffn-dim", type=int, default=TinySpec.ffn_dim, help="tiny profile: feed-forward size")

    opt = p.add_argument_group("optimisation (defaults: the KoBART recipe; 'tiny' has its own, shown in brackets)")
    tiny = PROFILE_DEFAULTS["tiny"]
    opt.add_argument("--epochs", type=int, help=f"keyword fine-tuning epochs [2; tiny {tiny['epochs']}]")
    opt.add_argument(
        "--denoise-epochs",
        type=int,
        help=f"epochs of BART denoising on the questions before fine-tuning [0; tiny {tiny['denoise_epochs']}]",
    )
    opt.add_argument("--mask-ratio", type=float, default=0.2, help="share of tokens masked in denoising")
    opt.add_argument(
        "--warmup-task",
        choices=["denoise", "spans"],
        default="denoise",
        help="warm-up objective: rebuild masked questions (BART denoising) or copy random question "
        "words as a keyword list",
    )
    opt.add_argument("--batch-size", type=int, help=f"rows per batch and device [8; tiny {tiny['batch_size']}]")
    opt.add_argument(
        "--learning-rate", type=float, help=f"peak AdamW learning rate [3e-5; tiny {tiny['learning_rate']}]"
    )
    opt.add_argument("--warmup-ratio", type=float, help="share of steps with linear warm-up [0.1]")
    opt.add_argument("--weight-decay", type=float, help="AdamW decay (never on bias/LayerNorm) [0.01]")
    opt.add_argument(
        "--schedule", choices=["linear", "onecycle"], help=f"LR schedule [linear; tiny {tiny['schedule']}]"
    )
    opt.add_argument(
        "--select-by",
        choices=(VAL_F1, "val_loss"),
        default=VAL_F1,
        help="what picks the exported checkpoint (and stops early): keyword F1 of the validation questions, "
        "decoded as the exported model will decode them, or the validation loss",
    )
    opt.add_argument(
        "--early-stopping-patience",
        type=int,
        help="stop after N validation epochs without a better --select-by value; 0: never "
        f"[0; tiny {EARLY_STOPPING_PATIENCE_TINY}]",
    )
    opt.add_argument(
        "--val-f1-rows",
        type=int,
        default=1000,
        help="validation questions decoded per epoch for val_f1 (the first N of the validation set)",
    )
    opt.add_argument("--gradient-clip", type=float, default=1.0, help="gradient norm clipping")
    opt.add_argument("--max-steps", type=int, default=-1, help="stop after N optimiser steps (-1: run all epochs)")
    opt.add_argument("--seed", type=int, default=42, help="seed for data split, shuffling and init")

    hw = p.add_argument_group("hardware")
    hw.add_argument("--accelerator", default="auto", help="cpu, gpu or auto")
    hw.add_argument("--devices", default="auto", help="number of devices per node, or auto (all GPUs)")
    hw.add_argument("--num-nodes", type=int, default=1, help="machines (with torchrun / SLURM)")
    hw.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, deepspeed, ...")
    hw.add_argument(
        "--precision",
        default="auto",
        help="32-true, bf16-mixed, 16-mixed, or auto (bf16-mixed on GPUs that support it)",
    )

    run = p.add_argument_group("output")
    run.add_argument("--output-dir", default="artifacts/train", help="checkpoints, logs, exported model")
    run.add_argument(
        "--resume", action="store_true", help="continue from <output-dir>/checkpoints/last.ckpt of an interrupted run"
    )
    run.add_argument("--mlflow-run-id", help="log losses and parameters into this MLflow run (rank 0 only)")
    run.add_argument("--mlflow-tracking-uri", help="MLflow store of --mlflow-run-id (default: the project's store)")
    run.add_argument(
        "--num-beams", type=int, help=f"beam width stored with the exported model [1; tiny {tiny['num_beams']}]"
    )
    run.add_argument(
        "--grounding",
        choices=GROUNDING_MODES,
        default="morphemes",
        help="decoding constraint stored with the exported model (and used for val_f1): 'morphemes' allows "
        "only whole spans of the question's Kiwi words, 'substrings' any substring, 'off' anything",
    )
    run.add_argument(
        "--span-selector",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit the span selector (keyword_extractor.span_selector) after training and store it with the "
        "model: it chooses the final keywords among the candidate spans, the model's answer among its evidence "
        "(morpheme grounding only)",
    )
    run.add_argument(
        "--max-new-tokens",
        type=int,
        default=48,
        help="upper bound on the generation cap stored with the exported model; the cap itself is sized from "
        "the tokenised training targets (p99.9 length + 25%%)",
    )
    run.add_argument(
        "--quantize",
        choices=("off", "auto", "int8"),
        default="off",
        help="CPU serving precision stored with the exported model: 'off' keeps fp32 (answers independent of "
        "batching); 'auto' decodes the validation questions in fp32 and in dynamic int8 and stores int8 only "
        "if its F1 is at most --int8-max-f1-drop lower (faster on CPU, but answers then depend slightly on "
        "which questions share a batch)",
    )
    run.add_argument(
        "--int8-max-f1-drop",
        type=float,
        default=DEFAULT_MAX_F1_DROP,
        help="F1 that --quantize auto may give up for int8 (0.01 = one point)",
    )
    return p


def resolve_profile(args: argparse.Namespace) -> argparse.Namespace:
    """Fill options the user left unset from the profile's defaults."""
    defaults = PROFILE_DEFAULTS["tiny" if args.base_model == TINY else "pretrained"]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def share_cpu_cores(args: argparse.Namespace) -> None:
    """Give each CPU rank its share of the cores.

    Ranks that each start one thread per core oversubscribe the machine, and
    OpenMP's spin-waiting then makes every step many times slower.
    """
    on_cpu = args.accelerator == "cpu" or (args.accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and args.devices not in ("auto", "1") and int(args.devices) > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(args.devices)))


def resolve_precision(precision: str) -> str:
    if precision != "auto":
        return precision
    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def prepare_base(args: argparse.Namespace, output_dir: Path) -> Path:
    """A local directory holding the base weights and tokenizer, built or downloaded as needed."""
    if args.base_model == TINY:
        spec = TinySpec(
            vocab_size=args.tiny_vocab_size,
            d_model=args.tiny_d_model,
            layers=args.tiny_layers,
            ffn_dim=args.tiny_ffn_dim,
            seed=args.seed,
            morpheme_aware_tokenizer=args.tiny_morpheme_tokenizer,
        )
        return build_tiny_base(args.train, output_dir / "base", spec).resolve()
    if Path(args.base_model).is_dir():
        return Path(args.base_model).resolve()
    target = output_dir / "base"
    if not (target / "config.json").is_file():
        model, tokenizer = load_base(args.base_model)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
    return target.resolve()


def mlflow_loggers(args: argparse.Namespace) -> list[Logger]:
    """Lightning's MLflow logger attached to the pipeline's run, so epochs land next to the evaluation."""
    if not args.mlflow_run_id:
        return []
    from pytorch_lightning.loggers import MLFlowLogger

    from keyword_extractor.tracking import tracking_uri

    return [MLFlowLogger(tracking_uri=args.mlflow_tracking_uri or tracking_uri(), run_id=args.mlflow_run_id)]


class TrainResult(BaseModel):
    """What a training run produced; written to <output-dir>/train_summary.json and returned by the Prefect task."""

    model_config = ConfigDict(frozen=True)

    model_dir: str
    best_checkpoint: str
    best_val_loss: float | None
    best_val_f1: float | None = None
    epochs_run: int
    seconds: float
    resumed_from: str | None
    output_dir: str = ""  # the run's folder: checkpoints, logs, the summary
    quantize: str = ""  # CPU serving precision stored with the model ("int8" or "")
    int8_check: dict | None = None  # the validation measurement behind it (cpu_precision.Int8Check)
    span_selector: dict | None = None  # validation F1 of the seq2seq model alone and with the span selector


def build_trainer(
    args: argparse.Namespace, output_dir: Path, loggers: list[Logger], val_f1: ValidationKeywordF1
) -> tuple[pl.Trainer, ModelCheckpoint]:
    mode = "max" if args.select_by == VAL_F1 else "min"
    checkpoint = ModelCheckpoint(
        dirpath=output_dir / "checkpoints",
        filename="best",
        monitor=args.select_by,
        mode=mode,
        save_top_k=1,
        save_last=True,
    )
    selection: list = [val_f1, checkpoint]
    if args.early_stopping_patience:
        selection.append(EarlyStopping(monitor=args.select_by, mode=mode, patience=args.early_stopping_patience))
    trainer = pl.Trainer(
        max_epochs=args.denoise_epochs + args.epochs,
        max_steps=args.max_steps,
        accelerator=args.accelerator,
        devices=args.devices if args.devices == "auto" else int(args.devices),
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=resolve_precision(args.precision),
        gradient_clip_val=args.gradient_clip,
        callbacks=[*selection, LearningRateMonitor(logging_interval="step"), *progress_callbacks()],
        enable_progress_bar=sys.stdout.isatty(),
        enable_model_summary=sys.stdout.isatty(),
        logger=loggers,
        default_root_dir=output_dir,
        reload_dataloaders_every_n_epochs=1 if args.denoise_epochs else 0,
        use_distributed_sampler=False,
        log_every_n_steps=10,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    return trainer, checkpoint


def validation_f1(
    args: argparse.Namespace, tokenizer, datamodule: KeywordDataModule, inference: InferenceSettings
) -> ValidationKeywordF1:
    """The callback that decodes the first --val-f1-rows validation questions every epoch."""
    rows = datamodule.val_rows.head(args.val_f1_rows)
    golds = [clean_keywords(parse_keywords(cell)) for cell in rows["keyword"]]
    greedy = InferenceSettings(**{**inference.__dict__, "num_beams": 1})
    return ValidationKeywordF1(tokenizer, rows["query"].tolist(), golds, greedy)


def choose_cpu_precision(args: argparse.Namespace, model_dir: Path, datamodule: KeywordDataModule) -> Int8Check | None:
    """Store the CPU serving precision in the exported directory; with 'auto', measured on the validation rows."""
    if args.quantize != "auto":
        store_cpu_precision(model_dir, "int8" if args.quantize == "int8" else "")
        return None
    rows = datamodule.val_rows
    golds = [clean_keywords(parse_keywords(cell)) for cell in rows["keyword"]]
    check = measure_int8(model_dir, rows["query"].tolist(), golds, max_f1_drop=args.int8_max_f1_drop)
    store_cpu_precision(model_dir, check.quantize, check)
    log.info("%s, %.1fs", check.describe(), check.seconds)
    return check


def fit_span_selector(args: argparse.Namespace, model_dir: Path, datamodule: KeywordDataModule) -> dict | None:
    """Fit the span selector (keyword_extractor.span_selector) and store it in the exported directory.

    Its scorer learns from the training rows, its combiner from the exported model's answers on the
    validation rows. Returns its validation report, or None when it is off or could not be fitted.
    """
    if not args.span_selector or args.grounding != "morphemes":
        return None
    from keyword_extractor import span_selector
    from keyword_extractor.inference import KeywordExtractor

    started = time.time()
    extractor = KeywordExtractor(model_dir)
    train_rows, val_rows = datamodule.train_rows, datamodule.val_rows
    val_questions = val_rows["query"].tolist()
    selector = span_selector.fit(
        extractor.analyser.parse_batch(train_rows["query"].tolist()),
        [clean_keywords(parse_keywords(cell)) for cell in train_rows["keyword"]],
        extractor.analyser.parse_batch(val_questions),
        [clean_keywords(parse_keywords(cell)) for cell in val_rows["keyword"]],
        extractor.extract(val_questions, select_spans=False),
        limit=extractor.settings.max_keywords,
        seed=args.seed,
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


def log_int8_check(loggers: list[Logger], check: Int8Check) -> None:
    """Both validation F1s in the MLflow run, next to the losses, so runs can be compared on them."""
    log_metrics(loggers, {"val_f1_fp32": check.fp32_f1, "val_f1_int8": check.int8_f1})


def train(args: argparse.Namespace, extra_loggers: list[Logger] | None = None) -> TrainResult | None:
    """Run training; returns the result on rank 0 and None on the other ranks."""
    started = time.time()
    args = resolve_profile(args)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(args.seed, workers=True)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    share_cpu_cores(args)
    base_dir = prepare_base(args, output_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    settings = EncodingSettings.from_tokenizer(tokenizer, args.max_source_length, args.max_target_length)
    datamodule = KeywordDataModule(
        tokenizer,
        args.train,
        args.val,
        settings=settings,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        num_workers=args.num_workers,
        seed=args.seed,
        denoise_epochs=args.denoise_epochs,
        mask_ratio=args.mask_ratio,
        warmup_task=args.warmup_task,
        group_by_length=args.group_by_length,
        limit_rows=args.limit_train_rows,
        augment_copies=args.augment_copies,
    )
    datamodule.setup("fit")
    inference = InferenceSettings(
        max_source_length=args.max_source_length,
        num_beams=args.num_beams,
        max_new_tokens=max_new_tokens_for(datamodule.labelled_target_lengths(), cap=args.max_new_tokens),
        base_model=args.base_model,
        grounding=args.grounding,
    )
    loggers: list[Logger] = [CSVLogger(output_dir, name="logs"), *mlflow_loggers(args), *(extra_loggers or [])]
    val_f1 = validation_f1(args, tokenizer, datamodule, inference)
    trainer, checkpoint = build_trainer(args, output_dir, loggers, val_f1)
    for logger in loggers:  # loggers write on rank 0 only
        logger.log_hyperparams({k: v for k, v in vars(args).items() if not k.startswith("mlflow")})
    world = trainer.world_size
    steps = args.epochs * datamodule.steps_per_epoch(datamodule.train_set, world)
    if args.denoise_epochs:
        steps += args.denoise_epochs * datamodule.steps_per_epoch(datamodule.denoise_set, world)
    # The schedule always spans the planned epochs: --max-steps stops early (like an
    # interruption) and a --resume then continues the very same schedule.
    module = KeywordSeq2Seq(
        str(base_dir),
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_ratio=args.warmup_ratio,
        total_steps=steps,
        schedule=args.schedule,
    )
    last = output_dir / "checkpoints" / "last.ckpt"
    resume_from = str(last) if args.resume and last.is_file() else None
    if args.resume and resume_from is None:
        log.warning("--resume given but %s does not exist; starting from scratch", last)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return None
    best = checkpoint.best_model_path or checkpoint.last_model_path
    from keyword_extractor.export import export_checkpoint

    model_dir = export_checkpoint(best, output_dir / "model", inference)
    selector_report = fit_span_selector(args, model_dir, datamodule)
    if selector_report:
        log_metrics(loggers, {k: v for k, v in selector_report.items() if k.startswith("val_f1")})
    int8_check = choose_cpu_precision(args, model_dir, datamodule)
    if int8_check:
        log_int8_check(loggers, int8_check)
    best_score = float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None
    result = TrainResult(
        model_dir=str(model_dir.resolve()),
        best_checkpoint=str(Path(best).resolve()),
        best_val_loss=best_score if args.select_by == "val_loss" else None,
        best_val_f1=best_score if args.select_by == VAL_F1 else None,
        epochs_run=trainer.current_epoch,
        seconds=round(time.time() - started, 1),
        resumed_from=resume_from,
        output_dir=str(output_dir.resolve()),
        quantize=InferenceSettings.load(model_dir).quantize,
        int8_check=int8_check.as_dict() if int8_check else None,
        span_selector=selector_report,
    )
    (output_dir / SUMMARY_FILE).write_text(result.model_dump_json(indent=2))
    print(f"exported model to {result.model_dir} (best {args.select_by} {best_score}, {result.seconds}s)")
    return result


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        train(args)
    except (BaseModelUnavailable, DataFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
