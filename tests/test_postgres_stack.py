"""The scaled-out stack of deploy/docker-compose.yml, without Docker: PostgreSQL behind both servers.

A real PostgreSQL (initdb/pg_ctl in a temporary folder, 127.0.0.1) holds the MLflow tracking server's
store and the Prefect server's database; the MLflow server proxies artifacts to a folder that only it
writes. The pipeline runs through the `local-cpu` deployment on a process worker, and the result is
read back the way a team member would: the registry and the artifacts through MLflow's REST API, the
flow run from Prefect's tables in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import prefect_env
from tests.postgres_process import Postgres, running_postgres, server_binaries
from tests.services import make_deploy, mlflow_server, prefect_server, run_deployment
from tests.test_deployment import SMALL_TRAINING

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        server_binaries() is None,
        reason="PostgreSQL server binaries not found and not installable here: run scripts/install_postgres.sh",
    ),
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with running_postgres() as server:
        server.create_database("mlflow")
        server.create_database("prefect")
        server.create_database("feedback")
        yield server


@pytest.fixture(scope="module")
def stack(postgres, tmp_path_factory) -> Iterator[tuple[dict[str, str], str, Path]]:
    """(environment of a worker, MLflow server URL, the artifact folder behind it)."""
    workdir = tmp_path_factory.mktemp("stack")
    artifacts = workdir / "mlflow-artifacts"
    base = prefect_env(workdir / "prefect-home", BENTOML_HOME=str(workdir / "bentoml"))
    server_env = {**base, "PREFECT_API_DATABASE_CONNECTION_URL": postgres.url("prefect", "postgresql+asyncpg")}
    with (
        mlflow_server(postgres.url("mlflow"), artifacts, base, workdir / "mlflow.log") as mlflow_url,
        prefect_server(server_env, workdir / "prefect.log") as api_url,
    ):
        yield {**base, "PREFECT_API_URL": api_url, "MLFLOW_TRACKING_URI": mlflow_url}, mlflow_url, artifacts


def test_pipeline_through_a_deployment_on_postgres_backed_servers(stack, postgres, tmp_path):
    env, mlflow_url, artifact_store = stack
    make_deploy(env)
    params = {
        "training": SMALL_TRAINING,
        "artifacts_dir": str(tmp_path / "artifacts"),
        "run_name": "on-postgres",
        "force_promotion": True,  # a 96-row smoke model is below the baseline: this tests the stack
        "label_audit_suspects": False,  # the e2e flow test runs the audit's ranking; here it is 25 s of nothing
    }
    run_deployment(env, "train-pipeline/local-cpu", params, tmp_path / "worker.log")

    api = f"{mlflow_url}/api/2.0/mlflow"
    champion = httpx.get(
        f"{api}/registered-models/alias", params={"name": "keyword-extractor", "alias": "champion"}, timeout=30
    )
    assert champion.status_code == 200, champion.text
    version = champion.json()["model_version"]
    run = httpx.get(f"{api}/runs/get", params={"run_id": version["run_id"]}, timeout=30).json()["run"]
    tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
    params_logged = {param["key"]: param["value"] for param in run["data"]["params"]}
    assert tags["pipeline.run_name"] == "on-postgres" and params_logged["limit_train_rows"] == "96"
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:"), "artifacts must go through the server"

    listed = httpx.get(f"{api}/artifacts/list", params={"run_id": version["run_id"], "path": "evaluation"}, timeout=30)
    files = {Path(entry["path"]).name for entry in listed.json().get("files", [])}
    assert {"report.md", "predictions.tsv", "metrics.json"} <= files, files
    report = httpx.get(
        f"{mlflow_url}/get-artifact", params={"run_id": version["run_id"], "path": "evaluation/report.md"}, timeout=30
    )
    assert report.status_code == 200 and "F1" in report.text
    assert any(path.name == "report.md" for path in artifact_store.rglob("report.md")), "not in the shared store"

    # both servers really kept their state in PostgreSQL
    assert postgres.sql("mlflow", "SELECT count(*) FROM registered_models WHERE name = 'keyword-extractor'") == "1"
    states = postgres.sql("prefect", "SELECT state_type FROM flow_run WHERE name IS NOT NULL").split()
    assert "COMPLETED" in states, states
    assert list((Path(env["BENTOML_HOME"]) / "bentos" / "keyword-extractor").iterdir()), "no Bento was built"


def test_the_feedback_store_on_postgresql_takes_concurrent_writers(postgres):
    """The deploy/ stack keeps corrections in PostgreSQL: the same content key decides there too."""
    from concurrent.futures import ProcessPoolExecutor

    from keyword_extractor.feedback.store import FeedbackStore
    from tests.test_feedback import SHARED, _add_many

    url = postgres.url("feedback", "postgresql+psycopg")
    FeedbackStore(url).dispose()
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_add_many, [url] * 4, range(4)))
    created = sum(created for answers in results for _, created in answers)
    stored = FeedbackStore(url).corrections()
    assert len(stored) == created == len(SHARED) + 4 * 10
