"""The metric definitions on hand-made cases whose numbers can be checked by hand."""

from __future__ import annotations

import dataclasses
import math
import unicodedata

import pytest

from keyword_extractor.text.metrics import KeywordScores, latency_summary, row_scores, score


def test_perfect_prediction_scores_one_whatever_the_order() -> None:
    result = score([["관세", "면세한도"]], [["면세한도", "관세"]], ["관세 면세한도는?"])
    assert (result.precision, result.recall, result.f1, result.macro_f1) == (1.0, 1.0, 1.0, 1.0)
    assert result.exact_match == 1.0
    assert result.grounded_rate == 1.0
    assert result.empty_prediction_rate == 0.0
    assert result.mean_predicted == 2.0
    assert result.n_questions == 1


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ([], [], (1.0, 1.0, 1.0)),  # nothing to find, nothing invented
        ([], ["관세"], (0.0, 0.0, 0.0)),
        (["관세"], [], (0.0, 0.0, 0.0)),
        (["관세"], ["세관"], (0.0, 0.0, 0.0)),
    ],
)
def test_row_scores_empty_and_disjoint_cases(gold: list[str], pred: list[str], expected: tuple[float, ...]) -> None:
    assert row_scores(gold, pred) == expected


def test_partial_overlap_has_exact_numbers() -> None:
    gold = [["여행자 휴대품", "면세한도", "관세"]]
    pred = [["면세한도", "관세", "세관", "신고"]]  # 2 of 4 right, 2 of 3 found
    assert row_scores(gold[0], pred[0]) == pytest.approx((0.5, 2 / 3, 4 / 7))
    result = score(gold, pred)
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(4 / 7)
    assert result.macro_f1 == pytest.approx(4 / 7)
    assert result.exact_match == 0.0


def test_empty_gold_and_empty_prediction_at_corpus_level() -> None:
    result = score([[], ["관세"], []], [["세관"], [], []])
    # Only the last question (both empty) scores 1 per question; no keyword matched anywhere.
    assert (result.precision, result.recall, result.f1) == (0.0, 0.0, 0.0)
    assert result.macro_f1 == pytest.approx(1 / 3)
    assert result.exact_match == pytest.approx(1 / 3)
    assert result.empty_prediction_rate == pytest.approx(2 / 3)
    assert result.mean_predicted == pytest.approx(1 / 3)


def test_all_empty_is_perfect_not_nan() -> None:
    result = score([[], []], [[], []], ["질문", "질문"])
    assert (result.precision, result.recall, result.f1, result.macro_f1) == (1.0, 1.0, 1.0, 1.0)
    assert result.grounded_rate == 0.0  # no keyword predicted, so none grounded
    assert not any(math.isnan(value) for value in result.as_dict().values())


def test_duplicates_count_once() -> None:
    result = score([["관세", "세관"]], [["관세", "관세", " 관세 ", "세관"]])
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)
    assert result.mean_predicted == 2.0
    assert row_scores(["관세", "관세"], ["관세"]) == (1.0, 1.0, 1.0)


def test_decomposed_hangul_equals_composed() -> None:
    decomposed = unicodedata.normalize("NFD", "면세한도")
    assert decomposed != "면세한도"
    result = score([["면세한도"]], [[decomposed]], [unicodedata.normalize("NFD", "면세한도는 얼마?")])
    assert result.f1 == 1.0
    assert result.grounded_rate == 1.0


def test_whitespace_is_normalised() -> None:
    assert row_scores(["여행자 휴대품"], ["여행자  휴대품"]) == (1.0, 1.0, 1.0)
    assert row_scores(["여행자 휴대품"], [" 여행자\t휴대품\n"]) == (1.0, 1.0, 1.0)
    assert row_scores(["여행자 휴대품"], ["여행자휴대품"]) == (0.0, 0.0, 0.0)  # a missing space is a different keyword


def test_blank_keywords_are_ignored() -> None:
    assert row_scores(["관세", ""], ["관세", "  "]) == (1.0, 1.0, 1.0)


def test_grounded_rate_counts_keywords_found_in_their_question() -> None:
    queries = ["여행자 휴대품 면세한도는 얼마인가요?", "관세 체납하면 어떻게 돼?"]
    preds = [["여행자 휴대품", "면세 한도"], ["관세 체납"]]  # '면세 한도' is not written so in the question
    result = score([["여행자 휴대품", "면세한도"], ["관세 체납"]], preds, queries)
    assert result.grounded_rate == pytest.approx(2 / 3)


def test_grounded_rate_is_absent_without_queries() -> None:
    result = score([["관세"]], [["관세"]])
    assert result.grounded_rate is None
    assert "grounded_rate" not in result.as_dict()


def test_macro_and_micro_differ() -> None:
    # One easy question answered, one long question missed entirely.
    golds = [["관세"], ["세종대왕", "훈민정음", "반포", "집현전", "한글", "창제"]]
    preds = [["관세"], []]
    result = score(golds, preds)
    assert result.precision == 1.0
    assert result.recall == pytest.approx(1 / 7)
    assert result.f1 == pytest.approx(0.25)  # 2·1 / (1 + 7)
    assert result.macro_f1 == pytest.approx(0.5)  # (1 + 0) / 2


def test_as_dict_is_flat_and_complete() -> None:
    result = score([["관세"]], [["관세"]], ["관세?"])
    values = result.as_dict()
    assert set(values) == {field.name for field in dataclasses.fields(KeywordScores)}
    assert all(isinstance(value, int | float) for value in values.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.f1 = 0.0  # type: ignore[misc]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="gold lists"):
        score([["관세"]], [["관세"], ["세관"]])
    with pytest.raises(ValueError, match="questions"):
        score([["관세"]], [["관세"]], ["q1", "q2"])
    with pytest.raises(ValueError, match="no questions"):
        score([], [])
    with pytest.raises(TypeError, match="list of keywords"):
        score(["관세"], [["관세"]])  # a bare string would be scored character by character
    with pytest.raises(TypeError):
        row_scores(["관세"], "관세")


def test_latency_summary_per_item() -> None:
    summary = latency_summary([0.010, 0.020, 0.030, 0.040])
    assert summary["p50_ms"] == pytest.approx(25.0)
    assert summary["p95_ms"] == pytest.approx(38.5)  # linear interpolation between 30 and 40 ms
    assert summary["mean_ms"] == pytest.approx(25.0)
    assert summary["throughput_qps"] == pytest.approx(40.0)
    assert summary["n_questions"] == 4


def test_latency_summary_batches_share_their_time() -> None:
    summary = latency_summary([1.0, 2.0], batch_sizes=[10, 10])  # 100 ms and 200 ms per question
    assert summary["p50_ms"] == pytest.approx(150.0)
    assert summary["p95_ms"] == pytest.approx(200.0)
    assert summary["mean_ms"] == pytest.approx(150.0)
    assert summary["throughput_qps"] == pytest.approx(20 / 3)
    assert summary["n_questions"] == 20
    assert summary["total_seconds"] == pytest.approx(3.0)


def test_latency_summary_edge_cases() -> None:
    assert latency_summary([0.0, 0.0])["throughput_qps"] == 0.0  # too fast to measure, no division by zero
    with pytest.raises(ValueError):
        latency_summary([])
    with pytest.raises(ValueError):
        latency_summary([1.0], batch_sizes=[1, 2])
    with pytest.raises(ValueError):
        latency_summary([1.0], batch_sizes=[0])
    with pytest.raises(ValueError):
        latency_summary([-0.1])
    with pytest.raises(TypeError):
        latency_summary(0.5)  # type: ignore[arg-type]
