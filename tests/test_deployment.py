"""The documented deployment path, for real: Prefect server → process pool → `prefect deploy` → worker → run.

Everything binds to 127.0.0.1 and lives in temporary directories (PREFECT_HOME, MLflow store,
artifacts); the server and the worker are stopped with their process groups at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from keyword_extractor.integrations import tracking
from tests.bento_process import free_port
from tests.conftest import PROJECT_ROOT, prefect_env

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).with_name("prefect"))
SMALL_TRAINING = {"base_model": "tiny", "accelerator": "cpu", "limit_train_rows": 96, "epochs": 1}


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


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deployment")


@pytest.fixture(scope="module")
def prefect_server(workdir) -> Iterator[dict[str, str]]:
    """`prefect server start` on a free loopback port; yields the environment that talks to it."""
    port = free_port()
    env = prefect_env(
        workdir / "prefect-home",
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        MLFLOW_TRACKING_URI=tracking.sqlite_uri(workdir / "mlflow.db"),
        BENTOML_HOME=str(workdir / "bentoml"),
    )
    log = workdir / "server.log"
    server = start([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "prefect server did not answer /api/health:\n" + log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield env
    finally:
        stop(server)


def test_deployment_run_on_a_process_worker_registers_a_champion(prefect_server, workdir):
    env = prefect_server
    deployed = make_deploy(env)  # the README's command, on a server that has no pool yet
    assert "train-pipeline/local-cpu" in deployed.stdout and "train-pipeline/kobart-gpu" in deployed.stdout
    again = make_deploy(env)  # idempotent: the pools exist now, the deployments are updated
    assert "work pool local-process: exists" in again.stdout and "work pool gpu-process: exists" in again.stdout

    worker = start([PREFECT, "worker", "start", "--pool", "local-process"], env, workdir / "worker.log")
    try:
        params = {
            "training": SMALL_TRAINING,
            "artifacts_dir": str(workdir / "artifacts"),
            "run_name": "deployed",
            "force_promotion": True,  # a 96-row smoke model is below the baseline: this tests orchestration
        }
        run = prefect_cli(
            env,
            "deployment",
            "run",
            "train-pipeline/local-cpu",
            "--params",
            json.dumps(params),
            "--watch",
            "--watch-timeout",
            "600",
            timeout=660,
        )
        output = run.stdout + (workdir / "worker.log").read_text()
        assert "Completed" in run.stdout, output[-4000:]
    finally:
        stop(worker)

    client = MlflowClient(tracking_uri=tracking.sqlite_uri(workdir / "mlflow.db"))
    champion = client.get_model_version_by_alias("keyword-extractor", "champion")
    run_record = client.get_run(champion.run_id)
    assert run_record.data.tags["pipeline.run_name"] == "deployed"
    assert run_record.data.params["limit_train_rows"] == "96"
    assert (workdir / "artifacts" / "runs" / "deployed" / "train" / "model" / "keyword_extractor.json").is_file()
    bentos = list((workdir / "bentoml" / "bentos" / "keyword-extractor").iterdir())
    assert bentos, "the deployment built no Bento"
