"""`python -m keyword_extractor.inference.predict`: keywords for a file of questions, resumable."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from keyword_extractor.common.cli import add_batch_size, add_model_dir
from keyword_extractor.inference import predict
from keyword_extractor.inference.predict import EXIT_BAD_INPUT, InputError, predict_file
from keyword_extractor.model.artifact import DEFAULT_BATCH_SIZE


def predict_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.inference.predict",
        description="Keywords for every question of a .txt or .tsv file, written as JSON Lines in input order.",
        epilog=predict.__doc__.split("\n\n", 2)[2]
        + "\nExit status 2: the input or output cannot be used (message on stderr).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_dir(parser)
    parser.add_argument("--input", required=True, type=Path, help=".txt (one question per line) or .tsv with a header")
    parser.add_argument("--column", default="query", help="question column of a .tsv input (default: query)")
    parser.add_argument("--output", required=True, type=Path, help=".jsonl to write; continued if it exists")
    add_batch_size(parser, DEFAULT_BATCH_SIZE, help="questions per model call and per write")
    parser.add_argument("--overwrite", action="store_true", help="discard an existing output instead of resuming it")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        before, written = predict_file(
            args.model_dir,
            args.input,
            args.output,
            column=args.column,
            batch_size=args.batch_size,
            overwrite=args.overwrite,
        )
    except (InputError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    seconds = time.perf_counter() - started
    kept = f" ({before} already there)" if before else ""
    print(f"wrote {written} question(s) to {args.output}{kept} in {seconds:.1f}s")
    return 0
