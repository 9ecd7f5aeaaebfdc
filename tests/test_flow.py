"""The train-pipeline flow for real: ephemeral Prefect API, SQLite MLflow store, tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from keyword_extractor import tracking
from tests.conftest import PROJECT_ROOT, TRAIN_TSV, prefect_env

SMALL_RUN = ["--base-model", "tiny", "--limit-train-rows", "96", "--epochs", "1", "--denoise-epochs", "0"]


def run_flow(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = prefect_env(workdir / "prefect-home", MLFLOW_TRACKING_URI=tracking.sqlite_uri(workdir / "mlflow.db"))
    return subprocess.run(
        [sys.executable, "-m", "flows.train_pipeline", "--artifacts-dir", str(workdir / "artifacts"), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def printed_summary(stdout: str) -> dict:
    return json.loads(stdout[stdout.rindex('{\n  "run_name"') :])


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = tmp_path_factory.mktemp("flow")
    return workdir, run_flow(workdir, *SMALL_RUN, "--run-name", "e2e")


def test_flow_runs_every_step_and_registers_a_champion(pipeline_run):
    workdir, result = pipeline_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = printed_summary(result.stdout)
    run_dir = workdir / "artifacts" / "runs" / "e2e"
    assert summary["run_dir"] == str(run_dir)
    assert (summary["model_version"], summary["alias"]) == ("1", "champion")
    assert 0.0 <= summary["f1"] <= 1.0 and summary["baseline_f1"] > 0.5
    for relative in ("validation/validation.md", "train/model/keyword_extractor.json", "evaluation/report.md"):
        assert (run_dir / relative).is_file(), relative
    logs = result.stdout + result.stderr
    for step in ("validate-data", "open-tracking-run", "fine-tune", "evaluate", "log-evaluation", "register"):
        assert "Finished in state Completed()" in logs and step in logs, step


def test_flow_records_everything_in_one_mlflow_run(pipeline_run, monkeypatch):
    workdir, result = pipeline_run
    summary = printed_summary(result.stdout)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.sqlite_uri(workdir / "mlflow.db"))
    client = MlflowClient(tracking_uri=tracking.sqlite_uri(workdir / "mlflow.db"))
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.metrics["model.f1"] == pytest.approx(summary["f1"])
    assert run.data.metrics["baseline.f1"] == pytest.approx(summary["baseline_f1"])
    assert run.data.params["base_model"] == "tiny" and run.data.params["limit_train_rows"] == "96"
    assert client.get_metric_history(run.info.run_id, "val_loss")
    assert run.data.tags["pipeline.run_name"] == "e2e" and run.data.tags["prefect.flow_run_id"]
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train", "test"}
    files = {f.path for f in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/predictions.tsv"} <= files
    champion = client.get_model_version_by_alias("keyword-extractor", "champion")
    assert champion.run_id == run.info.run_id


def test_malformed_data_fails_at_validation_before_training(tmp_path):
    bad = tmp_path / "bad.tsv"
    rows = TRAIN_TSV.read_text(encoding="utf-8").splitlines()[:30]  # header + 29 rows: the bad row is line 31
    bad.write_text("\n".join(rows + ["면세한도는?\t면세, , 한도"]) + "\n", encoding="utf-8")
    result = run_flow(tmp_path, *SMALL_RUN, "--train", str(bad), "--run-name", "bad")
    logs = result.stdout + result.stderr
    assert result.returncode != 0
    assert "line 31, column 'keyword'" in logs and "empty item" in logs
    assert "keyword_extractor.train" not in logs  # fine-tuning never started
    runs_dir = tmp_path / "artifacts" / "runs" / "bad"
    assert not (runs_dir / "train").exists()
    client = MlflowClient(tracking_uri=tracking.sqlite_uri(tmp_path / "mlflow.db"))
    assert client.search_registered_models() == []
