"""Registering model directories as versions of `keyword-extractor`, behind a quality gate.

Aliases, not stages: every new version is the `challenger`; it becomes the
`champion` only if its F1 on the test set is above the Kiwi baseline's F1 on
the same questions plus a margin *and* at least the champion's F1 on the same
test set (same digest) plus the margin, or when forced. A model that loses to the ten-line rule is
never crowned, not even as the first version. Registering the same MLflow run
twice returns the existing version instead of a second one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from keyword_extractor.common.paths import CORE_PACKAGE
from keyword_extractor.common.results import CHALLENGER, CHAMPION, REGISTERED_MODEL, Registration
from keyword_extractor.model.artifact import MODEL_DIR_ARTIFACT, SETTINGS_FILE, InferenceSettings

log = logging.getLogger(__name__)

INPUT_EXAMPLE = ["여행자 휴대품 면세한도는 얼마인가요?", "세종대왕이 훈민정음을 반포한 해는 언제인가?"]


def _existing_version(client: MlflowClient, run_id: str) -> str | None:
    versions = client.search_model_versions(f"name='{REGISTERED_MODEL}' and run_id='{run_id}'")
    return max((str(v.version) for v in versions), key=int, default=None)


def _current_champion(client: MlflowClient):
    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    except MlflowException:
        return None


def _champion_f1(client: MlflowClient, champion, test_digest: str, evaluate_f1: Callable[[str], float] | None) -> float:
    """The champion's F1 on *this* test set: its tag if it was measured on the same data, else re-measured."""
    if champion.tags.get("test_digest") == test_digest and "test_f1" in champion.tags:
        return float(champion.tags["test_f1"])
    if evaluate_f1 is None:
        raise ValueError(
            f"champion v{champion.version} was evaluated on another test set; pass evaluate_f1 to re-measure it"
        )
    with tempfile.TemporaryDirectory(prefix="champion-") as copy:  # a full model: removed once measured
        local = mlflow.artifacts.download_artifacts(f"models:/{REGISTERED_MODEL}/{champion.version}", dst_path=copy)
        model_dir = next(Path(local).rglob(SETTINGS_FILE)).parent
        f1 = evaluate_f1(str(model_dir))
    log.info("re-measured champion v%s on test set %s: F1 %.4f", champion.version, test_digest[:12], f1)
    return f1


def champion_f1_on(test_path: str | Path, output_dir: str | Path | None = None) -> Callable[[str], float]:
    """How a champion measured on another test set is re-measured: on *this* run's test file.

    The evaluation of the champion is written to `output_dir`; without one, beside the champion's temporary
    copy, and removed with it.
    """

    def evaluate_f1(champion_dir: str) -> float:
        from keyword_extractor.evaluation.evaluate import evaluate

        target = Path(output_dir) if output_dir else Path(champion_dir).parent / "champion-evaluation"
        result = evaluate(test_path, target, champion_dir, include_baseline=False)
        return float(result.model_metrics["f1"])

    return evaluate_f1


def log_pyfunc_model(model_dir: str | Path) -> str:
    """Log the model directory as a pyfunc model in the active run; returns its model URI."""
    info = mlflow.pyfunc.log_model(
        name=REGISTERED_MODEL,
        python_model=str(CORE_PACKAGE / "integrations" / "mlflow_model.py"),
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        code_paths=[str(CORE_PACKAGE)],
        input_example=INPUT_EXAMPLE,
        pip_requirements=str(CORE_PACKAGE.parent / "requirements.txt"),
    )
    return info.model_uri


BELOW_BASELINE = "model below baseline: not promoted"


def promotion_decision(
    f1: float,
    baseline_f1: float,
    champion_version: str | None,
    champion_f1: float | None,
    margin: float,
    force: bool,
) -> tuple[bool, str]:
    """(promoted, why): the gate on its own, so every path through `register` decides the same way."""
    against = f"F1 {f1:.4f} vs Kiwi baseline {baseline_f1:.4f}"
    if champion_version is not None and champion_f1 is not None:
        against += f" and champion v{champion_version} {champion_f1:.4f}"
    elif champion_version is not None:
        against += f" (champion v{champion_version} not measured on this test set)"
    if force:
        return True, f"forced: {against}"
    if not f1 > baseline_f1 + margin:  # strictly: a tie with the ten-line rule is no reason to serve a model
        return False, f"{BELOW_BASELINE} (F1 {f1:.4f} <= Kiwi baseline {baseline_f1:.4f} + margin {margin})"
    if champion_version is None:
        return True, f"first version above the baseline: promoted to champion ({against}, margin {margin})"
    if f1 >= champion_f1 + margin:
        return True, f"{against}: beats both by margin {margin}"
    return False, f"F1 {f1:.4f} < champion v{champion_version} {champion_f1:.4f} + margin {margin}: not promoted"


DECISION_TAG = "promotion_decision"  # set last: a version without it is a registration to finish
LOCK_TIMEOUT_S = 300


