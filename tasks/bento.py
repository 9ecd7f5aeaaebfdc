"""Pipeline step 5, "build-bento": package the registered champion as a Bento that `bentoml serve` runs.

The task takes a registered version from MLflow (the champion unless a version is given), imports
its model directory into the BentoML model store (labelled with the MLflow run, version, alias,
test F1 and test-data digest; importing the same version twice reuses the stored model), builds
the Bento of `bentofile.yaml` with that model pinned, publishes the serve command as a Markdown
artifact ("bento") and returns the Bento tag.

A run whose model was not promoted builds nothing new (unless the flow's `--build-if-not-promoted`): it returns
the newest existing Bento, or None, and says why. Stores live under `BENTOML_HOME` (default
`~/bentoml`).
"""

from __future__ import annotations

import os

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from keyword_extractor.common.results import CHAMPION
from keyword_extractor.integrations import bento_models

ARTIFACT_KEY = "bento"


def _bentoml_home() -> str:
    return os.environ.get("BENTOML_HOME") or os.path.expanduser("~/bentoml")


@task(name="build-bento", retries=2, retry_delay_seconds=5)
def build_bento(
    promoted: bool = True,
    only_if_promoted: bool = True,
    version: str | None = None,
    alias: str = CHAMPION,
) -> str | None:
    """Import the registered model into BentoML and build its Bento; returns the Bento tag.

    Args:
        promoted: whether this pipeline run's model became the champion.
        only_if_promoted: build nothing when `promoted` is False (the champion's Bento already exists).
        version: registered version to package; default: the version behind `alias`.
        alias: registry alias to package when no version is given.
    """
    log = get_run_logger()
    if only_if_promoted and not promoted:
        current = bento_models.latest_bento()
        reason = (
            "this run's model was not promoted, so no Bento was built (to build anyway: run with "
            "--build-if-not-promoted, or set build_if_not_promoted: true in the deployment's parameters)"
        )
        log.info("%s; current Bento: %s", reason, current or "none yet")
        serve = f"```bash\nbentoml serve {current}\n```\n" if current else "No Bento has been built yet.\n"
        create_markdown_artifact(key=ARTIFACT_KEY, markdown=f"## No new Bento\n\n{reason}.\n\n{serve}")
        return current
    model_tag = bento_models.import_from_registry(alias=None if version else alias, version=version)
    bento_tag = bento_models.build_bento(model_tag)
    labels = _model_labels(model_tag)
    log.info("built Bento %s around %s in %s", bento_tag, model_tag, _bentoml_home())
    log.info("serve it with: bentoml serve %s", bento_tag)
    f1 = labels.get("test_f1") or "—"
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=(
            f"## Bento `{bento_tag}`\n\n"
            f"| model | registered version | alias | test F1 | MLflow run |\n|---|---|---|---|---|\n"
            f"| `{model_tag}` | v{labels.get('mlflow_version', '?')} | {labels.get('mlflow_alias') or '—'} "
            f"| {f1} | `{labels.get('mlflow_run_id', '')}` |\n\n"
            f"Serve it (BENTOML_HOME={_bentoml_home()}):\n\n```bash\nbentoml serve {bento_tag}\n```\n"
        ),
        description=f"Bento of {model_tag}",
    )
    return bento_tag


def _model_labels(model_tag: str) -> dict[str, str]:
    import bentoml

    return dict(bentoml.models.get(model_tag).info.labels)
