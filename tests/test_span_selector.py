"""The span selector: fitted on real questions, it only ever chooses candidate spans, and travels safely."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model import span_selector
from keyword_extractor.text.cohesion import cohesion
from keyword_extractor.text.keywords import clean_keywords, covered_by, nested_in, parse_keywords
from keyword_extractor.text.metrics import score
from keyword_extractor.text.questions import QuestionAnalyser
from keyword_extractor.text.span_features import ParsedQuestion, SpanCounts, span_features
from tests.conftest import TEST_TSV, TRAIN_TSV


@pytest.fixture(scope="module")
def analyser() -> QuestionAnalyser:
    return QuestionAnalyser()


def _golds(frame) -> list[list[str]]:
    return [clean_keywords(parse_keywords(cell)) for cell in frame["keyword"]]


def _fit_on_first_rows(analyser, model_answers) -> span_selector.SpanSelector | None:
    """A selector fitted on the first 600 training rows and validated on the next 100, where
    `model_answers(parsed, golds)` stands in for the seq2seq model's answers."""
    frame = load_pairs(TRAIN_TSV)
    train, val = frame.iloc[:600], frame.iloc[600:700]
    val_parsed, val_golds = analyser.parse_batch(val["query"].tolist()), _golds(val)
    return span_selector.fit(
        analyser.parse_batch(train["query"].tolist()),
        _golds(train),
        val_parsed,
        val_golds,
        model_answers(val_parsed, val_golds),
        limit=6,
        seed=42,
    )


@pytest.fixture(scope="module")
def fitted(analyser):
    """A selector fitted on 600 training rows; the noun-phrase rule stands in for the model's answers."""
    selector = _fit_on_first_rows(analyser, lambda parsed, golds: [list(q.rule_keywords) for q in parsed])
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


def test_kiwi_scores_tell_a_common_word_from_a_rare_one(analyser):
    """Feature set 2 adds Kiwi's own morpheme scores: a signal for words the training questions never saw."""
    question = analyser.parse_batch(["세금 신고서와 하네스 수입 절차 알려줘"])[0]
    counts = SpanCounts.count([question], [["세금"]])
    spans, old_rows = span_features(question, counts, feature_set=1)
    same_spans, rows = span_features(question, counts, feature_set=2)
    assert same_spans == spans
    assert all(len(row) == len(old) + 2 and row[: len(old)] == old for row, old in zip(rows, old_rows, strict=True))
    by_span = dict(zip(spans, rows, strict=True))
    tokens = {t.form: t.score for t in question.tokens}
    assert by_span["하네스"][-2:] == [pytest.approx(tokens["하네스"])] * 2
    assert by_span["세금"][-2] > by_span["하네스"][-2]  # Kiwi knows 세금 as far likelier than 하네스
    with pytest.raises(ValueError, match="feature set 5"):
        span_features(question, counts, feature_set=5)


def _added_by_feature_set(feature_set: int, question, counts, width: int) -> dict[str, list[float]]:
    """Per span, the `width` features this set appends to the set before it, which it leaves as they were."""
    spans, old_rows = span_features(question, counts, feature_set=feature_set - 1)
    same_spans, rows = span_features(question, counts, feature_set=feature_set)
    assert same_spans == spans
    assert all(len(row) == len(old) + width and row[: len(old)] == old for row, old in zip(rows, old_rows, strict=True))
    return {span: row[-width:] for span, row in zip(spans, rows, strict=True)}


def test_join_evidence_and_quotes_are_features_of_set_3(analyser):
    """Set 3 adds what holds for a phrase never seen: the rule's measured word lists, and quotation marks."""
    question = analyser.parse_batch(["전봉준이 우금치 전투에서 패한 뒤 '빅 브라더'와 직구 물건 얘기를 했나요?"])[0]
    added = _added_by_feature_set(3, question, SpanCounts.count([question], [["전봉준"]]), width=5)
    assert added["우금치 전투"] == [1.0, 0.0, 0.0, 0.0, 0.0]  # 전투 is a listed head: the join is asked for
    assert added["직구 물건"][:2] == [0.0, 1.0]  # 직구 is listed as standing alone: the join is refused
    assert added["빅 브라더"] == [0.0, 0.0, 1.0, 1.0, 1.0]  # quoted on both sides
    assert added["전봉준"][2:] == [0.0, 0.0, 0.0]
    assert added["우금치"] == [0.0] * 5