def _lock_path(tracking_uri: str) -> Path | None:
    """The lock file beside an embedded store (SQLite or a file store); None for a server or a database."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).with_suffix(".registry.lock")
    if tracking_uri.startswith("file://") or "://" not in tracking_uri:
        return Path(tracking_uri.removeprefix("file://")) / ".registry.lock"
    return None


LEASE_TAG = "registry.lease"  # on the registered model: who holds the gate, until when
LEASE_TTL_S = 1800  # a holder that died frees the gate after this; a registration never takes this long
LEASE_SETTLE_S = 1.0  # after writing the lease, wait this long and read it again before trusting it


@contextmanager
def registry_lock(tracking_uri: str | None = None):
    """One registration at a time per store, across processes and machines (retries, concurrent runs).

    An embedded store (SQLite, files) is locked with a file beside it. A tracking server (or a database
    URI such as postgresql://) has no shared file: the lock is a lease written on the registered model
    itself (`_server_lease`).
    """
    uri = tracking_uri or mlflow.get_tracking_uri()
    path = _lock_path(uri)
    if path is None:
        with _server_lease(MlflowClient(tracking_uri=uri)):
            yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path), timeout=LOCK_TIMEOUT_S):
        yield


def _lease_holder(client: MlflowClient) -> tuple[str, float] | None:
    """(owner, expiry) of the lease on the registered model, or None when nobody holds it."""
    stored = client.get_registered_model(REGISTERED_MODEL).tags.get(LEASE_TAG)
    if not stored:
        return None
    try:
        lease = json.loads(stored)
        return str(lease["owner"]), float(lease["expires"])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: treated as free, and overwritten


def _ensure_registered_model(client: MlflowClient) -> None:
    try:
        client.create_registered_model(REGISTERED_MODEL)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


@contextmanager
def _server_lease(client: MlflowClient, timeout_s: float = LOCK_TIMEOUT_S):
    """A compare-and-set lease through the tracking server: write it when free, wait, read it back.

    MLflow has no atomic compare-and-set, so a writer trusts the lease only if, `LEASE_SETTLE_S` after
    writing it, the tag still names it: of two writers that both saw the lease free, the later write
    wins and the other sees that and waits. The lease expires, so a holder that died frees the gate.
    """
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    _ensure_registered_model(client)
    deadline = time.monotonic() + timeout_s
    holder = _lease_holder(client)
    while True:
        if holder is None or holder[1] < time.time():
            lease = json.dumps({"owner": owner, "expires": time.time() + LEASE_TTL_S})
            try:
                client.set_registered_model_tag(REGISTERED_MODEL, LEASE_TAG, lease)
            except MlflowException:  # another writer's insert of the same tag won the race (a unique key)
                log.info("lost the race for the registry lease; reading who holds it")
            time.sleep(LEASE_SETTLE_S)
            holder = _lease_holder(client)
            if holder is not None and holder[0] == owner:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the registry is held by {holder[0] if holder else 'another run'}; retry later")
        log.info("registry held by %s; waiting", holder[0] if holder else "another run")
        time.sleep(random.uniform(0.5, 1.5))
        holder = _lease_holder(client)
    try:
        yield
    finally:
        holder = _lease_holder(client)
        if holder is not None and holder[0] == owner:
            client.delete_registered_model_tag(REGISTERED_MODEL, LEASE_TAG)


def _settle_duplicates(client: MlflowClient, run_id: str, version: str) -> str:
    """If a concurrent registration of the same run made a version too, keep the oldest and drop the other."""
    versions = sorted(
        (str(v.version) for v in client.search_model_versions(f"name='{REGISTERED_MODEL}' and run_id='{run_id}'")),
        key=int,
    )
    if versions and versions[0] != version:
        log.warning("run %s was registered concurrently as v%s; dropping v%s", run_id, versions[0], version)
        client.delete_model_version(REGISTERED_MODEL, version)
        return versions[0]
    return version


def _finished(client: MlflowClient, version: str, run_id: str, f1: float, baseline_f1: float) -> Registration:
    """The outcome of a registration that completed earlier (same run), read back from the registry."""
    stored = client.get_model_version(REGISTERED_MODEL, version)
    aliases = set(stored.aliases)
    log.info("run %s is already registered as v%s; not creating another version", run_id, version)
    return Registration(
        name=REGISTERED_MODEL,
        version=version,
        run_id=run_id,
        alias=CHAMPION if CHAMPION in aliases else CHALLENGER,
        promoted=CHAMPION in aliases,
        decision=stored.tags[DECISION_TAG],
        f1=f1,
        baseline_f1=baseline_f1,
        champion_version=None,
        champion_f1=None,
        created=False,
    )


def version_description(model_dir: str | Path, f1: float, baseline_f1: float, test_digest: str, decision: str) -> str:
    """What the registry's version list should say at a glance: quality against the baseline, data, model."""
    settings = InferenceSettings.load(model_dir)
    return (
        f"Keyword F1 {f1:.4f} vs Kiwi baseline {baseline_f1:.4f} on test set sha256 {test_digest[:12]}; "
        f"base model {settings.base_model or 'unknown'}, grounding {settings.grounding}, "
        f"CPU int8 {'allowed' if settings.int8_allowed else 'not allowed'}. {decision}"
    )


def _version_of(
    client: MlflowClient,
    run_id: str,
    existing: str | None,
    model_dir: str | Path,
    f1: float,
    baseline_f1: float,
    test_digest: str,
) -> tuple[str, bool]:
    """(version, created): the run's model registered now, or the version a stopped attempt left unfinished."""
    if existing is not None:
        log.info("run %s was registered as v%s, but its registration did not finish: finishing it", run_id, existing)
        return existing, False
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        model_uri = log_pyfunc_model(model_dir)
    tags = {"test_digest": test_digest, "test_f1": str(f1), "baseline_f1": str(baseline_f1)}
    registered = mlflow.register_model(model_uri, REGISTERED_MODEL, tags=tags)
    return _settle_duplicates(client, run_id, str(registered.version)), True


def _gate(
    client: MlflowClient,
    version: str,
    f1: float,
    baseline_f1: float,
    test_digest: str,
    evaluate_f1: Callable[[str], float] | None,
    margin: float,
    force: bool,
) -> tuple[bool, str, ModelVersion | None, float | None]:
    """(promoted, decision, the champion it was compared with, that champion's F1 on this test set)."""
    champion = _current_champion(client)
    if champion is not None and str(champion.version) == version:  # the stopped attempt had promoted it
        return True, f"promoted (F1 {f1:.4f} vs Kiwi baseline {baseline_f1:.4f}); finished on retry", None, None
    unmeasured = champion is not None and champion.tags.get("test_digest") != test_digest and evaluate_f1 is None
    if champion is None or (force and unmeasured):  # forced: no re-measure needed to decide
        champion_f1 = None
    else:
        champion_f1 = _champion_f1(client, champion, test_digest, evaluate_f1)
    promoted, decision = promotion_decision(
        f1, baseline_f1, None if champion is None else str(champion.version), champion_f1, margin, force
    )
    return promoted, decision, champion, champion_f1


def _log_decision(
    client: MlflowClient, run_id: str, version: str, decision: str, promoted: bool, champion_f1: float | None
) -> None:
    """The decision in the run itself; a param a stopped attempt already logged is never changed."""
    logged = client.get_run(run_id).data.params
    params = {"registry.version": version, "registry.decision": decision[:500]}
    with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
        mlflow.log_params({key: value for key, value in params.items() if key not in logged})
        if champion_f1 is not None:
            mlflow.log_metric("registry.champion_f1_before", champion_f1)
        mlflow.log_metric("registry.promoted", float(promoted))


def register(
    run_id: str,
    model_dir: str | Path,
    f1: float,
    test_digest: str,
    *,
    baseline_f1: float,
    margin: float = 0.0,
    force: bool = False,
    evaluate_f1: Callable[[str], float] | None = None,
) -> Registration:
    """Register the run's model (once), mark it challenger, and promote it if it earns it.

    `baseline_f1`: the Kiwi baseline's F1 on the same test set, measured in the same run.

    Safe to retry and to run concurrently: the whole read-compare-set runs under `registry_lock`, a run
    already registered gets no second version, and a version whose registration stopped half-way (no
    `promotion_decision` tag yet: the aliases or tags were never set) is finished, gate included, so the
    end state is that of a clean run.
    """
    client = MlflowClient()
    with registry_lock():
        existing = _existing_version(client, run_id)
        if existing is not None and DECISION_TAG in client.get_model_version(REGISTERED_MODEL, existing).tags:
            return _finished(client, existing, run_id, f1, baseline_f1)
        version, created = _version_of(client, run_id, existing, model_dir, f1, baseline_f1, test_digest)
        gate = _gate(client, version, f1, baseline_f1, test_digest, evaluate_f1, margin, force)
        promoted, decision, champion, champion_f1 = gate
        client.set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, version)
        if promoted:
            client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
        _log_decision(client, run_id, version, decision, promoted, champion_f1)
        client.update_model_version(
            REGISTERED_MODEL,
            version,
            description=version_description(model_dir, f1, baseline_f1, test_digest, decision),
        )
        client.set_model_version_tag(REGISTERED_MODEL, version, DECISION_TAG, decision)  # last: marks it done
    log.info("registered %s v%s: %s", REGISTERED_MODEL, version, decision)
    return Registration(
        name=REGISTERED_MODEL,
        version=version,
        run_id=run_id,
        alias=CHAMPION if promoted else CHALLENGER,
        promoted=promoted,
        decision=decision,
        f1=f1,
        baseline_f1=baseline_f1,
        champion_version=str(champion.version) if champion else None,
        champion_f1=champion_f1,
        created=created,
    )
