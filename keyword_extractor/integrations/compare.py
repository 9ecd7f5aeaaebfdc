"""Compare registered versions without picking columns in `mlflow ui`.

    python -m keyword_extractor.integrations.compare                 # the latest versions, side by side
    python -m keyword_extractor.integrations.compare --diff 3 5      # questions whose keywords differ

Reads the tracking store (`MLFLOW_TRACKING_URI`, else the project's embedded one): every version of
the registered model with its aliases, test F1 next to the Kiwi baseline's, the training recipe and
the data it saw; for two versions, their `evaluation/predictions.tsv` question by question.
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass

from keyword_extractor.common.results import REGISTERED_MODEL

COLUMNS = ("version", "aliases", "F1", "baseline F1", "base model", "epochs", "lr", "train data", "minutes")


@dataclass(frozen=True)
class VersionRow:
    version: str
    aliases: str
    f1: str
    baseline_f1: str
    base_model: str
    epochs: str
    learning_rate: str
    train_digest: str
    minutes: str
    run_id: str

    def cells(self) -> list[str]:
        return [
            self.version,
            self.aliases,
            self.f1,
            self.baseline_f1,
            self.base_model,
            self.epochs,
            self.learning_rate,
            self.train_digest,
            self.minutes,
        ]


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def version_rows(client, limit: int) -> list[VersionRow]:
    """The newest `limit` versions, newest first."""
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL}'")
    versions = sorted(versions, key=lambda v: int(v.version), reverse=True)[:limit]
    rows = []
    for found in versions:
        version = client.get_model_version(REGISTERED_MODEL, found.version)  # search results carry no aliases
        run = client.get_run(version.run_id)
        metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
        ended = run.info.end_time or run.info.start_time
        rows.append(
            VersionRow(
                version=str(version.version),
                aliases=",".join(sorted(version.aliases)) or "—",
                f1=_number(metrics.get("model.f1")),
                baseline_f1=_number(metrics.get("baseline.f1")),
                base_model=params.get("base_model", "—"),
                epochs=params.get("epochs", "—"),
                learning_rate=params.get("learning_rate", "—"),
                train_digest=tags.get("data.train.sha256", "—")[:12],
                minutes=f"{(ended - run.info.start_time) / 60000:.1f}" if ended else "—",
                run_id=version.run_id,
            )
        )
    return rows


def render_table(rows: list[VersionRow]) -> str:
    grid = [list(COLUMNS)] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in grid]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


class UnknownVersion(LookupError):
    """A version number the registry does not hold; the message lists those it does."""


def _predictions(client, run_id: str) -> dict[str, tuple[str, str]]:
    """question → (gold keywords, predicted keywords), from the run's evaluation/predictions.tsv."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # a bar per file would bury the answers
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, "evaluation/predictions.tsv", folder)
        with open(path, encoding="utf-8", newline="") as file:
            rows = csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
            return {row["query"]: (row.get("gold", "—"), row["predicted"]) for row in rows}


def run_of_version(client, version: str) -> str:
    """The MLflow run behind a registered version; UnknownVersion naming the versions there are."""
    known = sorted(int(v.version) for v in client.search_model_versions(f"name='{REGISTERED_MODEL}'"))
    if not version.isdigit() or int(version) not in known:
        there = ", ".join(map(str, known)) or "none"
        raise UnknownVersion(f"{REGISTERED_MODEL} has no version {version!r} (versions: {there})")
    return client.get_model_version(REGISTERED_MODEL, version).run_id


def differing_questions(client, first: str, second: str) -> list[tuple[str, str, str, str]]:
    """(question, gold, keywords of `first`, keywords of `second`) wherever the two versions answer differently."""
    runs = {v: run_of_version(client, v) for v in (first, second)}
    answers = {v: _predictions(client, run_id) for v, run_id in runs.items()}
    differing = []
    for question, (gold, answer) in answers[first].items():
        other = answers[second].get(question, ("", "—"))[1]
        if answer != other:
            differing.append((question, gold, answer, other))
    return differing


if __name__ == "__main__":  # the command line lives in keyword_extractor.integrations.cli
    from keyword_extractor.integrations.cli import compare_main

    raise SystemExit(compare_main())
