"""Long-running processes for the orchestration tests: a Prefect server, an MLflow server, a worker.

Each runs in its own process group with its output in a log file, bound to 127.0.0.1, and is stopped
with its whole group, so no server outlives its test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from service_support.local_server import free_port
from tests.conftest import PROJECT_ROOT

PREFECT = str(Path(sys.executable).with_name("prefect"))
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"{url}: the server exited:\n" + log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{url} did not answer in {timeout:.0f} s:\n" + log.read_text()[-3000:]
        try:
            if httpx.get(url, timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)


@contextmanager
def prefect_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """`prefect server start` on a free loopback port, on the env's database (SQLite by default); yields the API."""
    port = free_port()
    server = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        wait_until_healthy(server, f"http://127.0.0.1:{port}/api/health", log)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        stop(server)


@contextmanager
def mlflow_server(backend_store_uri: str, artifacts: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`mlflow server` proxying artifacts to a local folder (clients never see the folder); yields its URL."""
    port = free_port()
    command = [
        MLFLOW,
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        artifacts.as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = start(command, env, log)
    try:
        wait_until_healthy(server, f"http://127.0.0.1:{port}/health", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def prefect_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [PREFECT, "--no-prompt", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def make_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`make deploy` with this interpreter's environment (the one the suite runs in)."""
    venv = Path(sys.executable).parent.parent
    result = subprocess.run(
        ["make", "deploy", f"VENV={venv}", f"PY={sys.executable}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"make deploy:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def run_deployment(
    env: dict[str, str], deployment: str, params: dict, worker_log: Path, expect: str = "Completed"
) -> str:
    """Start a process worker on `local-process`, run `deployment` with `params` through `python -m flows.run`
    (README's `make run`): the parameters merged into the deployment's, the run's log followed to its end.
    Returns that command's output and the worker's."""
    worker = start([PREFECT, "worker", "start", "--pool", "local-process"], env, worker_log)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "flows.run", deployment, "--params", json.dumps(params), "--timeout", "600"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=660,
        )
        output = run.stdout + run.stderr + worker_log.read_text()
        assert f"final state: {expect}" in run.stdout, output[-4000:]
        return output
    finally:
        stop(worker)
