"""Rows most likely mislabelled, by out-of-fold confidence (cleanlab's confident learning).

Every candidate span of every question (`morphology.candidate_spans`) is one yes/no example: is it a
keyword of its question. A span scorer (the span selector's first stage) is fitted on four fifths of
the questions and scores the spans of the fifth it never saw, with corpus counts from the other four
fifths only; cleanlab then finds the spans whose label disagrees with a confident out-of-fold score
(`cleanlab.filter.find_label_issues`) and ranks them by label quality. A row is a suspect when one of
its spans is: kept though the scorer is sure it is not a keyword, or left out though it is sure it is.

A suspect is a question for a person, not a verdict: the scorer learned from the same file, so a
convention the file follows everywhere is never suspected, and a rare correct label can be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keyword_extractor.text.span_features import ParsedQuestion, SpanCounts, labelled_examples, span_features

FOLDS = 5
MIN_ROWS = 20  # fewer questions cannot score each fifth from the others: no suspects are looked for
SCORER_ITERATIONS = 150  # fewer than training's scorer: the audit needs a ranking, not the last point of F1


@dataclass
class SuspectRow:
    """One row whose labels the out-of-fold scorer confidently disagrees with."""

    line: int
    query: str
    kept_but_unlikely: list[str]  # labelled a keyword, scored as not one
    left_out_but_likely: list[str]  # not labelled, scored as a keyword
    quality: float  # the lowest label quality of its spans (0: surely wrong, 1: surely right)


def out_of_fold_probabilities(
    parsed: Sequence[ParsedQuestion], golds: Sequence[Sequence[str]], seed: int = 42
) -> tuple[list[list[str]], list[np.ndarray]]:
    """Each question's distinct candidate spans and their keyword probability from a scorer that never saw it."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import KFold

    spans: list[list[str]] = [list(dict.fromkeys(q.spans)) for q in parsed]
    probabilities: list[np.ndarray] = [np.zeros(len(s)) for s in spans]
    folds = KFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for fit_rows, held_rows in folds.split(np.arange(len(parsed))):
        fit_parsed = [parsed[i] for i in fit_rows]
        fit_golds = [golds[i] for i in fit_rows]
        counts = SpanCounts.count(fit_parsed, fit_golds)
        features, labels = labelled_examples(fit_parsed, fit_golds, counts)
        if len(set(labels)) < 2:
            continue
        scorer = HistGradientBoostingClassifier(
            max_iter=SCORER_ITERATIONS, learning_rate=0.1, l2_regularization=3.0, random_state=seed
        ).fit(np.asarray(features), np.asarray(labels))
        for i in held_rows:
            _, rows = span_features(parsed[i], counts)
            if rows:
                probabilities[i] = scorer.predict_proba(np.asarray(rows))[:, 1]
    return spans, probabilities


def find_suspects(
    queries: Sequence[str],
    parsed: Sequence[ParsedQuestion],
    golds: Sequence[Sequence[str]],
    first_line: int,
    seed: int = 42,
) -> list[SuspectRow]:
    """Rows with a span whose label cleanlab finds at odds with its out-of-fold score, worst first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if len(parsed) < MIN_ROWS:
        return []
    spans, probabilities = out_of_fold_probabilities(parsed, golds, seed)
    owners = np.concatenate([np.full(len(s), i) for i, s in enumerate(spans)]).astype(int)
    labels = np.array([span in golds[i] for i, row in enumerate(spans) for span in row], dtype=int)
    keyword_probability = np.concatenate(probabilities)
    if len(set(labels.tolist())) < 2:
        return []
    pred_probs = np.column_stack([1 - keyword_probability, keyword_probability])
    # n_jobs=1: no process pool. Its forked workers inherit the orchestrator's SIGTERM handler, and a pool
    # shut down under it could hang the whole validate-data step (seen once in a pipeline run)
    issues = find_label_issues(labels, pred_probs, n_jobs=1)
    quality = get_label_quality_scores(labels, pred_probs)
    flat_spans = [span for row in spans for span in row]
    suspects = []
    for owner in sorted(set(owners[issues].tolist())):
        flagged = np.flatnonzero(issues & (owners == owner))
        suspects.append(
            SuspectRow(
                line=owner + first_line,
                query=queries[owner],
                kept_but_unlikely=[flat_spans[i] for i in flagged if labels[i]],
                left_out_but_likely=[flat_spans[i] for i in flagged if not labels[i]],
                quality=round(float(quality[flagged].min()), 4),
            )
        )
    return sorted(suspects, key=lambda row: (row.quality, row.line))
