"""Model vs Kiwi baseline on the validation folds of a training file: how a choice transfers.

    python -m benchmarks.transfer --json benchmarks/results/transfer/tiny.json
    python -m benchmarks.transfer --folds customs→general,general→customs -- --epochs 20
    python -m benchmarks.transfer --reuse-models artifacts/transfer --work artifacts/transfer-try

For every fold of `keyword_extractor.data.folds` (random 10% splits, leave-domain-out pair, unseen topics) it
trains a model on the fold's training part through the real entry point (`python -m
keyword_extractor.training`, tiny profile unless the training options after `--` say otherwise) and
evaluates it beside the Kiwi baseline on the held-out part (`keyword_extractor.evaluation`). A change is
kept when the model's margin over the baseline does not shrink on any fold. data/test.tsv is not used.
`--reuse-models` takes each fold's trained seq2seq model from an earlier run's work folder and fits
only the span selector again: minutes instead of a training per fold, for changes of the selector.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.data.folds import Fold, validation_folds
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.evaluation.evaluate import evaluate


def write_pairs(frame: pd.DataFrame, path: Path) -> Path:
    """A `query<TAB>keyword` file as LABELLING.md defines it (no quoting: the rows are already valid)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["query\tkeyword", *(f"{q}\t{k}" for q, k in zip(frame["query"], frame["keyword"], strict=True))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def refit_selector(fold: Fold, trained: Path, work: Path) -> None:
    """The fold's seq2seq model from an earlier run (`trained`: its train folder), its selector fitted anew."""
    from keyword_extractor.data.folds import split_train_val
    from keyword_extractor.model import integrity
    from keyword_extractor.model.config import CONFIG_FILE, TrainConfig
    from keyword_extractor.model.span_selector import SCORER_FILE, SETTINGS_FILE
    from keyword_extractor.training.run import fit_span_selector

    if (work / "train").exists():
        shutil.rmtree(work / "train")
    shutil.copytree(trained / "model", work / "train" / "model")
    shutil.copy(trained / CONFIG_FILE, work / "train" / CONFIG_FILE)
    for stale in (SCORER_FILE, SETTINGS_FILE):
        (work / "train" / "model" / stale).unlink(missing_ok=True)
    integrity.forget(work / "train" / "model", (SCORER_FILE, SETTINGS_FILE))
    config = TrainConfig.load(work / "train" / CONFIG_FILE)
    train_rows, val_rows = split_train_val(fold.train, config.val_fraction, config.seed)  # as training split it
    fit_span_selector(config, work / "train" / "model", train_rows, val_rows)


def run_fold(fold: Fold, work: Path, train_args: list[str], reuse: Path | None = None) -> dict:
    """Train on the fold's training part (or reuse its model), evaluate model and baseline on its held-out part."""
    started, name = time.monotonic(), fold.name
    train = write_pairs(fold.train, work / "train.tsv")
    held_out = write_pairs(fold.held_out, work / "held_out.tsv")
    if reuse is not None:
        print(f"[{name}] seq2seq model from {reuse}, span selector fitted again", flush=True)
        refit_selector(fold, reuse, work)
        return score_fold(fold, work, held_out, started)
    command = [
        sys.executable,
        "-m",
        "keyword_extractor.training",
        *("--train", str(train), "--output-dir", str(work / "train"), "--base-model", "tiny", "--quantize", "off"),
        *train_args,
    ]
    print(f"[{name}] {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
    (work / "train.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise SystemExit(f"[{name}] training failed; see {work / 'train.log'}:\n{done.stderr[-2000:]}")
    return score_fold(fold, work, held_out, started)


def score_fold(fold: Fold, work: Path, held_out: Path, started: float) -> dict:
    """The fold's row of the report: model and baseline on the held-out questions."""
    name = fold.name
    result = evaluate(held_out, work / "evaluation", work / "train" / "model")
    row = {
        "fold": name,
        "train_rows": len(fold.train),
        "held_out_rows": len(fold.held_out),
        "model_f1": result.model_metrics["f1"],
        "baseline_f1": result.baseline_metrics["f1"],
        "seq2seq_f1": (result.seq2seq_metrics or {}).get("f1"),
        "model_recall": result.model_metrics["recall"],
        "baseline_recall": result.baseline_metrics["recall"],
        "seconds": round(time.monotonic() - started, 1),
    }
    row["margin"] = row["model_f1"] - row["baseline_f1"]
    print(f"[{name}] model F1 {row['model_f1']:.4f} vs baseline {row['baseline_f1']:.4f} ({row['margin']:+.4f})")
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "| fold | train rows | held-out rows | model F1 | baseline F1 | margin | seq2seq alone F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        seq2seq = "–" if row["seq2seq_f1"] is None else f"{row['seq2seq_f1']:.4f}"
        lines.append(
            f"| {row['fold']} | {row['train_rows']} | {row['held_out_rows']} | {row['model_f1']:.4f} | "
            f"{row['baseline_f1']:.4f} | {row['margin']:+.4f} | {seq2seq} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.transfer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train", type=Path, default=PROJECT_ROOT / "data" / "train.tsv", help="the training file")
    parser.add_argument("--folds", help="comma-separated fold names [default: all: random-7, random-11, …]")
    parser.add_argument("--work", type=Path, default=Path("artifacts/transfer"), help="fold files and models")
    parser.add_argument("--json", type=Path, help="write the rows and the command here")
    parser.add_argument(
        "--reuse-models", type=Path, help="an earlier run's --work folder: reuse its models, refit the selectors"
    )
    args = parser.parse_args(own)

    folds = validation_folds(load_pairs(args.train))
    if args.folds:
        wanted = args.folds.split(",")
        unknown = sorted(set(wanted) - {fold.name for fold in folds})
        if unknown:
            parser.error(f"unknown fold(s) {unknown}; the folds are {[fold.name for fold in folds]}")
        folds = [fold for fold in folds if fold.name in wanted]
    rows = []
    for fold in folds:
        folder = fold.name.replace("→", "-to-")
        reuse = args.reuse_models / folder / "train" if args.reuse_models else None
        rows.append(run_fold(fold, args.work / folder, train_args, reuse))
    print(markdown(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"command": "python -m benchmarks.transfer " + " ".join(argv), "train": str(args.train), "rows": rows}
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