def test_kiwi_finds_a_fixed_term_more_cohesive_than_words_that_merely_meet():
    """Cohesion comes from Kiwi's language-wide model, so it judges phrases no training question holds."""
    fixed_terms = ["베를린 장벽", "포에니 전쟁", "지리산 국립공원"]
    chance_meetings = ["직구 물건", "독일 직구", "하네스 수입"]
    assert min(map(cohesion, fixed_terms)) > max(map(cohesion, chance_meetings))
    assert cohesion("장벽") == 0.0


def test_cohesion_of_the_span_and_of_the_phrase_holding_it_are_features_of_set_4(analyser):
    """A piece of a cohesive phrase (`베를린` in `베를린 장벽`) learns that from the phrase holding it."""
    question = analyser.parse_batch(["베를린 장벽이 무너진 뒤 직구 물건 통관은 어떻게 됐나요?"])[0]
    added = _added_by_feature_set(4, question, SpanCounts.count([question], [["베를린 장벽"]]), width=2)
    assert added["베를린 장벽"] == [pytest.approx(cohesion("베를린 장벽")), 0.0]
    assert added["베를린"] == [0.0, pytest.approx(cohesion("베를린 장벽"))]
    assert added["장벽"][1] == pytest.approx(cohesion("베를린 장벽"))
    assert added["뒤 직구 물건 통관"][1] == 0.0  # no candidate holds the longest span


def test_a_selector_stored_before_feature_sets_keeps_its_features(fitted, analyser, tmp_path):
    """A selector saved without `feature_set` was fitted on set 1: it loads and scores with set 1."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame = load_pairs(TRAIN_TSV).iloc[:300]
    parsed, golds = analyser.parse_batch(frame["query"].tolist()), _golds(frame)
    features, labels = [], []
    for question, gold in zip(parsed, golds, strict=True):
        spans, rows = span_features(question, fitted.counts, gold, feature_set=1)
        features.extend(rows)
        labels.extend(span in gold for span in spans)
    old = span_selector.SpanSelector(
        fitted.counts,
        HistGradientBoostingClassifier(max_iter=20).fit(features, labels),
        fitted.combiner,
        fitted.threshold,
        fitted.drop_nested,
        {},
        feature_set=1,
    )
    old.save(tmp_path)
    settings_file = tmp_path / span_selector.SETTINGS_FILE
    stored = json.loads(settings_file.read_text())
    del stored["feature_set"]
    settings_file.write_text(json.dumps(stored, ensure_ascii=False))
    loaded = span_selector.SpanSelector.load(tmp_path)
    assert loaded.feature_set == 1
    assert fitted.feature_set == 4  # new selectors use the latest set
    questions = analyser.parse_batch(load_pairs(TEST_TSV)["query"].tolist()[:30])
    answers = [list(q.rule_keywords) for q in questions]
    assert loaded.select(questions, answers, limit=6) == old.select(questions, answers, limit=6)


def test_a_selector_stored_before_combiner_inputs_keeps_its_combiner(fitted, analyser, tmp_path):
    """A selector saved without `combiner_inputs` has a four-input combiner: it loads and scores as before."""
    four_inputs = ([1.0, 2.0, -0.3, 0.5], -1.5)
    old = span_selector.SpanSelector(
        fitted.counts, fitted.scorer, four_inputs, fitted.threshold, fitted.drop_nested, {}, combiner_inputs=1
    )
    old.save(tmp_path)
    settings_file = tmp_path / span_selector.SETTINGS_FILE
    stored = json.loads(settings_file.read_text())
    del stored["combiner_inputs"]
    settings_file.write_text(json.dumps(stored, ensure_ascii=False))
    loaded = span_selector.SpanSelector.load(tmp_path)
    assert loaded.combiner_inputs == 1
    assert fitted.combiner_inputs == 2 and len(fitted.combiner[0]) == 8
    questions = analyser.parse_batch(load_pairs(TEST_TSV)["query"].tolist()[:30])
    answers = [list(q.rule_keywords) for q in questions]
    assert loaded.select(questions, answers, limit=6) == old.select(questions, answers, limit=6)
    assert loaded.select(questions, answers, limit=6) != fitted.select(questions, answers, limit=6)


def test_the_rule_pick_of_an_unseen_span_is_a_combiner_input(fitted, analyser):
    """Inputs 2: where training never saw a span, the rule's pick is weighed on its own."""
    question = analyser.parse_batch(["신라가 기벌포 전투에서 이긴 이유는?"])[0]
    spans = list(dict.fromkeys(question.spans))
    scores = np.full(len(spans), 0.5)
    inputs = span_selector._combiner_inputs(question, spans, scores, [], fitted.counts)
    by_span = dict(zip(spans, inputs.tolist(), strict=True))
    assert "기벌포 전투" in question.rule_keywords and fitted.counts.candidate["기벌포 전투"] == 0
    assert by_span["기벌포 전투"][4:7] == [1.0, 0.0, 1.0]  # the rule's, unseen, so the rule's unseen pick
    old = span_selector._combiner_inputs(question, spans, scores, [], fitted.counts, version=1)
    assert old.shape == (len(spans), 4)
    with pytest.raises(ValueError, match="combiner inputs 3"):
        span_selector._combiner_inputs(question, spans, scores, [], fitted.counts, version=3)


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


