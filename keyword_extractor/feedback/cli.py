"""`python -m keyword_extractor.feedback`: list, review and export the corrections people sent.

    python -m keyword_extractor.feedback list --status pending
    python -m keyword_extractor.feedback review --accept 3 4 --reject 5 --reviewer kim
    python -m keyword_extractor.feedback export --out data/feedback.tsv

The store is KEYWORD_FEEDBACK_URL (any SQLAlchemy URL), else artifacts/feedback.db; --store overrides both.
"""

from __future__ import annotations

import argparse
import os
import sys

from keyword_extractor.common.cli import add_labelled_file
from keyword_extractor.feedback import DEFAULT_URL, URL_VARIABLE
from keyword_extractor.feedback.store import STATUSES, FeedbackStore


def store_url(given: str | None = None) -> str:
    """--store, else KEYWORD_FEEDBACK_URL, else the SQLite file under artifacts/."""
    return given or os.environ.get(URL_VARIABLE) or DEFAULT_URL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.feedback",
        description=__doc__.split("\n\n", 1)[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--store", help=f"SQLAlchemy URL of the store [{URL_VARIABLE}, else {DEFAULT_URL}]")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="corrections in the order they arrived")
    listing.add_argument("--status", choices=STATUSES, help="only this status")
    review = commands.add_parser("review", help="accept or reject corrections by id")
    review.add_argument("--accept", type=int, nargs="+", default=[], metavar="ID")
    review.add_argument("--reject", type=int, nargs="+", default=[], metavar="ID")
    review.add_argument("--reviewer", default=os.environ.get("USER", ""), help="who decided [$USER]")
    export = commands.add_parser("export", help="accepted corrections as a training file")
    export.add_argument("--out", required=True, help="TSV to write (replaced atomically), e.g. data/feedback.tsv")
    add_labelled_file(export, "--test", help="questions to leave out, so that none leaks into training")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    store = FeedbackStore(store_url(args.store))
    if args.command == "list":
        for stored in store.corrections(args.status):
            c = stored.correction
            print(f"#{stored.id} [{stored.status}] {c.query}")
            print(f"    model v{c.model_version}: {', '.join(c.model_keywords)}")
            print(f"    corrected: {', '.join(c.keywords)}" + (f"  ({c.comment})" if c.comment else ""))
        print(", ".join(f"{count} {status}" for status, count in store.counts().items()))
    elif args.command == "review":
        if overlap := set(args.accept) & set(args.reject):
            print(f"error: ids both accepted and rejected: {sorted(overlap)}", file=sys.stderr)
            return 2
        accepted = store.review(args.accept, "accepted", args.reviewer)
        rejected = store.review(args.reject, "rejected", args.reviewer)
        print(f"accepted {accepted}, rejected {rejected}")
    else:
        from keyword_extractor.feedback.export import export_accepted

        print(export_accepted(store, args.out, args.test).summary())
    return 0
