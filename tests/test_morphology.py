"""Candidate spans: the keywords morpheme grounding allows, cut only where Kiwi words start and end."""

from __future__ import annotations

import pytest

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.keywords import clean_keywords, normalize, parse_keywords
from keyword_extractor.text.morphology import candidate_spans, token_end, words
from keyword_extractor.text.questions import QuestionAnalyser
from tests.conftest import TEST_TSV, TRAIN_TSV


@pytest.fixture(scope="module")
def analyser() -> QuestionAnalyser:
    return QuestionAnalyser()


@pytest.mark.parametrize(
    ("question", "expected", "never"),
    [
        ("1만 달러 넘게 가져가면 신고해야 하나요?", {"1만 달러", "신고"}, {"1", "만 달러", "1만 달"}),
        ("1945년 8월 15일에 무슨 일이 있었나요?", {"1945년 8월 15일", "1945년"}, {"15일에", "1945"}),
        ("한-EU FTA 원산지 기준은?", {"한-EU FTA", "한-EU", "원산지 기준"}, {"EU", "기준은", "한"}),
        ("6·25 전쟁은 언제 시작됐나요?", {"6·25", "6·25 전쟁"}, {"6", "25", "전쟁은"}),
        ("jtbc전 사장은 누구야?", {"jtbc", "사장"}, {"jtbc전 사", "사장은"}),
        ("Netflix에서 본 영화를 BTS와 함께 봤어요", {"Netflix", "영화", "BTS"}, {"Netflix에서", "BTS와", "Net"}),
        ("FTA를 활용하면 HS코드가 바뀌나요?", {"FTA", "HS코드"}, {"FTA를", "HS코드가", "HS"}),
        ("여행자 휴대품 면세한도는 얼마인가요?", {"여행자 휴대품", "면세한도"}, {"면세한도는", "면세한", "휴대"}),
        ("부녀자들이 돌을 날랐나요?", {"부녀자", "부녀자들"}, {"부녀", "녀자"}),
        ("한국의 탈춤은 어디서 유래했나요?", {"한국", "탈춤", "한국의 탈춤"}, {"한국의", "탈춤은"}),
        ("B/L 번호는 어디서 확인해?", {"B/L", "B/L 번호"}, {"B", "L", "L 번호"}),
        ("TCP/IP 프로토콜은 누가 개발했어?", {"TCP/IP", "TCP/IP 프로토콜"}, {"TCP", "IP", "IP 프로토콜"}),
        ("수입/수출 통계는 어디서 봐?", {"수입", "수출 통계"}, {"수입/수출"}),
    ],
)
def test_tricky_questions(analyser, question, expected, never):
    spans = set(analyser.spans(question))
    assert expected <= spans, spans
    assert not never & spans, spans


def test_every_span_is_a_slice_cut_on_kiwi_word_edges(analyser):
    questions = load_pairs(TEST_TSV)["query"].tolist()
    texts = [normalize(question) for question in questions]
    for text, tokens in zip(texts, analyser.analyse(texts), strict=True):
        edges = {token.start for token in tokens} | {token_end(token) for token in tokens}
        for span in candidate_spans(text, tokens):
            starts = [i for i in range(len(text)) if text.startswith(span, i)]
            assert starts, (span, text)
            assert any(i in edges and i + len(span) in edges for i in starts), (span, text)


def test_words_never_hold_particles_or_verbs(analyser):
    text = normalize("면세한도는 얼마인가요? 신고하면 되나요")
    found = [word.text for word in words(text, analyser.analyse([text])[0])]
    assert found == ["면세한도", "얼마", "신고"]


def test_candidates_cover_the_gold_keywords_of_the_training_file(analyser):
    """The design premise: nearly every gold keyword is a candidate (measured: 98.2%)."""
    pairs = load_pairs(TRAIN_TSV)
    golds = [clean_keywords(parse_keywords(cell)) for cell in pairs["keyword"]]
    spans = analyser.spans_batch(pairs["query"])
    covered = sum(keyword in row for gold, row in zip(golds, spans) for keyword in gold)
    assert covered / sum(map(len, golds)) >= 0.975


def test_batch_and_single_analyses_agree_and_are_memoised(analyser):
    questions = load_pairs(TEST_TSV)["query"].tolist()[:40]
    batch = analyser.spans_batch(questions + questions[:5] + ["", "   "])
    assert batch[:40] == [analyser.spans(q) for q in questions]
    assert batch[40:45] == batch[:5]
    assert batch[45] == batch[46] == ()