def test_the_model_answer_moves_the_choice(analyser):
    """The combiner weighs the model's answer: the same question, different answers, different keywords.

    Fitted with a model that answers the validation questions right: an answer that copied the rule's
    pick (the shared fixture) would be the combiner's rule input twice, and the two would split one weight.
    """
    selector = _fit_on_first_rows(analyser, lambda parsed, golds: golds)
    parsed = analyser.parse_batch(load_pairs(TEST_TSV)["query"].tolist()[:60])
    with_rule = selector.select(parsed, [list(q.rule_keywords) for q in parsed], limit=6)
    with_nothing = selector.select(parsed, [[] for _ in parsed], limit=6)
    assert with_rule != with_nothing
    assert selector.combiner is not None and selector.combiner[0][1] > 0  # being in the answer raises the odds


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


def test_the_scorer_is_a_bag_of_scorers_fitted_on_different_questions(fitted, analyser, tmp_path):
    """Each member learns from its own bootstrap sample of the questions, so they disagree; the selector
    scores with their mean, and a stored bag comes back whole."""
    bag = fitted.scorer
    assert isinstance(bag, span_selector.ScorerBag) and len(bag.members) == span_selector.SCORER_BAG
    questions = analyser.parse_batch(load_pairs(TEST_TSV)["query"].tolist()[:30])
    rows = np.asarray([row for q in questions for row in span_features(q, fitted.counts)[1]])
    each = [member.predict_proba(rows)[:, 1] for member in bag.members]
    assert not np.allclose(each[0], each[1])
    assert np.allclose(bag.predict_proba(rows)[:, 1], np.mean(each, axis=0))
    fitted.save(tmp_path)
    loaded = span_selector.SpanSelector.load(tmp_path)
    assert len(loaded.scorer.members) == span_selector.SCORER_BAG
    assert np.allclose(loaded.scorer.predict_proba(rows), bag.predict_proba(rows))


def test_a_bag_holding_another_type_is_refused(fitted, tmp_path):
    fitted.save(tmp_path)
    (tmp_path / span_selector.SCORER_FILE).write_bytes(skops.io.dumps([*fitted.scorer.members, LogisticRegression()]))
    with pytest.raises(TypeError, match="HistGradientBoostingClassifier"):
        span_selector.SpanSelector.load(tmp_path)
    (tmp_path / span_selector.SCORER_FILE).write_bytes(skops.io.dumps([]))
    with pytest.raises(TypeError, match="no scorer"):
        span_selector.SpanSelector.load(tmp_path)


