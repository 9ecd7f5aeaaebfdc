"""`python -m keyword_extractor.evaluation`: score a model directory on a labelled file beside the baseline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyword_extractor.common.cli import add_batch_size, add_device, add_labelled_file, add_model_dir
from keyword_extractor.data.tsv import DataFileError
from keyword_extractor.evaluation.evaluate import evaluate
from keyword_extractor.evaluation.report import (
    CHART_FILE,
    DEFAULT_OUTPUT_DIR,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    headline_text,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.evaluation",
        description="Score a keyword model on a held-out TSV next to the Kiwi noun-phrase baseline. Writes "
        f"{PREDICTIONS_FILE}, {METRICS_FILE}, {REPORT_FILE} and {CHART_FILE}; prints the headline table. "
        "Exits 2 when the model directory or the test file cannot be used.",
    )
    add_model_dir(parser, required=False, help="model directory (with keyword_extractor.json) to evaluate")
    add_labelled_file(parser, "--test", required=True, help="held-out file, UTF-8 'query<TAB>keyword' TSV")
    parser.add_argument(
        "--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="folder for the outputs (default: %(default)s)"
    )
    parser.add_argument("--baseline-only", action="store_true", help="evaluate only the Kiwi baseline, no model")
    add_batch_size(parser, None, help="questions per generation batch")
    add_device(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI: evaluate, print the headline table; exit 2 on a bad model directory or test file."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.baseline_only and args.model_dir:
        parser.error("--baseline-only evaluates no model; drop --model-dir or --baseline-only")
    if not args.baseline_only and not args.model_dir:
        parser.error("--model-dir is required (or --baseline-only)")
    try:
        result = evaluate(
            args.test,
            args.output_dir,
            None if args.baseline_only else args.model_dir,
            batch_size=args.batch_size,
            device=args.device,
        )
    except (FileNotFoundError, DataFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"evaluated {result.n} questions from {result.test_path} (sha256 {result.test_digest[:12]})")
    print(headline_text(result))
    print(f"outputs: {Path(result.paths['report']).parent}")
    return 0
