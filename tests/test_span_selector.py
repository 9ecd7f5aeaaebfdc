"""The span selector: fitted on real questions, it only ever chooses candidate spans, and travels safely."""

from __future__ import annotations

import os
import shutil

import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from keyword_extractor import span_selector
from keyword_extractor.analysis import QuestionAnalyser
from keyword_extractor.inference import KeywordExtractor
from keyword_extractor.keywords import clean_keywords, parse_keywords
from keyword_extractor.metrics import score
from keyword_extractor.span_features import SpanCounts, span_features
from keyword_extractor.tsv import load_pairs
from tests.conftest import TEST_TSV, TRAIN_TSV


@pytest.fixture(scope="module")
def analyser() -> QuestionAnalyser:
    return QuestionAnalyser()


def _golds(frame) -> list[list[str]]:
    return [clean_keywords(parse_keywords(cell)) for cell in frame["keyword"]]


@pytest.fixture(scope="module")
def fitted(analyser):
    """A selector fitted on 600 training rows; the noun-phrase rule stands in for the model's answers."""
    frame = load_pairs(TRAIN_TSV)
    train, val = frame.iloc[:600], frame.iloc[600:700]
    val_parsed = analyser.parse_batch(val["query"].tolist())
    selector = span_selector.fit(
        analyser.parse_batch(train["query"].tolist()),
        _golds(train),
        val_parsed,
        _golds(val),
        [list(q.rule_keywords) for q in val_parsed],
        limit=6,
        seed=42,
    )
    assert selector is not None
    return selector


def test_a_training_row_does_not_count_its_own_keywords(analyser):
    frame = load_pairs(TRAIN_TSV).iloc[:200]
    parsed = analyser.parse_batch(frame["query"].tolist())
    golds = _golds(frame)
    counts = SpanCounts.count(parsed, golds)
    unique = next(
        (q, gold, span)
        for q, gold in zip(parsed, golds, strict=True)
        for span in q.spans
        if span in gold and counts.candidate[span] == 1
    )
    question, gold, span = unique
    spans, rows = span_features(question, counts, gold)
    own_out = rows[spans.index(span)]
    assert own_out[1] == pytest.approx(counts.prior)  # smoothed rate of a span never seen elsewhere
    assert own_out[3] == 0.0  # "was a keyword elsewhere": no
    spans, rows = span_features(question, counts)  # as a new question would see it: its counts included
    assert rows[spans.index(span)][3] == 1.0


def test_selected_keywords_are_candidate_spans_and_beat_chance(fitted, analyser):
    frame = load_pairs(TEST_TSV)
    parsed = analyser.parse_batch(frame["query"].tolist())
    rule = [list(q.rule_keywords) for q in parsed]
    chosen = fitted.select(parsed, rule, limit=6)
    assert all(k in q.spans for q, keywords in zip(parsed, chosen, strict=True) for k in keywords)
    assert all(len(keywords) <= 6 for keywords in chosen)
    assert all(keywords == sorted(keywords, key=q.text.find) for q, keywords in zip(parsed, chosen, strict=True))
    assert score(_golds(frame), chosen).f1 > 0.5
    assert set(fitted.report) >= {"val_f1_seq2seq", "val_f1_selected_cross_validated", "val_f1_baseline"}


def test_the_model_answer_moves_the_choice(fitted, analyser):
    """The combiner weighs the model's answer: the same question, different answers, different keywords."""
    parsed = analyser.parse_batch(load_pairs(TEST_TSV)["query"].tolist()[:60])
    with_rule = fitted.select(parsed, [list(q.rule_keywords) for q in parsed], limit=6)
    with_nothing = fitted.select(parsed, [[] for _ in parsed], limit=6)
    assert with_rule != with_nothing
    assert fitted.combiner is not None and fitted.combiner[0][1] > 0  # being in the answer raises the odds


def test_round_trip_through_the_model_directory(fitted, analyser, tiny_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    for stored in (span_selector.SETTINGS_FILE, span_selector.SCORER_FILE):
        (model_dir / stored).unlink(missing_ok=True)
    questions = load_pairs(TEST_TSV)["query"].tolist()[:40]
    before = KeywordExtractor(model_dir)
    assert before.selector is None
    seq2seq_alone = before.extract(questions)
    fitted.save(model_dir)
    extractor = KeywordExtractor(model_dir)
    assert extractor.selector is not None
    assert extractor.extract(questions, select_spans=False) == seq2seq_alone
    parsed = analyser.parse_batch(questions)
    assert extractor.extract(questions) == fitted.select(parsed, seq2seq_alone, limit=extractor.settings.max_keywords)


def test_a_scorer_file_holding_other_types_is_refused(fitted, tmp_path):
    fitted.save(tmp_path)
    (tmp_path / span_selector.SCORER_FILE).write_bytes(skops.io.dumps({"run": os.system}))
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        span_selector.SpanSelector.load(tmp_path)
    (tmp_path / span_selector.SCORER_FILE).write_bytes(skops.io.dumps(LogisticRegression()))
    with pytest.raises(TypeError, match="HistGradientBoostingClassifier"):
        span_selector.SpanSelector.load(tmp_path)


def test_too_few_validation_questions_fit_nothing(analyser):
    frame = load_pairs(TRAIN_TSV).iloc[:120]
    parsed = analyser.parse_batch(frame["query"].tolist())
    golds = _golds(frame)
    few = parsed[:5]
    assert span_selector.fit(parsed, golds, few, golds[:5], [[] for _ in few], limit=6, seed=42) is None