def test_too_few_validation_questions_fit_nothing(analyser):
    frame = load_pairs(TRAIN_TSV).iloc[:120]
    parsed = analyser.parse_batch(frame["query"].tolist())
    golds = _golds(frame)
    few = parsed[:5]
    assert span_selector.fit(parsed, golds, few, golds[:5], [[] for _ in few], limit=6, seed=42) is None


def test_nested_spans_are_dropped_even_where_the_validation_labels_reward_them(analyser):
    """LABELLING.md leaves a kept phrase's pieces out; a validation split must not vote that away.

    Here every validation keyword's candidate pieces are labelled too, so keeping nested spans scores
    higher on it; the fitted selector still drops them, and its answers hold no nested pair.
    """
    frame = load_pairs(TRAIN_TSV)
    train, val = frame.iloc[:600], frame.iloc[600:700]
    val_parsed = analyser.parse_batch(val["query"].tolist())
    with_pieces = [
        gold + [s for s in q.spans if s not in gold and any(nested_in(s, k, q.text) for k in gold)]
        for q, gold in zip(val_parsed, _golds(val), strict=True)
    ]
    assert sum(map(len, with_pieces)) > sum(map(len, _golds(val))) + 20
    answers = [list(q.rule_keywords) for q in val_parsed]
    selector = span_selector.fit(
        analyser.parse_batch(train["query"].tolist()), _golds(train), val_parsed, with_pieces, answers, 6, 42
    )
    assert selector is not None and selector.drop_nested
    chosen = selector.select(val_parsed, answers, 6)
    nested = [
        (a, b) for q, row in zip(val_parsed, chosen, strict=True) for a in row for b in row if nested_in(a, b, q.text)
    ]
    assert nested == []


def _question(text: str) -> ParsedQuestion:
    return ParsedQuestion(text, (), (), ())


def test_the_threshold_is_the_middle_of_the_broad_top_not_a_lone_spike():
    """On a hundred validation questions one threshold's F1 can jump by a few answers; its neighbours'
    agree on where the top really is."""
    assert span_selector.plateau_middle([0.70, 0.80, 0.81, 0.80, 0.60, 0.82, 0.50, 0.40]) == 2
    assert span_selector.plateau_middle([0.79, 0.80, 0.81, 0.81, 0.81, 0.78, 0.83, 0.70]) == 3
    assert span_selector.plateau_middle([0.90, 0.80, 0.70]) == 0  # an end counts itself twice
    assert span_selector.plateau_middle([0.5, 0.5, 0.5]) == 0  # a tie: the lower threshold, more recall


def test_no_threshold_above_half_the_best_validation_f1_is_chosen():
    """For calibrated probabilities the F1-optimal threshold is half the best F1; a validation curve that
    climbs past it is following a few answers."""
    thresholds = span_selector.THRESHOLDS  # 0.25 … 0.60
    climbing = [0.7895, 0.7892, 0.7935, 0.8110, 0.8122, 0.8167, 0.8179, 0.8034]  # 65 validation questions
    assert span_selector.plateau_middle(climbing) == 5  # 0.50 without the bound
    assert thresholds[span_selector.threshold_index(climbing, thresholds)] == 0.40  # 0.8179 / 2 = 0.409
    flat = [0.7838, 0.7898, 0.7836, 0.7772, 0.7822, 0.7674, 0.7616, 0.7577]
    assert span_selector.threshold_index(flat, thresholds) == span_selector.plateau_middle(flat) == 0
    assert span_selector.threshold_index([0.30, 0.40, 0.45], [0.25, 0.30, 0.35]) == 0  # none allowed: the lowest


def _chosen(question: ParsedQuestion, scored: list[tuple[str, float]]) -> list[str]:
    """`choose` at threshold 0.5, nested spans dropped, at most six: how the choice tests below call it."""
    return span_selector.choose(question, scored, 0.5, drop_nested=True, limit=6)


