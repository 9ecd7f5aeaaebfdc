"""Where runs are tracked: an embedded MLflow store by default, a server when you outgrow it.

Default: `sqlite:///<project>/artifacts/mlflow.db` with artifacts in
`<project>/artifacts/mlruns`, both absolute so the pipeline and `mlflow ui`
see the same store from any working directory. `MLFLOW_TRACKING_URI`
overrides it for a real server.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

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


def configure(root: Path = PROJECT_ROOT, experiment: str = EXPERIMENT_NAME) -> str:
    """Point MLflow at the store and make sure the experiment exists (with local artifacts by default)."""
    import mlflow

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = None  # a tracking server decides where its artifacts go
        if uri.startswith("sqlite:///"):  # an embedded store keeps them beside its database
            location = (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()
        try:
            mlflow.create_experiment(experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:
            pass  # created concurrently
    mlflow.set_experiment(experiment)
    return uri


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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


def log_datasets(run_id: str, train_path: str | Path, test_path: str | Path) -> dict[str, str]:
    """Log train/test as MLflow datasets (with digests) and tag the file hashes; returns the file digests."""
    import mlflow

    from keyword_extractor.data.tsv import load_pairs

    digests = {}
    with mlflow.start_run(run_id=run_id):
        for name, path, context in (("train", train_path, "training"), ("test", test_path, "evaluation")):
            frame = load_pairs(path)[["query", "keyword"]]
            dataset = mlflow.data.from_pandas(frame, source=str(Path(path).resolve()), name=name)
            mlflow.log_input(dataset, context=context)
            digests[name] = file_digest(path)
            mlflow.set_tag(f"data.{name}.sha256", digests[name])
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
