"""The one definition of keyword metrics: training callbacks, evaluation, benchmarks and tests all use it.

Keywords are compared after `keywords.normalize` (NFC, single spaces) and as a SET per question:
a keyword predicted twice counts once, and the order of the keywords does not matter.

Zero divisions are decided here once, so that no caller meets a NaN:
- per question, both gold and prediction empty → P = R = F1 = 1.0 (nothing to find, nothing invented);
  exactly one of them empty → P = R = F1 = 0.0;
- over the corpus (micro), the same rule is applied to the summed counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from keyword_extractor.text.keywords import clean_keywords, is_grounded


def _as_set(keywords: Sequence[str]) -> set[str]:
    """Normalised, non-empty keywords; a bare string is refused because it would be read as characters."""
    if isinstance(keywords, str):
        raise TypeError(f"expected a list of keywords, got the string {keywords!r}; wrap it in a list")
    return set(clean_keywords(keywords))


def _prf(true_positives: int, n_gold: int, n_pred: int) -> tuple[float, float, float]:
    """Precision, recall, F1 from counts, with the empty cases defined in the module docstring."""
    if n_gold == 0 and n_pred == 0:
        return 1.0, 1.0, 1.0
    if n_gold == 0 or n_pred == 0:
        return 0.0, 0.0, 0.0
    precision = true_positives / n_pred
    recall = true_positives / n_gold
    f1 = 2 * true_positives / (n_gold + n_pred)  # == 2PR/(P+R), and 0.0 (not NaN) when nothing matches
    return precision, recall, f1


def row_scores(gold: Sequence[str], pred: Sequence[str]) -> tuple[float, float, float]:
    """(precision, recall, F1) of one question, for per-question tables and error analysis."""
    gold_set, pred_set = _as_set(gold), _as_set(pred)
    return _prf(len(gold_set & pred_set), len(gold_set), len(pred_set))


@dataclass(frozen=True)
class KeywordScores:
    """Scores of a set of predictions; `as_dict()` gives flat floats for logging (MLflow, JSON).

    `grounded_rate` is None when no questions were given to `score`; `as_dict()` then leaves it out.
    """

    precision: float
    recall: float
    f1: float
    macro_f1: float
    exact_match: float
    grounded_rate: float | None
    empty_prediction_rate: float
    mean_predicted: float
    n_questions: int

    def as_dict(self) -> dict[str, float]:
        """Every score that was computed, under its field name."""
        return {name: value for name, value in asdict(self).items() if value is not None}


def score(
    golds: Sequence[Sequence[str]],
    preds: Sequence[Sequence[str]],
    queries: Sequence[str] | None = None,
) -> KeywordScores:
    """Score predicted keyword lists against gold lists, question by question.

    - precision / recall / f1: micro, over all keywords of all questions (frequent questions weigh more);
    - macro_f1: mean of the per-question F1 (`row_scores`), so every question weighs the same;
    - exact_match: share of questions whose predicted set equals the gold set;
    - grounded_rate: share of predicted keywords found verbatim in their question (`keywords.is_grounded`);
      needs `queries`, and is 0.0 when nothing at all was predicted (no keyword to be grounded);
    - empty_prediction_rate: share of questions with no predicted keyword;
    - mean_predicted: mean number of distinct predicted keywords per question.

    Raises ValueError on lists of different lengths or on no questions at all, because a silent
    0.0 there hides a broken evaluation.
    """
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} gold lists but {len(preds)} predicted lists")
    if queries is not None and len(queries) != len(golds):
        raise ValueError(f"{len(queries)} questions but {len(golds)} gold lists")
    if not golds:
        raise ValueError("nothing to score: no questions")

    true_positives = n_gold = n_pred = n_exact = n_empty = n_grounded = 0
    row_f1s: list[float] = []
    for index, (gold, pred) in enumerate(zip(golds, preds, strict=True)):
        gold_set, pred_set = _as_set(gold), _as_set(pred)
        matched = len(gold_set & pred_set)
        true_positives += matched
        n_gold += len(gold_set)
        n_pred += len(pred_set)
        n_exact += gold_set == pred_set
        n_empty += not pred_set
        row_f1s.append(_prf(matched, len(gold_set), len(pred_set))[2])
        if queries is not None:
            n_grounded += sum(is_grounded(keyword, queries[index]) for keyword in pred_set)

    n_questions = len(golds)
    precision, recall, f1 = _prf(true_positives, n_gold, n_pred)
    grounded_rate: float | None = None
    if queries is not None:
        grounded_rate = n_grounded / n_pred if n_pred else 0.0
    return KeywordScores(
        precision=precision,
        recall=recall,
        f1=f1,
        macro_f1=math.fsum(row_f1s) / n_questions,
        exact_match=n_exact / n_questions,
        grounded_rate=grounded_rate,
        empty_prediction_rate=n_empty / n_questions,
        mean_predicted=n_pred / n_questions,
        n_questions=n_questions,
    )


def latency_summary(seconds: Sequence[float], batch_sizes: Sequence[int] | None = None) -> dict[str, float]:
    """p50 / p95 / mean milliseconds per question and throughput, from wall-clock timings.

    `seconds` are per-question timings, or, with `batch_sizes`, one timing per batch of that many
    questions. A batch's time is shared equally by its questions, so with batches the percentiles
    are the amortised cost per question (what throughput planning needs), not the latency one user
    waits for (that is the whole batch time). Percentiles use linear interpolation (numpy default).

    `throughput_qps` is questions / total seconds, and 0.0 when the total time is 0 (too fast for the
    clock: not measurable, reported without dividing by zero).
    """
    if isinstance(seconds, int | float):
        raise TypeError("expected a sequence of timings, got a single number")
    if not len(seconds):
        raise ValueError("no timings")
    times = np.asarray(seconds, dtype=float)
    if batch_sizes is None:
        sizes = np.ones(len(times), dtype=int)
    else:
        if len(batch_sizes) != len(times):
            raise ValueError(f"{len(times)} timings but {len(batch_sizes)} batch sizes")
        sizes = np.asarray(batch_sizes, dtype=int)
        if (sizes < 1).any():
            raise ValueError("batch sizes must be at least 1")
    if (times < 0).any() or not np.isfinite(times).all():
        raise ValueError("timings must be finite and non-negative")

    per_question_ms = np.repeat(times / sizes * 1000.0, sizes)
    total_seconds = float(times.sum())
    n_questions = int(sizes.sum())
    return {
        "p50_ms": float(np.percentile(per_question_ms, 50)),
        "p95_ms": float(np.percentile(per_question_ms, 95)),
        "mean_ms": total_seconds * 1000.0 / n_questions,
        "throughput_qps": n_questions / total_seconds if total_seconds > 0 else 0.0,
        "n_questions": n_questions,
        "total_seconds": total_seconds,
    }
