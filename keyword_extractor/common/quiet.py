"""Silence third-party output a user can do nothing about, and keep every warning they can act on.

Progress bars of files that load in milliseconds, a Lightning advertisement, a deprecation inside
Lightning, an MLflow guess about local dataset sources and Prefect's telemetry (which fails offline)
only bury the lines that matter in a run's log. Called first by the entry points (training process,
flow), before the libraries read their settings.
"""

from __future__ import annotations

import logging
import os
import warnings

QUIET_ENVIRONMENT = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" and "Writing model shards" bars
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" when a model is logged or read
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # the temporary local server phones home, and errors offline
}
IGNORED_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)",  # inside Lightning, not ours to change
    r"The specified dataset source can be interpreted in multiple ways",  # MLflow, about a local TSV
)


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "💡 Tip" not in record.getMessage()


def quiet_third_party_output() -> None:
    """Idempotent; explicit environment settings of the user win."""
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
            logger.addFilter(_DropAdvertisements())
