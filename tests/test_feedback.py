"""Corrections: checked like training rows, stored once however often and by however many they are sent,
and only the accepted ones ever reach a training file (real SQLite files, real processes)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.data.validation import validate
from keyword_extractor.feedback.export import export_accepted
from keyword_extractor.feedback.rules import correction_problems
from keyword_extractor.feedback.store import Correction, FeedbackStore
from tests.conftest import PROJECT_ROOT, TEST_TSV

QUESTION = "여행자 휴대품 면세한도는 얼마인가요?"


def _correction(query: str = QUESTION, keywords: tuple[str, ...] = ("여행자 휴대품", "면세한도")) -> Correction:
    return Correction(query, list(keywords), ["여행자", "면세한도"], "7", "one term")


@pytest.mark.parametrize(
    ("keywords", "reason"),
    [
        ([], "the keyword cell is empty"),
        (["휴대품", "휴대품"], "given more than once: 휴대품"),
        (["관세청"], "'관세청' does not occur in the question"),
        (["여행자", "휴대품", "면세한도", "얼마", "여행", "휴대", "한도"], "7 keywords; at most 6"),
        (["여행자, 휴대품"], "contains a comma"),
        (["휴대\u200b품"], "control characters (U+200B)"),
    ],
)
def test_a_correction_that_breaks_the_labelling_rules_is_refused_with_the_reason(keywords, reason):
    problems = correction_problems(QUESTION, keywords)
    assert any(reason in problem for problem in problems), problems


def test_a_correction_that_follows_the_rules_passes():
    assert correction_problems(QUESTION, ["여행자 휴대품", "면세한도"]) == []
    assert correction_problems("1,200달러 넘으면 세금 내나요?", ["1,200달러", "세금"]) == []  # a number's comma
    assert correction_problems("여행자\t휴대품", ["휴대품"]) == ["the question contains control characters (U+0009)"]


def test_the_same_correction_twice_is_one_record(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path}/feedback.db")
    first = store.add(_correction())
    again = store.add(_correction(query=QUESTION.replace(" ", "  ")))  # spacing aside, the same correction
    other = store.add(_correction(keywords=("여행자", "휴대품", "면세한도")))
    assert (first.created, again.created, again.id) == (True, False, first.id)
    assert other.created and other.id != first.id
    assert store.counts() == {"pending": 2, "accepted": 0, "rejected": 0}


SHARED = (("면세한도",), ("여행자",), ("휴대품",), ("여행자 휴대품",))  # sent by every writer


def _add_many(url: str, worker: int) -> list[tuple[int, bool]]:
    """One writer process: 10 corrections everyone sends and 10 of its own."""
    store = FeedbackStore(url)
    shared = [store.add(_correction(keywords=SHARED[i % len(SHARED)])) for i in range(10)]
    own = [store.add(_correction(query=f"질문 {worker}-{i} 면세한도는?", keywords=("면세한도",))) for i in range(10)]
    return [(r.id, r.created) for r in shared + own]


def test_concurrent_writers_neither_lose_nor_double_a_correction(tmp_path):
    url = f"sqlite:///{tmp_path}/feedback.db"
    FeedbackStore(url).dispose()  # the table exists before the race on rows starts
    with ProcessPoolExecutor(4) as pool:
        results = list(pool.map(_add_many, [url] * 4, range(4)))
    created = sum(created for answers in results for _, created in answers)
    stored = FeedbackStore(url).corrections()
    assert len(stored) == created == len(SHARED) + 4 * 10
    assert len({s.correction.content_key() for s in stored}) == len(stored)


def test_only_accepted_corrections_are_exported_and_test_questions_never_are(tmp_path):
    store = FeedbackStore(f"sqlite:///{tmp_path}/feedback.db")
    test_question = load_pairs(TEST_TSV)["query"].iloc[0]
    test_keyword = load_pairs(TEST_TSV)["keyword"].iloc[0].split(", ")[0]
    ids = {
        "accepted": store.add(_correction()).id,
        "rejected": store.add(_correction(query="관세 환급 신청 기한은?", keywords=("관세 환급",))).id,
        "pending": store.add(_correction(query="통관 보류 사유는?", keywords=("통관 보류",))).id,
        "leak": store.add(_correction(query=test_question, keywords=(test_keyword,))).id,
        "older": store.add(_correction(query="수입 신고 절차는?", keywords=("수입",))).id,
        "newer": store.add(_correction(query="수입 신고 절차는?", keywords=("수입 신고", "절차"))).id,
    }
    store.review([ids["accepted"], ids["leak"], ids["older"]], "accepted", "kim")
    store.review([ids["newer"]], "accepted", "lee")  # later: it wins over the older correction
    store.review([ids["rejected"]], "rejected", "kim")
    out = tmp_path / "feedback.tsv"
    summary = export_accepted(store, out, TEST_TSV)
    rows = load_pairs(out)
    expected = {QUESTION: "여행자 휴대품, 면세한도", "수입 신고 절차는?": "수입 신고, 절차"}
    assert dict(zip(rows["query"], rows["keyword"])) == expected
    assert (summary.rows, summary.in_test, summary.superseded, summary.invalid) == (2, 1, 1, 0)
    assert summary.last_id == ids["newer"]
    assert validate(out, TEST_TSV, tmp_path / "report").ok  # a training file like any other


def test_the_command_line_reviews_and_exports(tmp_path):
    url = f"sqlite:///{tmp_path}/feedback.db"
    store = FeedbackStore(url)
    keep, drop = store.add(_correction()).id, store.add(_correction(keywords=("면세한도",))).id
    command = [sys.executable, "-m", "keyword_extractor.feedback", "--store", url]

    def run(*args: str) -> str:
        done = subprocess.run([*command, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "accepted 1, rejected 1" in run("review", "--accept", str(keep), "--reject", str(drop))
    assert "1 accepted, 1 rejected" in run("list")
    out = tmp_path / "accepted.tsv"
    assert "wrote 1 accepted correction(s)" in run("export", "--out", str(out))
    assert load_pairs(out)["keyword"].tolist() == ["여행자 휴대품, 면세한도"]
