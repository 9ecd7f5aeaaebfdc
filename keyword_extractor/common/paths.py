"""Where the project is on disk: relative paths in flows, stores and builds resolve from here."""

from __future__ import annotations

import os
from pathlib import Path

CORE_PACKAGE = Path(__file__).resolve().parents[1]  # this file is keyword_extractor/common/paths.py
PROJECT_ROOT = CORE_PACKAGE.parent


def default_store(root: Path = PROJECT_ROOT) -> tuple[str, str]:
    """(tracking URI, artifact location) of the embedded MLflow store under `<root>/artifacts`.

    Both absolute, so the pipeline, a training process and `mlflow ui` see the same store from any
    working directory.
    """
    artifacts = (root / "artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{artifacts / 'mlflow.db'}", (artifacts / "mlruns").as_uri()


def tracking_uri(root: Path = PROJECT_ROOT) -> str:
    """`MLFLOW_TRACKING_URI` when set (a server), else the embedded store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_store(root)[0]
