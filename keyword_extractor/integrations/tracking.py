"""Where runs are tracked: an embedded MLflow store by default, a server when you outgrow it.

Default: `sqlite:///<project>/artifacts/mlflow.db` with artifacts in
`<project>/artifacts/mlruns`, both absolute so the pipeline and `mlflow ui`
see the same store from any working directory. `MLFLOW_TRACKING_URI`
overrides it for a real server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from keyword_extractor.common.files import file_sha256
from keyword_extractor.common.paths import PROJECT_ROOT, default_store, tracking_uri
from keyword_extractor.common.results import REGISTERED_MODEL

EXPERIMENT_NAME = REGISTERED_MODEL
__all__ = ["EXPERIMENT_NAME", "default_store", "tracking_uri"]  # the store's location lives in common.paths


def sqlite_uri(database: str | Path) -> str:
    return f"sqlite:///{Path(database).resolve()}"


def ui_command(root: Path = PROJECT_ROOT) -> str:
    """The exact command that opens this store in the MLflow UI."""
    uri = tracking_uri(root)
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
    return f"open {uri}"


UI_ADDRESS = "http://127.0.0.1:5000"  # where `ui_command` serves the UI
# MLflow 3 opens an experiment without this tag in its GenAI view (traces, no metric columns)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
RUN_DESCRIPTION = "mlflow.note.content"  # the run page's Description, and a column of the runs table


def ui_pages(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Direct addresses of the experiment's runs and of the registered model, in the UI `ui_command` starts."""
    import mlflow

    uri = configure(root)
    base = UI_ADDRESS if uri.startswith(("sqlite:", "file:", "/")) else uri.rstrip("/")
    experiment = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    runs = f"{base}/#/experiments/{experiment.experiment_id}" if experiment else f"{base}/#/experiments"
    return {"runs": runs, "registered model": f"{base}/#/models/{REGISTERED_MODEL}"}


def describe_run(run_id: str, text: str) -> None:
    """The run's description in the UI: what a person comparing runs wants to read first."""
    from mlflow import MlflowClient

    MlflowClient().set_tag(run_id, RUN_DESCRIPTION, text)


class EmptiedStore(RuntimeError):
    """An SQLite store file of 0 bytes: a store that lost its contents, not a new one."""


def refuse_emptied_store(uri: str) -> None:
    """MLflow would initialise an empty file as a fresh store: the registry's champion and every run would be
    gone without a word, and the next run crowned with nothing to beat. A missing file is a new store."""
    if not uri.startswith("sqlite:///"):
        return
    database = Path(uri.removeprefix("sqlite:///"))
    if database.is_file() and database.stat().st_size == 0:
        raise EmptiedStore(
            f"{database} is empty (0 bytes): an MLflow store that lost its contents, not a new one; restore it "
            "from a backup, or delete the file to start a new store on purpose"
        )


def configure(root: Path = PROJECT_ROOT, experiment: str = EXPERIMENT_NAME) -> str:
    """Point MLflow at the store and make sure the experiment exists (with local artifacts by default)."""
    import mlflow

    uri = tracking_uri(root)
    refuse_emptied_store(uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = None  # a tracking server decides where its artifacts go
        if uri.startswith("sqlite:///"):  # an embedded store keeps them beside its database
            location = (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()
        try:
            mlflow.create_experiment(experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            pass  # created concurrently
    found = mlflow.set_experiment(experiment)
    if found.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        mlflow.set_experiment_tag(*EXPERIMENT_KIND)
    return uri


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """The commit the code ran from ('unknown' outside a git checkout), '-dirty' when modified."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def start_pipeline_run(run_name: str, tags: dict[str, str]) -> str:
    """Create the one MLflow run of a pipeline run; later steps reopen it by id."""
    import mlflow

    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        return run.info.run_id


def log_datasets(
    run_id: str, train_path: str | Path, test_path: str | Path, extra_paths: Sequence[str | Path] = ()
) -> dict[str, str]:
    """Log train/test (and each extra training file) as MLflow datasets with digests; returns the file digests.

    Extra files are inputs of their own (`extra:<file name>`, context `training`), each with its digest
    and row count as tags, so a run says which corrections it learned from and how many.
    """
    import mlflow

    from keyword_extractor.data.tsv import load_pairs

    inputs = [("train", train_path, "training"), ("test", test_path, "evaluation")]
    inputs += [(f"extra:{Path(path).name}", path, "training") for path in extra_paths]
    digests = {}
    with mlflow.start_run(run_id=run_id):
        for name, path, context in inputs:
            frame = load_pairs(path)[["query", "keyword"]]
            dataset = mlflow.data.from_pandas(frame, source=str(Path(path).resolve()), name=name)
            mlflow.log_input(dataset, context=context)
            digests[name] = file_sha256(path)
            mlflow.set_tag(f"data.{name}.sha256", digests[name])
            if name.startswith("extra:"):
                mlflow.set_tag(f"data.{name}.rows", str(len(frame)))
        if extra_paths:
            extra_rows = sum(len(load_pairs(path)) for path in extra_paths)
            mlflow.log_param("data.extra_train_rows", extra_rows)
    return digests


def log_metrics(run_id: str, metrics: dict[str, float], prefix: str) -> None:
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({f"{prefix}.{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))})


def log_files(run_id: str, paths: list[str | Path], artifact_path: str) -> None:
    import mlflow

    with mlflow.start_run(run_id=run_id):
        for path in paths:
            if Path(path).is_file():
                mlflow.log_artifact(str(path), artifact_path=artifact_path)


FEEDBACK_EXPORTED_AT = "feedback.exported_at"  # run tag: when the corrections it trained on were exported


def mark_feedback_run(run_id: str, exported_at: str, last_id: int) -> None:
    """Record on a pipeline run that it trained on the corrections accepted up to `exported_at`."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.set_tags({FEEDBACK_EXPORTED_AT: exported_at, "feedback.last_id": str(last_id)})


def last_feedback_export() -> str | None:
    """When the corrections of the newest run that trained on them were exported (ISO time), or None."""
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{FEEDBACK_EXPORTED_AT}` != ''",
        order_by=[f"tags.`{FEEDBACK_EXPORTED_AT}` DESC"],
        max_results=1,
    )
    return runs[0].data.tags[FEEDBACK_EXPORTED_AT] if runs else None
