"""Start and stop the keyword Bento for benchmarks: a temporary BENTOML_HOME, 127.0.0.1, a free port.

The model directory is imported the documented way (`python -m keyword_extractor.bento_models import`)
and served with `bentoml serve` from the project directory, in a process group of its own so that
stopping it ends the arbiter and every service worker. Environment overrides (`KEYWORD_*`) are
passed through, so the same model can be measured under different serving settings.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(home: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without BentoML/KEYWORD settings, plus a private BENTOML_HOME and `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENTOML_", "KEYWORD_")) and k != "PYTHONPATH"}
    env.update(BENTOML_HOME=str(home), PYTHONUNBUFFERED="1", **(overrides or {}))
    return env


def import_model(model_dir: str | Path, home: Path) -> str:
    """Copy the model directory into the BentoML store under `home`; returns its tag."""
    done = subprocess.run(
        [sys.executable, "-m", "keyword_extractor.bento_models", "import", "--model-dir", str(model_dir)],
        cwd=PROJECT_ROOT,
        env={**clean_env(home), "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


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


@dataclass
class BentoProcess:
    url: str
    process: subprocess.Popen
    log: Path

    def family(self) -> list[psutil.Process]:
        """The arbiter and every process it started (the service workers run in sessions of their own)."""
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        """Resident memory of the arbiter and all its workers, summed."""
        total = 0
        for process in self.family():
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start(tag: str, home: Path, overrides: dict[str, str] | None = None, deadline_s: float = 300) -> BentoProcess:
    """`bentoml serve` of the project's service with KEYWORD_MODEL_TAG=tag; returns once /readyz answers 200."""
    port = free_port()
    log = home / f"serve-{port}.log"
    env = clean_env(home, {"KEYWORD_MODEL_TAG": tag, **(overrides or {})})
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", ".", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = BentoProcess(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n{server.tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=3).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    stop(server)
    raise RuntimeError(f"bentoml serve was not ready within {deadline_s}s:\n{server.tail()}")


def stop(server: BentoProcess) -> None:
    """SIGTERM to the process group and every worker, SIGKILL to what is left after 20 s."""
    family = server.family()
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for process in family[1:]:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=20)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    server.process.wait(timeout=10)


@contextmanager
def serving(model_dir: str | Path, overrides: dict[str, str] | None = None, home: Path | None = None):
    """Import `model_dir` into a temporary BENTOML_HOME (or `home`) and serve it for the `with` block."""
    with tempfile.TemporaryDirectory(prefix="bench-bentoml-") as scratch:
        home = home or Path(scratch)
        tag = import_model(model_dir, home)
        server = start(tag, home, overrides)
        try:
            yield server
        finally:
            stop(server)
