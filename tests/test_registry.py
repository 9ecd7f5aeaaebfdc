"""MLflow tracking and the model registry, on a real SQLite store in a temp dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from keyword_extractor.integrations import registry, tracking
from tests.conftest import PROJECT_ROOT, TEST_TSV, TRAIN_TSV, run_module

QUESTIONS = ["여행자 휴대품 면세한도는 얼마인가요?", "관세 체납하면 어떻게 돼?"]


@pytest.fixture()
def store(tmp_path, monkeypatch) -> str:
    uri = tracking.sqlite_uri(tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.configure()
    yield uri
    mlflow.set_tracking_uri(None)


def new_run(name: str) -> str:
    return tracking.start_pipeline_run(name, {"pipeline.run_name": name})


def test_default_store_is_absolute_under_artifacts(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, artifacts = tracking.default_store(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/artifacts/mlflow.db"
    assert artifacts == (tmp_path / "artifacts" / "mlruns").resolve().as_uri()
    assert tracking.ui_command(tmp_path).startswith(f"mlflow ui --backend-store-uri {uri}")


def test_artifacts_stay_beside_the_sqlite_database(store, tmp_path):
    experiment = mlflow.get_experiment_by_name(tracking.EXPERIMENT_NAME)
    assert experiment.artifact_location == (tmp_path / "mlruns").as_uri()


def test_registry_quality_gate_and_idempotency(store, tiny_model_dir):
    first = registry.register(new_run("a"), tiny_model_dir, 0.50, "digest-1", baseline_f1=0.30)
    assert (first.version, first.alias, first.promoted, first.created) == ("1", "champion", True, True)

    again = registry.register(first.run_id, tiny_model_dir, 0.50, "digest-1", baseline_f1=0.30)
    assert (again.version, again.created) == ("1", False)

    worse = registry.register(new_run("b"), tiny_model_dir, 0.40, "digest-1", baseline_f1=0.30)
    assert (worse.version, worse.alias, worse.promoted) == ("2", "challenger", False)
    assert worse.champion_f1 == 0.50 and "0.4000 < champion v1 0.5000" in worse.decision

    equal = registry.register(new_run("c"), tiny_model_dir, 0.50, "digest-1", baseline_f1=0.30)
    assert (equal.version, equal.alias, equal.promoted) == ("3", "champion", True)

    margin = registry.register(new_run("d"), tiny_model_dir, 0.52, "digest-1", baseline_f1=0.30, margin=0.05)
    assert not margin.promoted
    forced = registry.register(new_run("e"), tiny_model_dir, 0.10, "digest-1", baseline_f1=0.30, force=True)
    assert forced.promoted and forced.decision.startswith("forced")

    client = MlflowClient()
    assert client.get_model_version_by_alias(registry.REGISTERED_MODEL, "champion").version in (5, "5")
    assert len(client.search_model_versions(f"name='{registry.REGISTERED_MODEL}'")) == 5
    second = client.get_model_version(registry.REGISTERED_MODEL, "2")
    assert second.tags["promotion_decision"] == worse.decision
    # the version list in `mlflow ui` says how good each version is, on which data, from which base model
    assert second.description.startswith("Keyword F1 0.4000 vs Kiwi baseline 0.3000 on test set sha256 digest-1")
    assert "base model " in second.description and second.description.endswith(worse.decision)
    logged = client.get_run(worse.run_id).data
    assert logged.metrics["registry.champion_f1_before"] == 0.50 and logged.params["registry.version"] == "2"


def test_a_model_below_the_kiwi_baseline_is_never_champion(store, tiny_model_dir):
    """Not as the first version, and not when it beats the champion: the baseline is part of the gate."""
    client = MlflowClient()
    below = registry.register(new_run("below"), tiny_model_dir, 0.54, "digest-1", baseline_f1=0.71)
    assert (below.version, below.alias, below.promoted) == ("1", "challenger", False)
    assert below.decision.startswith(registry.BELOW_BASELINE)
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias(registry.REGISTERED_MODEL, "champion")
    assert client.get_model_version(registry.REGISTERED_MODEL, "1").tags["baseline_f1"] == "0.71"

    above = registry.register(new_run("above"), tiny_model_dir, 0.77, "digest-1", baseline_f1=0.71)
    assert (above.version, above.alias, above.promoted) == ("2", "champion", True)

    # Better than the champion but still below the baseline (by the margin): refused.
    margin = registry.register(new_run("margin"), tiny_model_dir, 0.78, "digest-1", baseline_f1=0.75, margin=0.05)
    assert not margin.promoted and margin.decision.startswith(registry.BELOW_BASELINE)
    assert client.get_model_version_by_alias(registry.REGISTERED_MODEL, "champion").version in (2, "2")

    forced = registry.register(new_run("forced"), tiny_model_dir, 0.50, "digest-1", baseline_f1=0.71, force=True)
    assert forced.promoted and forced.decision.startswith("forced")


def test_champion_measured_on_another_test_set_is_re_measured(store, tiny_model_dir):
    registry.register(new_run("old"), tiny_model_dir, 0.90, "old-test-set", baseline_f1=0.2)
    measured = []

    def evaluate_f1(model_dir: str) -> float:
        assert (Path(model_dir) / "keyword_extractor.json").is_file()  # the champion's own model directory
        measured.append(model_dir)
        return 0.30

    outcome = registry.register(
        new_run("new"), tiny_model_dir, 0.35, "new-test-set", baseline_f1=0.2, evaluate_f1=evaluate_f1
    )
    assert measured and outcome.champion_f1 == 0.30 and outcome.promoted


def test_champion_is_re_measured_on_the_runs_own_test_file(store, tiny_model_dir, tmp_path):
    """Not on the bundled data/test.tsv: F1s of two different test sets must never be compared."""
    registry.register(new_run("old"), tiny_model_dir, 0.90, "bundled-test-set", baseline_f1=0.2)
    other_test = tmp_path / "other-test.tsv"
    lines = TEST_TSV.read_text(encoding="utf-8").splitlines()
    other_test.write_text("\n".join(lines[:1] + lines[-12:]) + "\n", encoding="utf-8")
    measured_on = tmp_path / "champion-evaluation"
    outcome = registry.register(
        new_run("new"),
        tiny_model_dir,
        0.35,
        "other-test-set",
        baseline_f1=0.2,
        evaluate_f1=registry.champion_f1_on(other_test, measured_on),
    )
    report = json.loads((measured_on / "metrics.json").read_text())
    assert report["test_path"] == str(other_test.resolve()) and report["n"] == 12
    assert outcome.champion_f1 == pytest.approx(report["model"]["f1"])


def test_champion_loads_as_pyfunc_and_predicts_lists_of_keywords(store, tiny_model_dir):
    registry.register(new_run("a"), tiny_model_dir, 0.5, "d", baseline_f1=0.2)
    model = mlflow.pyfunc.load_model(f"models:/{registry.REGISTERED_MODEL}@champion")
    predictions = model.predict(QUESTIONS)
    assert isinstance(predictions, list) and len(predictions) == 2
    assert all(isinstance(row, list) and all(isinstance(k, str) for k in row) for row in predictions)
    from keyword_extractor.inference.extractor import KeywordExtractor

    assert predictions == KeywordExtractor(tiny_model_dir).extract(QUESTIONS)
    assert model.metadata.signature is not None


def test_training_logs_losses_and_parameters_into_the_pipeline_run(store, tmp_path):
    run_id = new_run("train")
    result = run_module(
        "keyword_extractor.training",
        "--train",
        str(TRAIN_TSV),
        "--base-model",
        "tiny",
        "--output-dir",
        str(tmp_path / "run"),
        "--limit-train-rows",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--mlflow-run-id",
        run_id,
        "--mlflow-tracking-uri",
        store,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient()
    data = client.get_run(run_id).data
    assert data.params["base_model"] == "tiny" and data.params["batch_size"] == "16"
    assert len(client.get_metric_history(run_id, "val_loss")) == 2  # one per epoch
    assert client.get_metric_history(run_id, "train_loss_epoch")


def test_datasets_and_hashes_distinguish_runs_on_different_data(store, tmp_path):
    other = tmp_path / "train_small.tsv"
    other.write_text("\n".join(TRAIN_TSV.read_text(encoding="utf-8").splitlines()[:50]) + "\n", encoding="utf-8")
    a, b = new_run("full"), new_run("small")
    digests_a = tracking.log_datasets(a, TRAIN_TSV, TEST_TSV)
    digests_b = tracking.log_datasets(b, other, TEST_TSV)
    assert digests_a["train"] != digests_b["train"] and digests_a["test"] == digests_b["test"]
    client = MlflowClient()
    inputs = {d.dataset.name: d.dataset.digest for d in client.get_run(a).inputs.dataset_inputs}
    other_inputs = {d.dataset.name: d.dataset.digest for d in client.get_run(b).inputs.dataset_inputs}
    assert inputs["train"] != other_inputs["train"] and inputs["test"] == other_inputs["test"]
    assert client.get_run(a).data.tags["data.train.sha256"] == digests_a["train"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_mlflow_ui_serves_the_store_the_pipeline_wrote(store, tiny_model_dir):
    run_id = new_run("ui")
    tracking.log_metrics(run_id, {"f1": 0.61, "precision": 0.6}, prefix="model")
    registry.register(run_id, tiny_model_dir, 0.61, "d", baseline_f1=0.2)
    port = _free_port()
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "ui",
            "--backend-store-uri",
            store,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=os.environ.copy(),
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                _get_json(f"{base}/api/2.0/mlflow/experiments/search?max_results=10")
                break
            except OSError:
                if time.time() > deadline or ui.poll() is not None:
                    raise
                time.sleep(1)
        run = _get_json(f"{base}/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["model.f1"] == 0.61
        alias = _get_json(
            f"{base}/api/2.0/mlflow/registered-models/alias?name={registry.REGISTERED_MODEL}&alias=champion"
        )
        assert alias["model_version"]["run_id"] == run_id
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


def test_a_retried_registration_finishes_what_the_first_attempt_left(store, tiny_model_dir, monkeypatch):
    """A failure after the version exists but before its aliases: the retry gates and promotes, as a clean run."""
    client = MlflowClient()
    registry.register(new_run("old"), tiny_model_dir, 0.60, "digest-1", baseline_f1=0.5)
    original = MlflowClient.set_registered_model_alias
    failures = []

    def locked_once(self, name, alias, version):
        if not failures:
            failures.append(alias)
            raise mlflow.exceptions.MlflowException("(sqlite3.OperationalError) database is locked")
        return original(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", locked_once)
    run_id = new_run("better")
    with pytest.raises(mlflow.exceptions.MlflowException):
        registry.register(run_id, tiny_model_dir, 0.70, "digest-1", baseline_f1=0.5)
    assert client.get_model_version(registry.REGISTERED_MODEL, "2").aliases == []  # stopped half-way
    retried = registry.register(run_id, tiny_model_dir, 0.70, "digest-1", baseline_f1=0.5)
    assert (retried.version, retried.alias, retried.promoted, retried.created) == ("2", "champion", True, False)
    assert retried.champion_version == "1" and retried.champion_f1 == 0.60
    version = client.get_model_version(registry.REGISTERED_MODEL, "2")
    assert set(version.aliases) == {"champion", "challenger"} and version.tags["promotion_decision"] == retried.decision
    assert len(client.search_model_versions(f"name='{registry.REGISTERED_MODEL}'")) == 2
    again = registry.register(run_id, tiny_model_dir, 0.70, "digest-1", baseline_f1=0.5)
    assert (again.version, again.alias, again.created, again.decision) == ("2", "champion", False, retried.decision)


REGISTER_SCRIPT = """
import json, sys, time
from pathlib import Path
from keyword_extractor.integrations import registry, tracking
tracking.configure()
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
outcome = registry.register(sys.argv[1], sys.argv[2], float(sys.argv[4]), "digest-1", baseline_f1=0.5)
print(outcome.model_dump_json())
"""


def test_two_processes_registering_at_once_make_one_version_and_one_champion(store, tiny_model_dir, tmp_path):
    """Real processes, one SQLite store: the same run twice, and a second run at the same moment."""
    same, other = new_run("same"), new_run("other")
    go = tmp_path / "go"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    jobs = [(same, "0.70"), (same, "0.70"), (other, "0.80")]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", REGISTER_SCRIPT, run_id, str(tiny_model_dir), str(go), f1],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run_id, f1 in jobs
    ]
    time.sleep(3)  # all three are waiting for the signal
    go.touch()
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    client = MlflowClient()
    versions = client.search_model_versions(f"name='{registry.REGISTERED_MODEL}'")
    by_run = {}
    for version in versions:
        by_run.setdefault(version.run_id, []).append(str(version.version))
    assert sorted(map(len, by_run.values())) == [1, 1]  # one version per run, however many registered it
    assert outcomes[0]["version"] == outcomes[1]["version"] == by_run[same][0]
    champion = client.get_model_version_by_alias(registry.REGISTERED_MODEL, "champion")
    assert champion.run_id == other  # 0.80 beats 0.70 whatever the order: no lost update in the gate
    for version in versions:
        assert "promotion_decision" in version.tags


def test_compare_lists_versions_with_their_scores_and_the_questions_two_versions_disagree_on(
    store, tiny_model_dir, tmp_path, capsys
):
    from keyword_extractor.integrations.cli import compare_main

    versions = {}
    for name, (f1, second) in {"a": (0.61, "여행자"), "b": (0.72, "휴대품")}.items():  # differ on one question
        run_id = new_run(name)
        tracking.log_metrics(run_id, {"f1": f1}, prefix="model")
        tracking.log_metrics(run_id, {"f1": 0.70}, prefix="baseline")
        folder = tmp_path / name
        folder.mkdir()
        rows = ["query\tgold\tpredicted", "면세한도는?\t면세한도\t면세한도", f"여행자 휴대품?\t휴대품\t{second}"]
        (folder / "predictions.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        tracking.log_files(run_id, [folder / "predictions.tsv"], "evaluation")
        versions[name] = registry.register(run_id, tiny_model_dir, f1, "digest-1", baseline_f1=0.70).version

    assert compare_main(["--diff", versions["a"], versions["b"]]) == 0
    table, _, diff = capsys.readouterr().out.partition("\n\n")
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["version", "aliases", "F1"]
    newest, older = lines[2].split(), lines[3].split()
    assert newest[:4] == [versions["b"], "challenger,champion", "0.7200", "0.7000"]
    assert older[:4] == [versions["a"], "—", "0.6100", "0.7000"]  # below the baseline: never champion
    assert diff.splitlines()[0] == f"1 questions answered differently by v{versions['a']} and v{versions['b']}:"
    assert "- 여행자 휴대품?" in diff and f"v{versions['a']}: 여행자" in diff and f"v{versions['b']}: 휴대품" in diff
    assert "    gold: 휴대품" in diff  # which of the two answers is right
    # a version that is not there: one line naming the versions that are (it was a raw MlflowException)
    assert compare_main(["--diff", versions["a"], "99"]) == 2
    out, err = capsys.readouterr()
    there = ", ".join(sorted(versions.values(), key=int))
    assert err.strip() == f"error: keyword-extractor has no version '99' (versions: {there})"
    assert compare_main(["--diff", versions["a"], versions["b"]]) == 0
    assert "%|" not in capsys.readouterr().err  # no download progress bars between the answers


def test_make_compare_with_one_version_says_both_are_needed():
    """`make compare A=1` silently showed the table only."""
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["make", "compare", "A=1", f"VENV={venv}", f"PY={sys.executable}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "error: give both versions to compare answers: make compare A=3 B=5" in done.stderr


LEASE_SCRIPT = """
import sys, time
from pathlib import Path
from keyword_extractor.integrations import registry
go, record = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
with registry.registry_lock():
    started = time.time()
    time.sleep(2)
    with record.open("a") as out:
        out.write(f"{started} {time.time()}\\n")
