"""The documented deployment path, for real: Prefect server → process pool → `prefect deploy` → worker → run.

Everything binds to 127.0.0.1 and lives in temporary directories (PREFECT_HOME, MLflow store,
artifacts); the server and the worker are stopped with their process groups at the end.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from keyword_extractor.integrations import tracking
from tests.conftest import prefect_env
from tests.services import make_deploy, prefect_server, run_deployment

pytestmark = pytest.mark.slow

# no int8 check at export (it decodes the validation rows twice; tests/test_flow.py's e2e run covers it). Only
# these fields: the deployment's own training options (base_model tiny, accelerator cpu) must stay.
SMALL_TRAINING = {"limit_train_rows": 96, "epochs": 1, "quantize": "off"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("deployment")


@pytest.fixture(scope="module")
def prefect_env_with_server(workdir) -> Iterator[dict[str, str]]:
    """A Prefect server (SQLite) on a free loopback port; yields the environment that talks to it."""
    env = prefect_env(
        workdir / "prefect-home",
        MLFLOW_TRACKING_URI=tracking.sqlite_uri(workdir / "mlflow.db"),
        BENTOML_HOME=str(workdir / "bentoml"),
    )
    with prefect_server(env, workdir / "server.log") as api_url:
        yield {**env, "PREFECT_API_URL": api_url}


@pytest.fixture(scope="module")
def deployed(prefect_env_with_server) -> subprocess.CompletedProcess:
    return make_deploy(prefect_env_with_server)  # the README's command, on a server that has no pool yet


def test_deployment_run_on_a_process_worker_registers_a_champion(prefect_env_with_server, deployed, workdir):
    env = prefect_env_with_server
    assert "train-pipeline/local-cpu" in deployed.stdout and "train-pipeline/kobart-gpu" in deployed.stdout
    again = make_deploy(env)  # idempotent: the pools exist now, the deployments are updated
    assert "work pool local-process: exists" in again.stdout and "work pool gpu-process: exists" in again.stdout

    params = {
        "training": SMALL_TRAINING,
        "artifacts_dir": str(workdir / "artifacts"),
        "run_name": "deployed",
        "force_promotion": True,  # a 96-row smoke model is below the baseline: this tests orchestration
        "label_audit_suspects": False,  # the e2e flow test runs the audit's ranking; here it is 25 s of nothing
    }
    said = run_deployment(env, "train-pipeline/local-cpu", params, workdir / "worker.log")
    # what the user sees in the terminal that started the run: the epochs, the headline, the summary artifact
    assert "keyword_extractor.training: epoch 1/1" in said and "pipeline summary: F1" in said
    assert "**Promotion:** forced: " in said  # force_promotion, below

    client = MlflowClient(tracking_uri=tracking.sqlite_uri(workdir / "mlflow.db"))
    champion = client.get_model_version_by_alias("keyword-extractor", "champion")
    run_record = client.get_run(champion.run_id)
    assert run_record.data.tags["pipeline.run_name"] == "deployed"
    assert run_record.data.params["limit_train_rows"] == "96"
    # a partial training object was merged into the deployment's, not put in its place
    assert (run_record.data.params["accelerator"], run_record.data.params["base_model"]) == ("cpu", "tiny")
    assert (workdir / "artifacts" / "runs" / "deployed" / "train" / "model" / "keyword_extractor.json").is_file()
    bentos = list((workdir / "bentoml" / "bentos" / "keyword-extractor").iterdir())
    assert bentos, "the deployment built no Bento"


def test_the_scheduled_retrain_ends_saying_so_when_too_few_corrections_were_accepted(
    prefect_env_with_server, deployed, workdir
):
    env = prefect_env_with_server
    assert "retrain-on-feedback/feedback-retrain" in deployed.stdout
    params = {"min_new": 1, "feedback_url": f"sqlite:///{workdir}/feedback.db", "artifacts_dir": str(workdir / "fb")}
    log = workdir / "retrain-worker.log"
    said = run_deployment(env, "retrain-on-feedback/feedback-retrain", params, log, expect="NothingToDo")
    assert "0 correction(s) accepted since the start; 1 needed: no retraining" in said
    assert not (workdir / "fb" / "runs").exists()
