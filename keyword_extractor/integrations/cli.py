"""The integrations' command lines: `python -m keyword_extractor.integrations.bento_models` and `.compare`."""

from __future__ import annotations

import argparse
import logging
import sys

from keyword_extractor.common.cli import add_model_dir, positive_int
from keyword_extractor.common.results import CHAMPION, REGISTERED_MODEL
from keyword_extractor.integrations.bento_models import (
    DEFAULT_BENTOFILE,
    build_bento,
    import_from_registry,
    import_model_dir,
)
from keyword_extractor.integrations.compare import UnknownVersion, differing_questions, render_table, version_rows


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--label expects KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def bento_models_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.integrations.bento_models",
        description="Move keyword models into the BentoML model store and build Bentos (BENTOML_HOME decides where).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("import", help="import a local model directory; prints the model tag")
    add_model_dir(local)
    local.add_argument("--label", action="append", default=[], help="KEY=VALUE label (repeatable)")
    remote = commands.add_parser("import-registry", help="import a registered MLflow version; prints the tag")
    remote.add_argument("--alias", default=CHAMPION, help=f"registry alias (default: {CHAMPION})")
    remote.add_argument("--version", help="registered version (wins over --alias)")
    build = commands.add_parser("build", help="build the Bento around a stored model; prints the Bento tag")
    build.add_argument("--model-tag", required=True, help="BentoML model tag, e.g. keyword-extractor:abc123")
    build.add_argument(
        "--bentofile",
        default=DEFAULT_BENTOFILE,
        help=f"build file in the project root: {DEFAULT_BENTOFILE} (CPU image) or bentofile.cuda.yaml (CUDA image) "
        f"[default: {DEFAULT_BENTOFILE}]",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "import":
        try:
            print(import_model_dir(args.model_dir, labels=_labels(args.label)))
        except FileNotFoundError as error:  # a missing or damaged model directory: one line, nothing imported
            print(f"error: {error}", file=sys.stderr)
            return 2
    elif args.command == "import-registry":
        print(import_from_registry(args.alias, args.version))
    else:
        tag = build_bento(args.model_tag, bentofile=args.bentofile)
        print(tag)
        print(f"serve it with: bentoml serve {tag}", flush=True)
    return 0


def compare_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.integrations.compare",
        description=f"Registered versions of {REGISTERED_MODEL} side by side (F1 vs the Kiwi baseline, recipe, "
        "data), and the questions two versions answer differently. Store: MLFLOW_TRACKING_URI, else the "
        "project's artifacts/mlflow.db.",
    )
    parser.add_argument("--last", type=positive_int, default=10, help="how many versions, newest first [10]")
    parser.add_argument("--diff", nargs=2, metavar=("A", "B"), help="two versions: list the questions they differ on")
    args = parser.parse_args(argv)
    from mlflow import MlflowClient

    from keyword_extractor.integrations import tracking

    tracking.configure()
    client = MlflowClient()
    rows = version_rows(client, args.last)
    if not rows:
        print(f"no registered versions of {REGISTERED_MODEL} in {tracking.tracking_uri()}", file=sys.stderr)
        return 1
    print(render_table(rows))
    if args.diff:
        first, second = args.diff
        try:
            changed = differing_questions(client, first, second)
        except UnknownVersion as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"\n{len(changed)} questions answered differently by v{first} and v{second}:")
        for question, gold, a, b in changed:
            print(f"- {question}\n    gold: {gold}\n    v{first}: {a}\n    v{second}: {b}")
    return 0
