"""The Kiwi noun-phrase baseline: exact outputs on typical questions and invariants on real data.

The exact outputs depend on Kiwi's model (kiwipiepy 0.24 when they were written); if an upgrade
changes them, check the new outputs against data/LABELLING.md before updating the expectations.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text import baselines
from keyword_extractor.text.baselines import QUESTION_WORDS, KiwiNounPhraseBaseline
from keyword_extractor.text.keywords import is_grounded, normalize

TRAIN = Path(__file__).resolve().parents[1] / "data" / "train.tsv"

TRICKY = [
    "",
    "   ",
    "무엇을 언제 어떻게 해야 하나요?",
    "가능한 방법이 있나요?",
    "여행자  휴대품\t면세한도는?",
    unicodedata.normalize("NFD", "여행자 휴대품 면세한도는 얼마인가요?"),
    "UNI-PASS에서 HS코드 6단위 조회 😀 가능?",
    "관세청에 관세를 내고 관세청에 관세를 또 내나요?",
    "한국, 일본, 중국, 미국, 영국, 프랑스, 독일, 베트남의 관세율은?",
]


@pytest.fixture(scope="module")
def baseline() -> KiwiNounPhraseBaseline:
    return KiwiNounPhraseBaseline()


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return load_pairs(TRAIN)["query"].tolist()[:300] + TRICKY


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("여행자 휴대품 면세한도는 얼마인가요?", ["여행자 휴대품", "면세한도"]),
        ("세종대왕이 훈민정음을 반포한 해는 언제인가?", ["세종대왕", "훈민정음", "반포"]),
        ("한-EU FTA 원산지증명서는 어떻게 발급받나요?", ["한-EU FTA", "원산지증명서", "발급"]),
        ("1만 달러 넘는 현금 들고 출국하면 세관에 신고해야 돼?", ["1만 달러", "현금", "출국", "세관", "신고"]),
        ("개인통관고유부호는 어디서 발급받나요?", ["개인통관고유부호", "발급"]),
        ("노트북이나 휴대폰은 관세 0%라던데 부가세만 내면 되나?", ["노트북", "휴대폰", "관세", "0%", "부가세"]),
        ("UNI-PASS에서 수입신고 조회는 어떻게 하나요?", ["UNI-PASS", "수입신고", "조회"]),
        ("6·25 전쟁이 일어난 날과 정전 협정 체결일을 함께 알려줘", ["6·25 전쟁", "정전 협정", "체결일"]),
    ],
)
def test_exact_keywords(baseline: KiwiNounPhraseBaseline, question: str, expected: list[str]) -> None:
    assert baseline.extract(question) == expected


@pytest.mark.parametrize("question", ["", "   ", "무엇을 언제 어떻게 해야 하나요?", "가능한 방법이 있나요?"])
def test_nothing_to_extract(baseline: KiwiNounPhraseBaseline, question: str) -> None:
    assert baseline.extract(question) == []


def test_input_is_normalised(baseline: KiwiNounPhraseBaseline) -> None:
    expected = ["여행자 휴대품", "면세한도"]
    assert baseline.extract("여행자  휴대품\t면세한도는?") == expected
    decomposed = unicodedata.normalize("NFD", "여행자 휴대품 면세한도는 얼마인가요?")
    assert baseline.extract(decomposed) == expected  # composed (NFC) output


def test_repeated_words_once_in_order(baseline: KiwiNounPhraseBaseline) -> None:
    assert baseline.extract("관세청에 관세를 내고 관세청에 관세를 또 내나요?") == ["관세청", "관세"]


def test_at_most_six_keywords_first_ones_kept(baseline: KiwiNounPhraseBaseline) -> None:
    question = "한국, 일본, 중국, 미국, 영국, 프랑스, 독일, 베트남의 관세율은?"
    assert baseline.extract(question) == ["한국", "일본", "중국", "미국", "영국", "프랑스"]


def test_outputs_are_grounded_clean_and_capped(baseline: KiwiNounPhraseBaseline, questions: list[str]) -> None:
    for question, keywords in zip(questions, baseline.extract_batch(questions), strict=True):
        assert len(keywords) <= baselines.MAX_KEYWORDS
        assert len(set(keywords)) == len(keywords)
        for keyword in keywords:
            assert keyword and keyword == normalize(keyword)
            assert keyword in normalize(question)  # verbatim, inner spaces included
            assert is_grounded(keyword, question)
            assert keyword not in QUESTION_WORDS and keyword not in baselines.STOPWORDS


def test_question_words_never_appear(baseline: KiwiNounPhraseBaseline, questions: list[str]) -> None:
    for keywords in baseline.extract_batch(questions):
        for keyword in keywords:
            assert not set(keyword.split()) & QUESTION_WORDS, keyword


def test_batch_equals_single(baseline: KiwiNounPhraseBaseline, questions: list[str]) -> None:
    assert baseline.extract_batch(questions) == [baseline.extract(question) for question in questions]
    assert baseline.extract_batch([]) == []


def test_one_kiwi_per_process_serves_every_baseline_and_analyser() -> None:
    """A new Kiwi costs seconds (load and first analysis): model loads and evaluations share one."""
    from keyword_extractor.text.questions import QuestionAnalyser

    first, second = KiwiNounPhraseBaseline(), KiwiNounPhraseBaseline()
    assert first._kiwi is second._kiwi is QuestionAnalyser().kiwi
    assert KiwiNounPhraseBaseline(num_workers=2)._kiwi is not first._kiwi  # its own thread count
    question = "관세 체납하면 어떻게 돼?"
    assert first.extract(question) == first.extract_batch([question, "직구 물건 선물로 줘도 돼?"])[0]


def test_single_thread_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="num_workers"):
        KiwiNounPhraseBaseline(num_workers=0)
