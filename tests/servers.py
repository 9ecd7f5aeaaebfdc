"""Real `bentoml serve` processes for tests: a free loopback port, readiness, and a clean shutdown."""

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

from tests.conftest import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    tag: str = ""  # the BentoML model it serves

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_server(
    target: str, env: dict[str, str], log: Path, cwd: Path = PROJECT_ROOT, deadline_s: float = 240
) -> Server:
    """`bentoml serve TARGET` on a free port; returns once /readyz answers 200.

    /readyz is polled with a short client timeout: while the model service still loads, BentoML
    1.4 holds a /readyz request open (up to the traffic timeout) instead of answering 503.
    """
    port = free_port()
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop_server ends the arbiter and every worker
    )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"bentoml serve exited with {process.returncode}:\n{server.tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=3).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    stop_server(server)
    raise AssertionError(f"bentoml serve was not ready within {deadline_s}s:\n{server.tail()}")


def stop_server(server: Server) -> None:
    """SIGTERM to the server's process group, then SIGKILL to whatever of it is left after 20 s.

    The workers run in sessions of their own (circus starts them so), and the public worker can take
    close to a minute to shut down gracefully: they are collected by pid before the arbiter goes.
    """
    try:
        family = [psutil.Process(server.process.pid)]
        family += family[0].children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, alive = psutil.wait_procs(family, timeout=20)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
    server.process.wait(timeout=10)


def bentoml_env(home: Path, **extra: str) -> dict[str, str]:
    """No PYTHONPATH: `bentoml serve` must find the code itself (project dir, or the Bento's own copy)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BENTOML_", "KEYWORD_")) and k != "PYTHONPATH"}
    env.update(BENTOML_HOME=str(home), PYTHONUNBUFFERED="1", **extra)
    return env
