"""The feedback loop end to end: corrections sent to a real `bentoml serve`, reviewed with the CLI, and the
retrain flow (a real Prefect run) teaching the next model a term the served one does not extract.

The term is a three-word product name that the Kiwi rule, and so the served model, cuts in two
("보라 솜사탕" and "기계"); people correct it to the whole name in 30 questions. A rejected correction
(another name) must never reach a training file.
"""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.feedback.store import FeedbackStore
from keyword_extractor.integrations import tracking
from service_support.local_server import bentoml_env, import_model, start_bento, stop_bento
from tests.conftest import PROJECT_ROOT, prefect_env

pytestmark = pytest.mark.slow

TERM = "보라 솜사탕 기계"
REJECTED_TERM = "달빛 유리잔"
CONTROL_TERM = "노랑 풍선 기계"
TEMPLATES = (  # (question, the other keywords of its correction)
    ("{term} {n}대를 수입하면 관세는 얼마인가요?", ("관세",)),
    ("{term} {n}대를 해외직구로 사면 통관이 되나요?", ("해외직구", "통관")),
    ("{term} {n}대를 택배로 받으면 세금을 내나요?", ("택배", "세금")),
)
NEW_QUESTIONS = [  # asked of the retrained model: none of these was corrected
    f"{TERM} 부품도 수입 신고를 해야 하나요?",
    f"중고 {TERM} 반입할 때 검사를 받나요?",
    f"{TERM} 가격이 150달러면 면세인가요?",
]


def _corrections() -> list[tuple[str, list[str]]]:
    return [(template.format(term=TERM, n=n), [TERM, *others]) for template, others in TEMPLATES for n in range(1, 11)]


def test_accepted_corrections_teach_the_retrained_model_a_term_and_rejected_ones_never_reach_training(
    selected_model_dir, tmp_path
):
    feedback_url = f"sqlite:///{tmp_path}/feedback.db"
    env = bentoml_env(tmp_path / "bentoml", KEYWORD_FEEDBACK_URL=feedback_url)
    env["KEYWORD_MODEL_TAG"] = import_model(selected_model_dir, env, {"registered_model": "keyword-extractor"})
    server = start_bento(".", env, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            receipts = []
            for question, corrected in _corrections():
                answer = client.post("/extract", json={"text": question}).json()
                assert TERM not in answer["keywords"], answer  # the served model does not extract the term
                body = {
                    "query": question,
                    "model_keywords": answer["keywords"],
                    "model_version": answer["model"]["version"],
                    "keywords": corrected,
                }
                receipts.append(client.post("/feedback", json=body).json()["id"])
            refused = {
                "query": f"{REJECTED_TERM} 수입 신고는?",
                "model_keywords": [],
                "model_version": "1",
                "keywords": [REJECTED_TERM],
            }
            rejected_id = client.post("/feedback", json=refused).json()["id"]
    finally:
        stop_bento(server)

    review = [sys.executable, "-m", "keyword_extractor.feedback", "--store", feedback_url, "review"]
    reviewed = subprocess.run(
        [*review, "--accept", *map(str, receipts), "--reject", str(rejected_id)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert f"accepted {len(receipts)}, rejected 1" in reviewed.stdout, reviewed.stderr

    flow_env = prefect_env(
        tmp_path / "prefect-home",
        MLFLOW_TRACKING_URI=tracking.sqlite_uri(tmp_path / "mlflow.db"),
        BENTOML_HOME=str(tmp_path / "bentoml-train"),
        KEYWORD_FEEDBACK_URL=feedback_url,
    )
    retrain = [
        sys.executable,
        "-m",
        "flows.retrain_on_feedback",
        "--min-new",
        "20",
        "--artifacts-dir",
        str(tmp_path / "artifacts"),
        "--export-path",
        str(tmp_path / "feedback.tsv"),
        "--base-model",
        "tiny",
        "--epochs",
        "3",
        "--limit-train-rows",
        "600",
        "--quantize",
        "off",
        "--no-label-audit-suspects",  # ranked in tests/test_flow.py's e2e run; 25 s here
    ]
    first = subprocess.run(retrain, cwd=PROJECT_ROOT, env=flow_env, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    exported = load_pairs(tmp_path / "feedback.tsv")
    assert len(exported) == len(receipts)
    runs = list((tmp_path / "artifacts" / "runs").iterdir())
    trained_on = load_pairs(runs[0] / "data" / "train.tsv")
    for training_file in (exported, trained_on):
        assert not training_file["keyword"].str.contains(REJECTED_TERM).any()
        assert not training_file["query"].str.contains(REJECTED_TERM).any()

    from keyword_extractor.inference.extractor import KeywordExtractor

    retrained = KeywordExtractor(runs[0] / "train" / "model")
    answers = retrained.extract(NEW_QUESTIONS)
    assert all(TERM in found for found in answers), answers
    # a name of the same shape that nobody corrected is still cut as the rule cuts it: the corrections taught it
    control = retrained.extract([question.replace(TERM, CONTROL_TERM) for question in NEW_QUESTIONS])
    assert not any(CONTROL_TERM in found for found in control), control

    again = subprocess.run(retrain, cwd=PROJECT_ROOT, env=flow_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        "0 correction(s) accepted since" in again.stdout + again.stderr
        and "no retraining" in again.stdout + again.stderr
    )
    assert len(list((tmp_path / "artifacts" / "runs").iterdir())) == 1  # nothing trained the second time
    assert FeedbackStore(feedback_url).counts() == {"pending": 0, "accepted": len(receipts), "rejected": 1}
