"""`bentoml serve` as a child process on 127.0.0.1: a private model store, readiness, a clean shutdown.

The test suite and the serving benchmarks both run the real service; this is the one place that
knows how to start it (free loopback port, its own process group, /readyz polled with a short client
timeout) and how to stop it without leaving service workers behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from keyword_extractor.common.paths import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bentoml_env(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without BentoML/KEYWORD settings or PYTHONPATH, with BENTOML_HOME=`home`.

    No PYTHONPATH: `bentoml serve` must find the code itself (the project dir, or the Bento's own copy).
    Corrections sent to this server go to a store under `home`, never to the project's artifacts/.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENTOML_", "KEYWORD_")) and k != "PYTHONPATH"}
    env.update(
        {"BENTOML_HOME": str(home), "PYTHONUNBUFFERED": "1", "KEYWORD_FEEDBACK_URL": f"sqlite:///{home}/feedback.db"}
    )
    env.update(extra)
    return env


def import_model(model_dir: str | Path, env: dict[str, str], labels: dict[str, str] | None = None) -> str:
    """Copy a model directory into the BentoML store of `env` the documented way; returns its tag."""
    command = [
        sys.executable,
        "-m",
        "keyword_extractor.integrations.bento_models",
        "import",
        "--model-dir",
        str(model_dir),
    ]
    for key, value in (labels or {}).items():
        command += ["--label", f"{key}={value}"]
    done = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"importing {model_dir} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class ServerProcess:
    """A server started as a child process: where it answers, the process, and its log."""

    url: str
    process: subprocess.Popen
    log: Path
    tag: str = ""  # the BentoML model it serves, when known

    def family(self) -> list[psutil.Process]:
        """The arbiter and every process it started (BentoML's workers run in sessions of their own)."""
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
        return self.log.read_text(errors="replace")[-4000:]


def launch_bento(
    target: str, env: dict[str, str], log: Path, cwd: Path = PROJECT_ROOT, host: str | None = "127.0.0.1"
) -> ServerProcess:
    """`bentoml serve TARGET` started on a free loopback port, its output in `log`; does not wait for it.

    `host=None` passes no --host, so the service's own default decides (it is loopback too).
    """
    port = free_port()
    with log.open("w") as handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                target,
                *(["--host", host] if host else []),
                "--port",
                str(port),
            ],
            cwd=cwd,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop_bento ends the arbiter and every worker
        )
    return ServerProcess(f"http://127.0.0.1:{port}", process, log)


def start_bento(
    target: str,
    env: dict[str, str],
    log: Path,
    cwd: Path = PROJECT_ROOT,
    deadline_s: float = 240,
    host: str | None = "127.0.0.1",
) -> ServerProcess:
    """`launch_bento`, then wait until /readyz answers 200.

    /readyz is polled with a short client timeout: while the model service still loads, BentoML's
    probe waits up to 5 s for it before the service answers 503 (`service_support.readiness`).
    """
    server = launch_bento(target, env, log, cwd, host)
    process = server.process
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
    stop_bento(server)
    raise RuntimeError(f"bentoml serve was not ready within {deadline_s}s:\n{server.tail()}")


def stop_bento(server: ServerProcess) -> None:
    """SIGTERM to the process group and to every worker, SIGKILL to whatever is left after 5 s.

    The workers run in sessions of their own and the public worker can take close to a minute to shut
    down gracefully (a client that never finished its body keeps it waiting): they are collected by pid
    before the arbiter goes, and a test has nothing to gain from waiting for a graceful end.
    """
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
    _, alive = psutil.wait_procs(family, timeout=5)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    server.process.wait(timeout=10)
