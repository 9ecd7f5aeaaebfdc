"""Serve the keyword Bento for benchmarks, and tell its processes apart.

The model directory is imported into a temporary BENTOML_HOME and served from the project directory
with `service_support.local_server` (127.0.0.1, a free port, a process group of its own).
Environment overrides (`KEYWORD_*`) are passed through, so the same model can be measured under
different serving settings.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from service_support.local_server import ServerProcess, bentoml_env, import_model, start_bento, stop_bento


def role(process: psutil.Process) -> str:
    """'arbiter', 'KeywordService', 'KeywordModel' or the process name, from the command line."""
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return "gone"
    if "--service-name" in cmdline:
        return cmdline[cmdline.index("--service-name") + 1]
    return "arbiter" if "serve" in cmdline else process.name()


def cpu_seconds(processes: list[psutil.Process], name: str | None = None) -> dict[str, float]:
    """User + system CPU seconds so far, per role (or all under `name`); a process that is gone counts 0."""
    found: dict[str, float] = {}
    for process in processes:
        try:
            times = process.cpu_times()
            key = name or role(process)
        except psutil.Error:
            continue
        found[key] = found.get(key, 0.0) + times.user + times.system
    return found


@contextmanager
def serving(
    model_dir: str | Path, overrides: dict[str, str] | None = None, home: Path | None = None
) -> Iterator[ServerProcess]:
    """Import `model_dir` into a temporary BENTOML_HOME (or `home`) and serve it for the `with` block."""
    with tempfile.TemporaryDirectory(prefix="bench-bentoml-") as scratch:
        home = home or Path(scratch)
        tag = import_model(model_dir, bentoml_env(home))
        server = start_bento(".", bentoml_env(home, KEYWORD_MODEL_TAG=tag, **(overrides or {})), home / "serve.log")
        server.tag = tag
        try:
            yield server
        finally:
            stop_bento(server)
