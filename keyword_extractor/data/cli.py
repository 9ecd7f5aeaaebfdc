"""The data wing's command lines: `python -m keyword_extractor.data.validation` and `.data.label_audit`.

The modules themselves expose functions (`validate`, `audit`); their `__main__` hands over to these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyword_extractor.common.cli import add_labelled_file, positive_int
from keyword_extractor.data import label_audit
from keyword_extractor.data.label_audit import MIN_ROWS, audit, write_reports
from keyword_extractor.data.validation import validate
from keyword_extractor.text.keywords import DEFAULT_MAX_KEYWORDS, DEFAULT_MAX_QUERY_CHARS


def _validation_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.data.validation",
        description="Validate train/test TSV files against the labelling rules (data/LABELLING.md). "
        "Writes validation.json and validation.md; exits 1 when any row must be fixed.",
    )
    parser.add_argument("--train", required=True, type=Path, help="training file, UTF-8 'query<TAB>keyword' TSV")
    add_labelled_file(parser, "--test", required=True, help="held-out test file, same format as --train")
    parser.add_argument(
        "--report-dir",
        required=True,
        type=Path,
        help="folder for validation.json and validation.md (created if missing)",
    )
    parser.add_argument(
        "--max-query-chars",
        type=positive_int,
        default=DEFAULT_MAX_QUERY_CHARS,
        help="longest allowed query, in characters (default: %(default)s)",
    )
    parser.add_argument(
        "--max-keywords",
        type=positive_int,
        default=DEFAULT_MAX_KEYWORDS,
        help="most keywords allowed on one row (default: %(default)s)",
    )
    return parser


def validation_main(argv: list[str] | None = None) -> int:
    """CLI: print the summary; exit status 1 when there are errors, 0 otherwise."""
    args = _validation_parser().parse_args(argv)
    report = validate(
        args.train, args.test, args.report_dir, max_query_chars=args.max_query_chars, max_keywords=args.max_keywords
    )
    print(report.summary())
    if not report.ok:
        print("Fix these rows and re-run.", file=sys.stderr)
    return 0 if report.ok else 1


def label_audit_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.data.label_audit",
        description=label_audit.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--train", type=Path, default=Path("data/train.tsv"), help="the file to audit")
    parser.add_argument("--out", type=Path, default=Path("artifacts/label_audit"), help="where the reports go")
    parser.add_argument("--min-rows", type=int, default=MIN_ROWS, help="questions a span must be a candidate in")
    parser.add_argument(
        "--no-suspects", action="store_true", help="skip the out-of-fold search for likely mislabelled rows"
    )
    args = parser.parse_args(argv)
    report = audit(args.train, args.min_rows, suspects=not args.no_suspects)
    paths = write_reports(report, args.out)
    print(f"{report.summary()}\nreports: {paths[1]}, {paths[0]}")
