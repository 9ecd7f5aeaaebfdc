"""From the MLflow registry to the BentoML model store, and from there to a Bento.

The service serves a *BentoML* model (so that a built Bento carries its weights), while the
pipeline registers *MLflow* versions. This module is the bridge, kept out of Prefect so it can be
called from a task, a test or the command line:

    python -m keyword_extractor.integrations.bento_models import --model-dir artifacts/runs/x/train/model
    python -m keyword_extractor.integrations.bento_models import-registry --alias champion
    python -m keyword_extractor.integrations.bento_models build --model-tag keyword-extractor:abc123

BentoML and MLflow are imported inside the functions: importing the core package stays light.
Where BentoML keeps its stores follows `BENTOML_HOME` (default `~/bentoml`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.common.results import CHALLENGER, CHAMPION, REGISTERED_MODEL
from keyword_extractor.model.artifact import SETTINGS_FILE, InferenceSettings
from keyword_extractor.model.integrity import check_model_dir

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

MODEL_NAME = REGISTERED_MODEL  # the Bento model carries the registry's name
MODEL_TAG_ENV = "KEYWORD_MODEL_TAG"  # which BentoML model `service.py` serves
DEFAULT_BENTOFILE = "bentofile.yaml"  # the slim CPU image; bentofile.cuda.yaml is the CUDA variant
# Labels that say *which* model this is; a later import with the same values reuses the stored model.
IDENTITY_LABELS = ("registered_model", "mlflow_version", "mlflow_run_id", "content_sha256")
# Model labels repeated on the Bento, so `bentoml list` shows what each Bento serves.
BENTO_LABELS = ("registered_model", "mlflow_version", "mlflow_alias", "mlflow_run_id", "test_f1")


def content_digest(model_dir: str | Path) -> str:
    """SHA-256 over every file's relative path and bytes: the same weights give the same digest."""
    root = Path(model_dir)
    hasher = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hasher.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(chunk)
    return hasher.hexdigest()


def find_model(labels: dict[str, str], name: str = MODEL_NAME) -> str | None:
    """Tag of the newest stored model whose identity labels equal `labels`' (None if there is none)."""
    import bentoml
    from bentoml.exceptions import NotFound

    wanted = {key: labels[key] for key in IDENTITY_LABELS if key in labels}
    if not wanted:
        return None
    try:
        stored = bentoml.models.list(name)
    except NotFound:
        return None
    matches = [m for m in stored if all(m.info.labels.get(k) == v for k, v in wanted.items())]
    if not matches:
        return None
    return str(max(matches, key=lambda m: m.creation_time).tag)


