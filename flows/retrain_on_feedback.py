"""Retrain when enough corrections were accepted: export them, then run train-pipeline with them.

Scheduled by the `feedback-retrain` deployment (prefect.yaml). It counts the corrections accepted since
the last run that trained on corrections (an MLflow run tag says when that run's export was made);
below `min_new` it ends, saying so, in a Completed state named `NothingToDo`. Otherwise it exports the
accepted corrections (`keyword_extractor.feedback.export`, test questions left out) and runs the usual
pipeline with them as an extra training file: the usual gate decides whether the new model is champion.

    python -m flows.retrain_on_feedback --min-new 20 --base-model tiny
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from prefect import flow, get_run_logger
from prefect.states import Completed
from pydantic import BaseModel

from flows.options import flow_arguments, flow_parser
from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.common.quiet import quiet_third_party_output
from keyword_extractor.feedback import DEFAULT_URL, URL_VARIABLE
from keyword_extractor.model.config import TrainConfig

NOTHING_TO_DO = "NothingToDo"


def new_accepted_since(store, exported_at: str | None) -> int:
    """Accepted corrections reviewed after `exported_at` (all of them when no run used corrections yet)."""
    since = datetime.fromisoformat(exported_at) if exported_at else None
    return sum(
        1
        for stored in store.corrections("accepted")
        if since is None or (stored.reviewed_at and _aware(stored.reviewed_at) > since)
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite drops the zone


@flow(name="retrain-on-feedback", log_prints=True)
def retrain_on_feedback(
    min_new: int = 20,
    feedback_url: str | None = None,
    export_path: str = "artifacts/feedback/feedback.tsv",
    train_path: str = "data/train.tsv",
    test_path: str = "data/test.tsv",
    training: TrainConfig = TrainConfig(),
    artifacts_dir: str = "artifacts",
    label_audit_suspects: bool = True,
) -> object:
    """Export the accepted corrections and retrain on them, when at least `min_new` arrived since the last time.

    Args:
        min_new: accepted corrections needed since the last run that trained on corrections.
        feedback_url: SQLAlchemy URL of the store; default KEYWORD_FEEDBACK_URL, else artifacts/feedback.db.
        export_path: where the accepted corrections are written as a training file (replaced each time).
        train_path: the bundled training file the corrections are added to.
        test_path: held-out file: its questions are never exported, and the new model is scored on it.
        training: fine-tuning options, as for train-pipeline.
        artifacts_dir: where runs, models, reports and the MLflow store are written.
        label_audit_suspects: rank the training rows most likely mislabelled in validate-data's label audit.
    """
    from flows.train_pipeline import train_pipeline
    from keyword_extractor.feedback.export import export_accepted
    from keyword_extractor.feedback.store import FeedbackStore
    from keyword_extractor.integrations import tracking

    log = get_run_logger()
    tracking.configure()
    store = FeedbackStore(feedback_url or os.environ.get(URL_VARIABLE) or DEFAULT_URL)
    last = tracking.last_feedback_export()
    new = new_accepted_since(store, last)
    if new < min_new:
        message = f"{new} correction(s) accepted since {last or 'the start'}; {min_new} needed: no retraining"
        log.info(message)
        return Completed(name=NOTHING_TO_DO, message=message)
    exported_at = datetime.now(timezone.utc).isoformat()
    exported = export_accepted(store, PROJECT_ROOT / export_path, PROJECT_ROOT / test_path)
    log.info("%d new accepted correction(s): %s", new, exported.summary())
    summary = train_pipeline(
        train_path=train_path,
        test_path=test_path,
        training=training,
        artifacts_dir=artifacts_dir,
        extra_train=[exported.path],
        label_audit_suspects=label_audit_suspects,
    )
    tracking.mark_feedback_run(summary.mlflow_run_id, exported_at, exported.last_id)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = flow_parser(retrain_on_feedback.fn, "python -m flows.retrain_on_feedback", __doc__.split("\n\n")[0])
    args = parser.parse_args(argv)
    quiet_third_party_output()
    result = retrain_on_feedback(**flow_arguments(retrain_on_feedback.fn, args))
    print(result.model_dump_json(indent=2) if isinstance(result, BaseModel) else result)


if __name__ == "__main__":
    main()
