"""Where the project is on disk: relative paths in flows, stores and builds resolve from here."""

from __future__ import annotations

from pathlib import Path

CORE_PACKAGE = Path(__file__).resolve().parent
PROJECT_ROOT = CORE_PACKAGE.parent