def import_model_dir(
    model_dir: str | Path,
    *,
    name: str = MODEL_NAME,
    labels: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Copy a model directory into the BentoML model store; returns the model tag.

    Idempotent: when a stored model has the same identity labels (MLflow version and run, and the
    content digest that is always added), its tag is returned and nothing is copied.
    """
    import bentoml

    model_dir = check_model_dir(model_dir)  # a damaged copy would never become ready in `serve`
    settings = InferenceSettings.load(model_dir)
    labels = {str(k): str(v) for k, v in (labels or {}).items()}
    labels.setdefault("content_sha256", content_digest(model_dir))
    existing = find_model(labels, name)
    if existing is not None:
        log.info("model %s already holds these weights (%s); reusing it", existing, labels["content_sha256"][:12])
        return existing
    metadata = {"base_model": settings.base_model, "source_dir": str(model_dir.resolve()), **(metadata or {})}
    with bentoml.models.create(name, labels=labels, metadata=metadata) as model:
        shutil.copytree(model_dir, model.path, dirs_exist_ok=True)
    log.info("imported %s into the BentoML model store as %s", model_dir, model.tag)
    return str(model.tag)


def registered_version(alias: str | None = CHAMPION, version: str | int | None = None) -> ModelVersion:
    """The registered version `version`, else the one behind `alias`, from the configured MLflow store."""
    import mlflow
    from mlflow import MlflowClient

    from keyword_extractor.integrations import registry, tracking

    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = MlflowClient()
    if version is not None:
        return client.get_model_version(registry.REGISTERED_MODEL, str(version))
    if alias:
        return client.get_model_version_by_alias(registry.REGISTERED_MODEL, alias)
    raise ValueError("give a registered version or an alias")


def model_dir_from_registry(
    alias: str | None = CHAMPION, version: str | int | None = None, dst_path: str | Path | None = None
) -> tuple[Path, ModelVersion]:
    """Download a registered version (by `version`, else by `alias`); returns (model directory, ModelVersion)."""
    import mlflow

    from keyword_extractor.integrations import registry

    info = registered_version(alias, version)
    local = mlflow.artifacts.download_artifacts(
        f"models:/{registry.REGISTERED_MODEL}/{info.version}", dst_path=None if dst_path is None else str(dst_path)
    )
    found = next(Path(local).rglob(SETTINGS_FILE), None)
    if found is None:
        raise FileNotFoundError(f"{registry.REGISTERED_MODEL} v{info.version} holds no {SETTINGS_FILE}")
    return found.parent, info


def import_from_registry(alias: str | None = CHAMPION, version: str | int | None = None) -> str:
    """Import a registered version into the BentoML store, labelled with where it came from; returns the tag.

    A version imported before is found by its labels and not downloaded again.
    """
    from keyword_extractor.integrations import registry, tracking

    info = registered_version(alias, version)
    aliases = set(getattr(info, "aliases", []) or [])
    preferred = [a for a in (alias, CHAMPION, CHALLENGER) if a and a in aliases]
    labels = {
        "registered_model": registry.REGISTERED_MODEL,
        "mlflow_version": str(info.version),
        "mlflow_run_id": info.run_id or "",
        "mlflow_alias": preferred[0] if preferred else "",  # the alias when imported; aliases move later
        "test_f1": info.tags.get("test_f1", ""),
        "test_digest": info.tags.get("test_digest", ""),
    }
    existing = find_model(labels)
    if existing is not None:
        log.info("%s v%s is already in the BentoML store as %s", registry.REGISTERED_MODEL, info.version, existing)
        return existing
    metadata = {
        "mlflow_tracking_uri": tracking.tracking_uri(),
        "mlflow_model_uri": f"models:/{registry.REGISTERED_MODEL}/{info.version}",
        "promotion_decision": info.tags.get("promotion_decision", ""),
    }
    with tempfile.TemporaryDirectory(prefix="keyword-model-") as download:
        model_dir, _ = model_dir_from_registry(version=info.version, dst_path=download)
        return import_model_dir(model_dir, labels=labels, metadata=metadata)


def build_bento(
    model_tag: str,
    *,
    build_ctx: str | Path = PROJECT_ROOT,
    labels: dict[str, Any] | None = None,
    version: str | None = None,
    bentofile: str = DEFAULT_BENTOFILE,
) -> str:
    """Build the Bento of `bentofile` (in `build_ctx`) around `model_tag`; returns the Bento tag.

    `bentofile.yaml` makes the slim CPU image; `bentofile.cuda.yaml` the same service on a CUDA base image.

    The tag is pinned as the Bento argument `model_tag`, so `bentoml serve <bento>` serves this
    model even after newer models are imported; `KEYWORD_MODEL_TAG` is set for the build itself.
    """
    import bentoml

    model = bentoml.models.get(model_tag)  # fails early, with BentoML's message, on an unknown tag
    model_tag = str(model.tag)  # "name:latest" becomes the version it points at now
    bento_labels = {k: model.info.labels[k] for k in BENTO_LABELS if model.info.labels.get(k)}
    bento_labels.update({"model_tag": model.tag.version or "", **{str(k): str(v) for k, v in (labels or {}).items()}})
    os.environ[MODEL_TAG_ENV] = model_tag
    with tempfile.TemporaryDirectory(prefix="bentofile-") as scratch:
        described = described_bentofile(Path(build_ctx) / bentofile, model, Path(scratch))
        bento = bentoml.bentos.build_bentofile(
            str(described),
            build_ctx=str(build_ctx),
            labels=bento_labels,
            args={"model_tag": model_tag},
            version=version,
            reload=True,  # a process that built before must re-read service.py with the new tag
        )
    return str(bento.tag)


def served_model_line(model) -> str:
    """One sentence naming the model a Bento serves: its tag, base model, registry version and test F1."""
    labels, metadata = model.info.labels, model.info.metadata
    facts = [f"base model {metadata['base_model']}"] if metadata.get("base_model") else []
    if labels.get("mlflow_version"):
        facts.append(f"{labels.get('registered_model', MODEL_NAME)} v{labels['mlflow_version']} in MLflow")
    if labels.get("test_f1"):
        facts.append(f"test F1 {labels['test_f1']}")
    return f"This Bento serves {model.tag}" + (f" ({'; '.join(facts)})." if facts else ".")


def described_bentofile(bentofile: Path, model, folder: Path) -> Path:
    """A copy of `bentofile` whose description also names the model this Bento is built around.

    The project's bentofile cannot know it (`bentoml serve .` may serve any model); a built Bento
    always serves one, and its OpenAPI page and `bentoml get` show this description.
    """
    import yaml

    spec = yaml.safe_load(bentofile.read_text(encoding="utf-8"))
    spec["description"] = f"{spec.get('description', '').strip()} {served_model_line(model)}".strip()
    copy = folder / bentofile.name
    copy.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return copy


def latest_bento(name: str = MODEL_NAME) -> str | None:
    """Tag of the newest Bento called `name`, None when none was built."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        bentos = bentoml.bentos.list(name)
    except NotFound:
        return None
    return str(max(bentos, key=lambda b: b.creation_time).tag) if bentos else None


if __name__ == "__main__":  # the command line lives in keyword_extractor.integrations.cli
    from keyword_extractor.integrations.cli import bento_models_main

    raise SystemExit(bento_models_main())