"""


def _at_once(script: str, argument_lists: list[list[str]], env: dict[str, str], go: Path) -> list[str]:
    """Start one process per argument list, let them all go at the same moment, return their outputs."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in argument_lists
    ]
    time.sleep(3)
    go.touch()
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        outputs.append(out)
    return outputs


def test_an_emptied_store_is_refused_not_started_afresh(tmp_path, monkeypatch):
    """A 0-byte mlflow.db was initialised as a new store: champion and runs gone without a word."""
    database = tmp_path / "mlflow.db"
    database.touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.sqlite_uri(database))
    try:
        with pytest.raises(tracking.EmptiedStore, match="is empty \\(0 bytes\\): an MLflow store that lost"):
            tracking.configure()
        assert database.stat().st_size == 0  # left as found
        database.unlink()
        tracking.configure()  # no file at all: a new store, on purpose
        assert database.stat().st_size > 0
    finally:
        mlflow.set_tracking_uri(None)


@pytest.fixture
def tracking_server(tmp_path, monkeypatch):
    """A real `mlflow server` on 127.0.0.1 (SQLite behind it), as MLFLOW_TRACKING_URI."""
    from tests.services import mlflow_server

    with mlflow_server(
        tracking.sqlite_uri(tmp_path / "server.db"), tmp_path / "served", dict(os.environ), tmp_path / "mlflow.log"
    ) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        tracking.configure()
        yield url
    mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_the_registry_lock_on_a_tracking_server_lets_one_holder_in_at_a_time(tracking_server, tmp_path):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_server,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    record = tmp_path / "held.txt"
    _at_once(LEASE_SCRIPT, [[str(tmp_path / "go"), str(record)]] * 3, env, tmp_path / "go")
    held = sorted(tuple(map(float, line.split())) for line in record.read_text().splitlines())
    assert len(held) == 3
    assert all(later[0] >= earlier[1] for earlier, later in zip(held, held[1:])), held  # no two at once
    assert registry.LEASE_TAG not in MlflowClient().get_registered_model(registry.REGISTERED_MODEL).tags