def test_a_span_inside_a_kept_span_wherever_it_occurs_is_dropped():
    question = _question("보이저 2호는 지금 어디에 있나요?")
    scored = [("보이저", 0.9), ("보이저 2호", 0.8), ("2호", 0.7)]  # the two pieces do not overlap
    assert _chosen(question, scored) == ["보이저", "2호"]
    scored = [("보이저 2호", 0.9), ("보이저", 0.8), ("2호", 0.7)]
    assert _chosen(question, scored) == ["보이저 2호"]
    assert span_selector.choose(question, scored, 0.5, drop_nested=False, limit=6) == ["보이저 2호", "보이저", "2호"]


def test_a_span_that_also_stands_on_its_own_is_kept_beside_the_longer_one():
    question = _question("관세를 내라는 관세청 문자가 왔어요")
    scored = [("관세청", 0.9), ("관세", 0.8), ("문자", 0.7)]
    assert _chosen(question, scored) == ["관세", "관세청", "문자"]
    fta = _question("한-EU FTA 원산지 기준은?")
    scored = [("한-EU FTA", 0.9), ("FTA", 0.8), ("EU", 0.75), ("원산지", 0.7)]
    assert _chosen(fta, scored) == ["한-EU FTA", "원산지"]
    war = _question("6·25 전쟁과 6·25의 의미")
    assert nested_in("6·25", "6·25 전쟁", war.text) is False  # the second 6·25 stands alone
    assert nested_in("6·25 전쟁", "6·25", war.text) is False  # the longer is never inside


def test_a_span_covered_by_several_kept_spans_is_dropped():
    """Each place of `스티브` lies inside a different kept name: it is a piece of the answer all the same."""
    question = _question("스티브 잡스와 스티브 워즈니악이 애플을 세운 곳은 어디야?")
    scored = [("스티브 잡스", 0.9), ("스티브 워즈니악", 0.85), ("스티브", 0.8), ("애플", 0.7)]
    assert _chosen(question, scored) == ["스티브 잡스", "스티브 워즈니악", "애플"]
    assert covered_by("스티브", ["스티브 잡스", "스티브 워즈니악"], question.text)
    assert not covered_by("스티브", ["스티브 잡스"], question.text)  # one name leaves the other place bare
    assert not covered_by("스티브", ["스티브"], question.text)  # a span never covers itself
    alone = _question("스티브 잡스와 스티브는 누구야?")
    assert _chosen(alone, [("스티브 잡스", 0.9), ("스티브", 0.8)]) == ["스티브 잡스", "스티브"]


def test_a_name_of_several_words_is_kept_whole_rather_than_its_pieces(analyser):
    """LABELLING.md: named entities stay whole, without their pieces, even where a piece scores higher."""
    voyager, gogh, chernobyl, fta = analyser.parse_batch(
        [
            "보이저 2호는 지금 어디에 있나요?",
            "빈센트 반 고흐의 대표작은?",
            "체르노빌 원전 사고는 언제?",
            "한-EU FTA 원산지 기준은?",
        ]
    )
    assert span_selector.is_name_phrase("보이저 2호", voyager)
    assert span_selector.is_name_phrase("빈센트 반 고흐", gogh)
    assert not span_selector.is_name_phrase("보이저", voyager)  # one word: nothing to keep whole
    assert not span_selector.is_name_phrase("빈센트 반 고흐의 대표작", gogh)  # a common noun in it
    assert not span_selector.is_name_phrase("체르노빌 원전", chernobyl)
    assert not span_selector.is_name_phrase("한-EU FTA", fta)  # Latin letters: left to the scores
    scored = [("보이저", 0.9), ("보이저 2호", 0.6), ("2호", 0.55)]
    assert _chosen(voyager, scored) == ["보이저 2호"]
    scored = [("빈센트 반", 0.8), ("고흐", 0.7), ("빈센트 반 고흐", 0.6), ("대표작", 0.9)]
    assert _chosen(gogh, scored) == ["빈센트 반 고흐", "대표작"]
    scored = [("보이저", 0.9), ("보이저 2호", 0.4), ("2호", 0.55)]  # below the threshold: the pieces stay
    assert _chosen(voyager, scored) == ["보이저", "2호"]


