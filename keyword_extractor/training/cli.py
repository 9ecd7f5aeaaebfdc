"""Fine-tune a BART-family model to write the keywords of a question.

    python -m keyword_extractor.training --train data/train.tsv --base-model tiny --output-dir artifacts/train
    python -m keyword_extractor.training --train data/train.tsv --config artifacts/runs/<run>/train/train_config.json

Every option is a field of `config.TrainConfig`; this command line is generated from it. A `--config`
file (JSON, e.g. the `train_config.json` a run leaves in its folder) sets many at once; options given
on the command line override it. The heavy imports wait until after parsing, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys

from keyword_extractor.common.cli import add_model_options, model_from_args, positive_int
from keyword_extractor.common.quiet import quiet_third_party_output
from keyword_extractor.model.config import CONFIG_FILE, PRESETS, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.training",
        description="Fine-tune a BART-family seq2seq model (default KoBART) to extract keywords from Korean "
        "questions, then export the best checkpoint as a Hugging Face model directory (<output-dir>/model). "
        "Defaults are the KoBART recipe; with --base-model tiny, the tiny recipe replaces the options it names.",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--train", required=True, help="training TSV (columns: query, keyword)")
    run.add_argument("--val", help="validation TSV; if omitted, --val-fraction of --train is held out")
    run.add_argument(
        "--output-dir",
        default="artifacts/train",
        help=f"checkpoints, logs, {CONFIG_FILE} and the exported model [default: artifacts/train]",
    )
    run.add_argument(
        "--resume", action="store_true", help="continue from <output-dir>/checkpoints/last.ckpt of an interrupted run"
    )
    run.add_argument("--mlflow-run-id", help="log losses and parameters into this MLflow run (rank 0 only)")
    run.add_argument("--mlflow-tracking-uri", help="MLflow store of --mlflow-run-id (default: the project's store)")
    add_model_options(parser, TrainConfig, PRESETS)
    return parser


def config_from(args: argparse.Namespace) -> TrainConfig:
    """The --config file's options, overridden by the command line's, presets filling the rest."""
    return model_from_args(args, TrainConfig)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    config = config_from(args)
    quiet_third_party_output()
    from keyword_extractor.data.tsv import DataFileError
    from keyword_extractor.model.modeling import BaseModelUnavailable
    from keyword_extractor.training.resume import ResumeMismatch
    from keyword_extractor.training.run import TrainJob, train

    job = TrainJob(
        train=args.train,
        output_dir=args.output_dir,
        val=args.val,
        resume=args.resume,
        mlflow_run_id=args.mlflow_run_id,
        mlflow_tracking_uri=args.mlflow_tracking_uri,
    )
    try:
        train(config, job)
    except (BaseModelUnavailable, DataFileError, ResumeMismatch) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def export_main(argv: list[str] | None = None) -> None:
    from keyword_extractor.data.tsv import load_pairs
    from keyword_extractor.model.artifact import InferenceSettings
    from keyword_extractor.training.export import export_checkpoint

    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.training.export",
        description="Export a Lightning .ckpt of a keyword model as a Hugging Face model directory "
        "(safetensors, tokenizer, generation config, keyword_extractor.json).",
    )
    parser.add_argument("--checkpoint", required=True, help="the .ckpt file written by keyword_extractor.training")
    parser.add_argument("--output", required=True, help="directory to write; replaced atomically if it exists")
    stored = InferenceSettings()
    parser.add_argument(
        "--num-beams", type=positive_int, default=stored.num_beams, help="beam width stored with the model"
    )
    parser.add_argument(
        "--max-new-tokens", type=positive_int, default=stored.max_new_tokens, help="generation length cap (upper bound)"
    )
    parser.add_argument("--train", help="training TSV: size the cap from its tokenised keyword targets")
    args = parser.parse_args(argv)
    module_settings = InferenceSettings(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
    cells = load_pairs(args.train)["keyword"].tolist() if args.train else None
    path = export_checkpoint(args.checkpoint, args.output, module_settings, cells)
    print(f"exported {args.checkpoint} -> {path}")


if __name__ == "__main__":
    main()