@pytest.mark.slow
def test_two_runs_registered_at_once_through_a_tracking_server_leave_the_better_one_champion(
    tracking_server, tiny_model_dir, tmp_path
):
    weaker, better = new_run("weaker"), new_run("better")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_server,
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    go = tmp_path / "go"
    # the better run twice (a retry racing the first attempt): one version, one model logged, one `created`
    jobs = [[weaker, str(tiny_model_dir), str(go), "0.90"], *[[better, str(tiny_model_dir), str(go), "0.95"]] * 2]
    outcomes = [json.loads(out.strip().splitlines()[-1]) for out in _at_once(REGISTER_SCRIPT, jobs, env, go)]
    client = MlflowClient()
    champion = client.get_model_version_by_alias(registry.REGISTERED_MODEL, "champion")
    assert champion.run_id == better
    weaker_outcome, better_outcome, better_again = outcomes
    assert better_outcome["version"] == better_again["version"]
    assert sorted([better_outcome["created"], better_again["created"]]) == [False, True]
    versions = client.search_model_versions(f"name='{registry.REGISTERED_MODEL}'")
    assert sorted(v.run_id for v in versions) == sorted([weaker, better])
    experiment = client.get_run(better).info.experiment_id
    logged = mlflow.search_logged_models([experiment], filter_string=f"source_run_id='{better}'", output_format="list")
    assert len(logged) == 1, logged
    if better_again["created"]:
        better_outcome = better_again
    if weaker_outcome["promoted"]:  # only possible when it was registered first, before the better one
        assert int(weaker_outcome["version"]) < int(better_outcome["version"]) and better_outcome["promoted"]
    assert all(
        "promotion_decision" in v.tags for v in client.search_model_versions(f"name='{registry.REGISTERED_MODEL}'")
    )


def test_a_forced_registration_needs_no_re_measure_of_a_champion_from_another_test_set(store, tiny_model_dir):
    registry.register(new_run("measured"), tiny_model_dir, 0.80, "digest-1", baseline_f1=0.5)
    forced = registry.register(new_run("forced"), tiny_model_dir, 0.60, "digest-2", baseline_f1=0.5, force=True)
    assert forced.promoted and forced.alias == "champion" and forced.champion_f1 is None
    assert "champion v1 not measured on this test set" in forced.decision