def test_a_phrase_led_by_a_proper_noun_is_kept_whole_unless_its_last_noun_is_the_predicate(analyser):
    """`사라예보 사건`, not `사라예보`: events and places named after a proper noun are labelled whole."""
    sarajevo, chernobyl, customs_offices, eu = analyser.parse_batch(
        [
            "사라예보 사건이 뭐야?",
            "체르노빌 원전 사고는 언제?",
            "창원세관이랑 마산세관 통합됐나요?",
            "EU 원산지 기준은?",
        ]
    )
    assert span_selector.is_proper_noun_phrase("사라예보 사건", sarajevo)
    assert span_selector.is_proper_noun_phrase("체르노빌 원전 사고", chernobyl)
    assert not span_selector.is_name_phrase("체르노빌 원전 사고", chernobyl)  # a name holds no common noun
    assert not span_selector.is_proper_noun_phrase("사라예보", sarajevo)  # one word: nothing to keep whole
    assert not span_selector.is_proper_noun_phrase("마산세관 통합", customs_offices)  # 통합됐나요: the predicate
    assert not span_selector.is_proper_noun_phrase("EU 원산지", eu)  # Latin letters: left to the scores
    scored = [("사라예보", 0.9), ("사라예보 사건", 0.6), ("사건", 0.55)]
    assert _chosen(sarajevo, scored) == ["사라예보 사건"]
    scored = [("사라예보", 0.9), ("사라예보 사건", 0.4), ("사건", 0.55)]  # below the threshold: the pieces stay
    assert _chosen(sarajevo, scored) == ["사라예보", "사건"]
    scored = [("체르노빌", 0.9), ("체르노빌 원전 사고", 0.6), ("사고", 0.7), ("체르노빌 원전", 0.65)]
    assert _chosen(chernobyl, scored) == ["체르노빌 원전 사고"]
    scored = [("마산세관", 0.9), ("마산세관 통합", 0.6), ("통합", 0.7), ("창원세관", 0.8)]
    assert _chosen(customs_offices, scored) == [
        "창원세관",
        "마산세관",
        "통합",
    ]


def test_a_date_of_several_words_is_kept_whole_rather_than_its_pieces():
    """`1944년 6월 6일` is one keyword in the labels; its pieces each score higher on their own."""
    normandy = _question("1944년 6월 6일 노르망디 상륙 작전에는 어느 나라가 참여했나요?")
    assert span_selector.is_date("1944년 6월 6일")
    assert span_selector.is_date("1789년 8월")
    assert span_selector.is_date("기원전 27년")
    assert not span_selector.is_date("1944년")  # one word: nothing to keep whole
    assert not span_selector.is_date("2월 혁명")  # a month that names an event
    assert not span_selector.is_date("1944년 6월 6일 노르망디")
    scored = [("1944년", 0.9), ("6월", 0.85), ("6일", 0.8), ("1944년 6월 6일", 0.6), ("노르망디 상륙 작전", 0.7)]
    assert _chosen(normandy, scored) == ["1944년 6월 6일", "노르망디 상륙 작전"]
    scored[3] = ("1944년 6월 6일", 0.4)  # below the threshold: the pieces stay
    assert _chosen(normandy, scored) == ["1944년", "6월", "6일", "노르망디 상륙 작전"]


def test_a_question_never_gets_an_empty_answer():
    """Every labelled question holds 1 to 6 keywords (LABELLING.md): with none above the threshold, the best."""
    question = _question("관세청 공무원 채용 시험 과목이 뭐예요?")
    scored = [("관세청 공무원", 0.3), ("채용 시험", 0.45), ("과목", 0.2)]
    assert _chosen(question, scored) == ["채용 시험"]
    assert _chosen(question, []) == []  # no candidate at all: nothing to give


