"""deploy/docker-compose.yml, read as Docker Compose would read it (Docker is not needed for this check)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import PROJECT_ROOT


def test_compose_file_wires_the_same_topology():
    """deploy/docker-compose.yml, read as Docker Compose would (no Docker here): names and URLs agree."""
    deploy = PROJECT_ROOT / "deploy"
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "prefect-server", "worker", "keyword-service"}
    created = set(re.findall(r"CREATE DATABASE (\w+);", (deploy / "initdb" / "create-databases.sql").read_text()))
    assert created == {"mlflow", "prefect", "feedback"}
    user = services["postgres"]["environment"]["POSTGRES_USER"]
    assert f"{user}:${{POSTGRES_PASSWORD:-change-me}}@postgres:5432/mlflow" in services["mlflow"]["command"]
    prefect_db = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://") and prefect_db.endswith("@postgres:5432/prefect")
    for name in ("worker", "keyword-service"):
        env = services[name]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert (
            env["KEYWORD_FEEDBACK_URL"]
            == f"postgresql+psycopg://{user}:${{POSTGRES_PASSWORD:-change-me}}@postgres:5432/feedback"
        )
        assert services[name]["build"]["dockerfile"] == "deploy/project.Dockerfile"
    assert "--port 5000" in services["mlflow"]["command"] and "--port 4200" in services["prefect-server"]["command"]
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published), published
    for service in services.values():
        if "build" in service:
            assert (PROJECT_ROOT / service["build"]["dockerfile"]).is_file()
    assert "scripts/deploy.sh" in services["worker"]["command"] and (PROJECT_ROOT / "scripts" / "deploy.sh").is_file()