def test_domain_verbal_nouns_are_added_and_procedural_ones_are_not(analyser):
    """LABELLING.md: `반포한` → `반포` is a keyword; `확인하려면` is a filler; `수입신고` kept holds its `신고`."""
    hangul, customs, declared = analyser.parse_batch(
        [
            "세종대왕이 훈민정음을 반포한 해는 언제인가?",
            "면세한도를 확인하려면 어디서 봐요?",
            "수입신고하려면 무엇이 필요한가요?",
        ]
    )
    assert span_selector.domain_verbal_nouns(hangul) == ["반포"]
    assert span_selector.domain_verbal_nouns(customs) == []  # 확인: procedural
    scored = [("세종대왕", 0.9), ("훈민정음", 0.8), ("반포", 0.2)]
    assert span_selector.choose(hangul, scored, 0.5, True, 6, add_verbal_nouns=True) == ["세종대왕", "훈민정음", "반포"]
    assert span_selector.choose(hangul, scored, 0.5, True, 6) == ["세종대왕", "훈민정음"]  # stored before: none
    scored = [("면세한도", 0.9), ("확인", 0.3)]
    assert span_selector.choose(customs, scored, 0.5, True, 6, add_verbal_nouns=True) == ["면세한도"]
    noun = span_selector.domain_verbal_nouns(declared)
    scored = [("수입신고", 0.9), *((n, 0.1) for n in noun if n != "수입신고")]
    assert span_selector.choose(declared, scored, 0.5, True, 6, add_verbal_nouns=True) == ["수입신고"]


def test_a_fitted_selector_adds_verbal_nouns_and_keeps_that_when_stored(fitted, analyser, tmp_path):
    assert fitted.verbal_nouns
    (question,) = analyser.parse_batch(["세종대왕이 훈민정음을 반포한 해는 언제인가?"])
    assert "반포" in fitted.select([question], [["세종대왕"]], 6)[0]
    fitted.save(tmp_path)
    assert span_selector.SpanSelector.load(tmp_path).verbal_nouns
    settings = json.loads((tmp_path / span_selector.SETTINGS_FILE).read_text())
    del settings["verbal_nouns"]  # as a selector stored before the convention was followed
    (tmp_path / span_selector.SETTINGS_FILE).write_text(json.dumps(settings, ensure_ascii=False))
    assert not span_selector.SpanSelector.load(tmp_path).verbal_nouns


def test_a_plural_suffix_is_stripped_and_a_suffix_of_the_term_is_kept(analyser):
    """LABELLING.md: `학자들` → `학자`; `1인당` stays; a name ending in a noun with 들 stays whole."""
    scholars, per_person, band = analyser.parse_batch(
        ["세종대왕이 집현전 학자들과 함께 편찬한 책은?", "1인당 면세한도는 얼마인가요?", "서태지와 아이들의 데뷔곡은?"]
    )
    assert span_selector.without_plural("학자들", scholars) == "학자"
    assert span_selector.without_plural("집현전 학자들", scholars) == "집현전 학자"
    assert span_selector.without_plural("집현전", scholars) == "집현전"
    assert span_selector.without_plural("1인당", per_person) == "1인당"
    assert span_selector.without_plural("서태지와 아이들", band) == "서태지와 아이들"
    scored = [("학자들", 0.9), ("학자", 0.8), ("세종대왕", 0.7)]
    assert _chosen(scholars, scored) == ["세종대왕", "학자"]
    scored = [("1인당", 0.9), ("1인", 0.6)]
    assert _chosen(per_person, scored) == ["1인당"]


def test_unseen_counts_give_every_span_the_corpus_prior(analyser):
    """What the scorer also learns from: a question whose spans were never seen, the corpus rate behind each."""
    frame = load_pairs(TRAIN_TSV).iloc[:200]
    counts = SpanCounts.count(analyser.parse_batch(frame["query"].tolist()), _golds(frame))
    unseen = counts.unseen()
    assert unseen.prior == counts.prior > 0
    seen_span = next(span for span, n in counts.candidate.items() if n > 1)
    assert counts.rate(seen_span)[1] > 0
    assert unseen.rate(seen_span) == (pytest.approx(counts.prior), 0, 0)
