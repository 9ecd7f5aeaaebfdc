"""The second stage of the keyword model: choosing among a question's candidate spans.

The seq2seq model, trained from scratch on a few thousand questions, decodes whole candidate spans
(morpheme grounding) but chooses among them less well than a rule that has seen the whole language
(the Kiwi baseline). The selector learns the choice from the training questions:

1. a gradient-boosted scorer over `span_features` (corpus keep rates, Kiwi tags, shape, the rule's
   pick, Kiwi's morpheme scores), fitted on the training split with every row's own counts left out;
   five of them on bootstrap samples of the questions, averaged (`ScorerBag`), which moves less with
   each retraining than one;
2. a logistic combiner of that score with the seq2seq model's answer (is the span in it, at which
   rank) and (inputs 2) with the rule's pick and whether the span was ever seen in training, so that it
   learns to lean on the rule where the corpus knows nothing, fitted on the validation split, which the
   seq2seq model never trained on;
3. a threshold, picked by cross-validated F1 on the validation split (each threshold's averaged with its
   neighbours', none above half the best F1); spans nested in a chosen one are always dropped and the
   question's domain verbal nouns (`반포한` → `반포`) always added, as LABELLING.md asks (selectors stored
   before keep their own `drop_nested` and add none); names and dates of several words are kept whole,
   and no answer is empty.

Both stages travel in the model directory (`span_selector.json`, `span_selector.skops`: skops, which
loads only the types it is told to trust, not pickle).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keyword_extractor.common.files import write_atomic
from keyword_extractor.model import integrity
from keyword_extractor.text.baselines import STOPWORDS
from keyword_extractor.text.keywords import covered_by, nested_in
from keyword_extractor.text.metrics import score
from keyword_extractor.text.morphology import Token, token_end
from keyword_extractor.text.span_features import (
    LATEST_FEATURE_SET,
    ParsedQuestion,
    SpanCounts,
    labelled_examples,
    span_features,
    token_after,
    tokens_within,
)
from keyword_extractor.text.verbal_nouns import VERBAL_SUFFIX_TAGS, kept_verbal_nouns

log = logging.getLogger(__name__)

SETTINGS_FILE = "span_selector.json"
SCORER_FILE = "span_selector.skops"
TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
THRESHOLDS = tuple(round(0.25 + 0.05 * step, 2) for step in range(8))
MIN_VALIDATION_QUESTIONS = 20
SCORER_L2 = 3.0
SCORER_BAG = 5  # scorers averaged, each fitted on a bootstrap sample of the training questions
FORMAT_VERSION = 1
# 1: the scorer and the seq2seq answer. 2: + the rule's pick, the span seen in training, the rule's pick of
# an unseen span, the scorer's logit for an unseen span (benchmarks/README.md, "Transfer": +1.7 points
# customs→general, +0.2 general→customs, −0.5 and +0.1 on the random splits, before feature set 3).
COMBINER_INPUTS = (1, 2)
LATEST_COMBINER_INPUTS = COMBINER_INPUTS[-1]


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, 1e-4, 1 - 1e-4)
    return np.log(clipped / (1 - clipped))


def _combiner_inputs(
    question: ParsedQuestion,
    spans: Sequence[str],
    scores: np.ndarray,
    model_keywords: Sequence[str],
    counts: SpanCounts,
    version: int = LATEST_COMBINER_INPUTS,
) -> np.ndarray:
    """[logit of the scorer, span in the model's answer, its rank there (0: absent), the product] and,
    from version 2, [span in the rule's answer, span seen in training, rule's and unseen, logit if unseen].

    An unseen span is where the scorer's corpus evidence is empty and the seq2seq model is weakest (a new
    topic); the extra inputs let the combiner weigh the rule's pick there on its own.
    """
    if version not in COMBINER_INPUTS:
        raise ValueError(f"unknown combiner inputs {version}; this version knows {COMBINER_INPUTS}")
    rank = np.array([model_keywords.index(s) + 1 if s in model_keywords else 0 for s in spans], dtype=float)
    chosen = (rank > 0).astype(float)
    logit = _logit(scores)
    columns = [logit, chosen, rank, chosen * logit]
    if version >= 2:
        rule = np.array([s in question.rule_keywords for s in spans], dtype=float)
        unseen = np.array([counts.candidate[s] == 0 for s in spans], dtype=float)
        columns += [rule, 1 - unseen, rule * unseen, unseen * logit]
    return np.column_stack(columns)


PLURAL_SUFFIX = "들"


def without_plural(span: str, question: ParsedQuestion) -> str:
    """The span without a plural `들` at its end (`학자들` → `학자`), as LABELLING.md writes keywords.

    Only where Kiwi read the `들` as the suffix (XSN) and the rest is itself a candidate span: `1인당`
    and `품목별` keep their suffix, and a name that ends in a noun with `들` (`서태지와 아이들`) stays whole.
    """
    if not span.endswith(PLURAL_SUFFIX) or span[: -len(PLURAL_SUFFIX)] not in question.spans:
        return span
    start = question.text.find(span)
    end = start + len(span)
    suffix_at_end = any(
        t.form == PLURAL_SUFFIX and t.tag == "XSN" and token_end(t) == end for t in tokens_within(question, start, end)
    )
    return span[: -len(PLURAL_SUFFIX)] if suffix_at_end else span


# Kiwi tags of a name of several words, maybe numbered: `빈센트 반 고흐`, `보이저 2호`, `아폴로 11호`.
_NAME_TAGS = frozenset({"NNP", "SN", "NNB"})
_WORD_TAGS = frozenset({"NNG", "NNP", "NNB", "NR", "SN", "SL"})
# 통합(되다), 유명(하다): the noun before it is the question's predicate
_PREDICATE_SUFFIXES = VERBAL_SUFFIX_TAGS | {"XSA"}


def _words_of(span: str, question: ParsedQuestion) -> tuple[list[Token], int]:
    """The span's word morphemes by Kiwi's tags (particles and endings left out), and where it ends."""
    start = question.text.find(span)
    end = start + len(span)
    return [t for t in tokens_within(question, start, end) if t.tag in _WORD_TAGS], end


def is_name_phrase(span: str, question: ParsedQuestion) -> bool:
    """Whether a span of several words is a name by Kiwi's tags: a proper noun first, then proper nouns
    or a number with its unit (`보이저 2호`), no common noun (`체르노빌 원전` is not).

    LABELLING.md keeps named entities whole, without their pieces. Learned keep rates cannot say so on a
    new topic: 130 of the 198 such spans of the general questions of data/train.tsv are a keyword, but its
    customs questions hold 23 (3 kept), so a model trained on those has hardly seen one kept.
    """
    if " " not in span:
        return False
    words, _ = _words_of(span, question)
    return bool(words) and words[0].tag == "NNP" and all(t.tag in _NAME_TAGS for t in words)


def is_proper_noun_phrase(span: str, question: ParsedQuestion) -> bool:
    """Whether a span of several words begins with a Hangul proper noun (`사라예보 사건`, `지리산 국립공원`,
    `허블 우주 망원경`) and its last noun is not the question's predicate (`마산세관 통합됐나요`).

    Events, places and works named after a proper noun are labelled whole; on a topic training never saw,
    the scores prefer the proper noun alone, whose keep rate is known (benchmarks/README.md, "Transfer",
    seventh round: +2.2 points on unseen topics, +1.0 customs→general).
    """
    if " " not in span:
        return False
    words, end = _words_of(span, question)
    if not words or words[0].tag != "NNP" or not "가" <= words[0].form[0] <= "힣":
        return False
    following = token_after(question, end)
    return not (following is not None and following.start == end and following.tag in _PREDICATE_SUFFIXES)


def domain_verbal_nouns(question: ParsedQuestion) -> list[str]:
    """The question's verbal nouns that LABELLING.md keeps (`반포한` → `반포`), each a candidate span.

    Procedural ones (`확인`, `진행`) and the rule's fillers are left out. The bundled data labels the kept
    kind in about half of its places only, so a selector fitted on it cannot learn the convention; it
    is added after the choice instead (benchmarks/README.md, "Transfer").
    """
    nouns = kept_verbal_nouns(question.text, question.tokens)
    return [n for n in nouns if n in question.spans and n not in STOPWORDS]


# a year with its month (and day), a month with its day, a year before the common era
_DATE = re.compile(r"(?:기원전 )?[0-9]+년 [0-9]+월(?: [0-9]+일)?|[0-9]+월 [0-9]+일|기원전 [0-9]+년")


def is_date(span: str) -> bool:
    """Whether the span is a date of several words (`1944년 6월 6일`, `1789년 8월`, `기원전 27년`).

    A date is one keyword in data/train.tsv (15 of its 17 dates of several words; in the other two the
    month names an event, `2월 혁명`), but its pieces are common candidates with keep rates of
    their own, so the scores take `1944년`, `6월` and `6일` apart.
    """
    return _DATE.fullmatch(span) is not None


def _taken_whole(span: str, question: ParsedQuestion) -> bool:
    return is_name_phrase(span, question) or is_proper_noun_phrase(span, question) or is_date(span)


def choose(
    question: ParsedQuestion,
    scored: Sequence[tuple[str, float]],
    threshold: float,
    drop_nested: bool,
    limit: int,
    add_verbal_nouns: bool = False,
) -> list[str]:
    """Spans above the threshold, best first, in question order, each without a plural `들`; the best span
    when none is above it, since every question holds at least one keyword (LABELLING.md: 1 to 6).

    With `drop_nested`, a span is skipped when every place it occurs lies inside kept spans, one or several
    (`보이저` beside `보이저 2호`; `스티브` beside `스티브 잡스` and `스티브 워즈니악`), or when it holds a kept
    span at every place that one occurs; a span that also stands on its own is kept. A name of
    several words or a date above the threshold (`_taken_whole`) comes before every other span, the longest
    first, so that it is kept whole rather than its pieces (`빈센트 반 고흐`, not `빈센트 반` and `고흐`). With
    `add_verbal_nouns`, the question's `domain_verbal_nouns` are kept too, unless inside a kept span.
    """
    kept: list[str] = []
    text = question.text
    ranked = sorted(scored, key=lambda pair: -pair[1])
    above = [pair for pair in ranked if pair[1] > threshold]
    wholes = sorted((pair for pair in above if _taken_whole(pair[0], question)), key=lambda pair: -len(pair[0]))
    for span, _ in wholes + [pair for pair in above if pair not in wholes]:
        span = without_plural(span, question)
        if span in kept:
            continue
        if drop_nested and (covered_by(span, kept, text) or any(nested_in(other, span, text) for other in kept)):
            continue
        kept.append(span)
    if add_verbal_nouns:
        kept += [n for n in domain_verbal_nouns(question) if n not in kept and not covered_by(n, kept, text)]
    if not kept and ranked:
        kept.append(without_plural(ranked[0][0], question))
    kept.sort(key=question.text.find)
    return kept[:limit]


class ScorerBag:
    """Span scorers fitted on bootstrap samples of the training questions; their mean probability.

    One scorer's choice moves with every retraining of the seq2seq model, and with the CPU the model was
    trained on; the mean of several is steadier (benchmarks/README.md, "Transfer").
    """

    def __init__(self, members: Sequence[object]) -> None:
        self.members = list(members)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return np.mean([member.predict_proba(rows) for member in self.members], axis=0)


@dataclass
class SpanSelector:
    counts: SpanCounts
    scorer: object  # ScorerBag, or one HistGradientBoostingClassifier (selectors stored before bagging)
    combiner: tuple[list[float], float] | None  # (weights, bias) over _combiner_inputs; None: scorer alone
    threshold: float
    drop_nested: bool
    report: dict
    feature_set: int = LATEST_FEATURE_SET  # what the scorer was fitted on; stored with it
    combiner_inputs: int = LATEST_COMBINER_INPUTS  # what the combiner was fitted on; stored with it
    verbal_nouns: bool = False  # add the domain verbal nouns after the choice (fitted since 2026-12-06)

    def span_probabilities(
        self, parsed: Sequence[ParsedQuestion], model_keywords: Sequence[Sequence[str]]
    ) -> list[list[tuple[str, float]]]:
        """Every candidate span of every question with its probability of being a keyword.

        One scorer call for all the questions' spans: a call costs far more than a row.
        """
        featured = [span_features(question, self.counts, feature_set=self.feature_set) for question in parsed]
        rows = [row for _, question_rows in featured for row in question_rows]
        all_scores = self.scorer.predict_proba(np.asarray(rows))[:, 1] if rows else np.zeros(0)
        results: list[list[tuple[str, float]]] = []
        start = 0
        for question, (spans, _), answer in zip(parsed, featured, model_keywords, strict=True):
            scores = all_scores[start : start + len(spans)]
            start += len(spans)
            if spans and self.combiner is not None:
                weights, bias = self.combiner
                inputs = _combiner_inputs(question, spans, scores, list(answer), self.counts, self.combiner_inputs)
                z = inputs @ np.asarray(weights) + bias
                scores = 1 / (1 + np.exp(-z))
            results.append(list(zip(spans, scores.tolist(), strict=True)))
        return results

    def select(
        self, parsed: Sequence[ParsedQuestion], model_keywords: Sequence[Sequence[str]], limit: int
    ) -> list[list[str]]:
        return [
            choose(question, scored, self.threshold, self.drop_nested, limit, self.verbal_nouns)
            for question, scored in zip(parsed, self.span_probabilities(parsed, model_keywords), strict=True)
        ]

    def save(self, model_dir: str | Path) -> None:
        import skops.io

        model_dir = Path(model_dir)
        members = self.scorer.members if isinstance(self.scorer, ScorerBag) else self.scorer
        write_atomic(model_dir / SCORER_FILE, skops.io.dumps(members))
        settings = {
            "format_version": FORMAT_VERSION,
            "threshold": self.threshold,
            "drop_nested": self.drop_nested,
            "feature_set": self.feature_set,
            "combiner_inputs": self.combiner_inputs,
            "verbal_nouns": self.verbal_nouns,
            "combiner": None if self.combiner is None else {"weights": self.combiner[0], "bias": self.combiner[1]},
            "report": self.report,
            "counts": self.counts.to_dict(),
        }
        write_atomic(model_dir / SETTINGS_FILE, json.dumps(settings, ensure_ascii=False))
        integrity.record(model_dir, [SCORER_FILE, SETTINGS_FILE])

    @classmethod
    def load(cls, model_dir: str | Path) -> SpanSelector | None:
        """The directory's selector, or None when it has none (trained without, or before it existed)."""
        model_dir = Path(model_dir)
        if not (model_dir / SETTINGS_FILE).is_file():
            return None
        import skops.io  # here: importing it takes seconds, and a directory without a selector needs none

        stored = json.loads((model_dir / SETTINGS_FILE).read_text())
        if stored.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{model_dir / SETTINGS_FILE}: format {stored.get('format_version')}, expected 1")
        from sklearn.ensemble import HistGradientBoostingClassifier

        stored_scorer = skops.io.load(model_dir / SCORER_FILE, trusted=TRUSTED_TYPES)
        members = stored_scorer if isinstance(stored_scorer, list) else [stored_scorer]
        if not members:
            raise TypeError(f"{model_dir / SCORER_FILE} holds no scorer")
        for member in members:
            if not isinstance(member, HistGradientBoostingClassifier):
                found = type(member).__name__
                raise TypeError(f"{model_dir / SCORER_FILE} holds a {found}, not a HistGradientBoostingClassifier")
        scorer = ScorerBag(members) if isinstance(stored_scorer, list) else stored_scorer
        combiner = stored["combiner"]
        return cls(
            counts=SpanCounts.from_dict(stored["counts"]),
            scorer=scorer,
            combiner=None if combiner is None else (combiner["weights"], combiner["bias"]),
            threshold=stored["threshold"],
            drop_nested=stored["drop_nested"],
            report=stored.get("report", {}),
            feature_set=stored.get("feature_set", 1),  # selectors stored before feature sets were set 1
            combiner_inputs=stored.get("combiner_inputs", 1),  # ... and before combiner inputs, inputs 1
            verbal_nouns=stored.get("verbal_nouns", False),  # ... and before verbal nouns were added, none
        )


def _fit_scorer(
    parsed: Sequence[ParsedQuestion], golds: Sequence[Sequence[str]], counts: SpanCounts, seed: int
) -> ScorerBag | None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    # each question also as if unseen, so that the scorer learns what to trust on a topic the corpus lacks;
    # rows are built once per question, then drawn per bootstrap sample
    examples = [labelled_examples([q], [g], counts, also_unseen=True) for q, g in zip(parsed, golds, strict=True)]
    if len({label for _, labels in examples for label in labels}) < 2:
        return None
    random = np.random.default_rng(seed)
    members = []
    for member in range(SCORER_BAG):
        drawn = random.integers(0, len(examples), len(examples)) if SCORER_BAG > 1 else range(len(examples))
        features = [row for i in drawn for row in examples[i][0]]
        labels = [label for i in drawn for label in examples[i][1]]
        if len(set(labels)) < 2:
            continue
        # l2_regularization 3: held-out F1 +0.8 and +1.1 points over none on two held-out 10% splits of
        # data/train.tsv (seeds 7 and 11, each with its own seq2seq model); 0.3 and 10 scored lower on both.
        scorer = HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.05, l2_regularization=SCORER_L2, random_state=seed + member
        )
        members.append(scorer.fit(np.asarray(features), np.asarray(labels)))
    return ScorerBag(members) if members else None


def _best_threshold(
    parsed: Sequence[ParsedQuestion], golds: Sequence[Sequence[str]], scored: list[list[tuple[str, float]]], limit: int
) -> tuple[float, float]:
    """(F1, threshold) chosen on these questions, nested spans always dropped and the domain verbal nouns
    added, as the fitted selector will answer.

    The threshold's F1 is averaged with its two neighbours' (`plateau_middle`): on 65–121 validation
    questions the curve is flat at its top and its highest point moves between neighbours with a few
    answers; the middle of the plateau holds better on other questions (benchmarks/README.md, eighth
    round). Only thresholds up to half the best F1 are candidates (`threshold_index`). The F1 returned is
    the chosen threshold's own.

    Nested spans are not a choice of the validation split: LABELLING.md leaves the pieces of a kept phrase
    out, and none of the 8,266 keywords of data/train.tsv lies inside another keyword of its row. When a
    split chose, the 135 validation questions of one `make pipeline` run voted to keep them, against the labels.
    """
    curve = []
    for threshold in THRESHOLDS:
        answers = [
            choose(q, s, threshold, drop_nested=True, limit=limit, add_verbal_nouns=True)
            for q, s in zip(parsed, scored, strict=True)
        ]
        curve.append(score(golds, answers).f1)
    best = threshold_index(curve, THRESHOLDS)
    return curve[best], THRESHOLDS[best]


def threshold_index(curve: Sequence[float], thresholds: Sequence[float]) -> int:
    """The middle of the curve's plateau among the thresholds at most half its best F1 (the lowest if none).

    For calibrated probabilities the F1-optimal threshold is half the best F1 (Lipton et al., 2014,
    "Optimal thresholding of classifiers to maximize F1 measure"); a validation split that asks for more
    is asking a few answers, not the model. On another domain the combiner's probabilities run lower, not
    higher: 65 general validation questions picked 0.50, and their held-out customs questions scored 1.5
    points better at 0.40 (benchmarks/README.md, ninth round). `thresholds` ascend.
    """
    bound = max(curve) / 2
    allowed = sum(1 for threshold in thresholds if threshold <= bound) or 1
    return plateau_middle(curve[:allowed])


def plateau_middle(curve: Sequence[float]) -> int:
    """The index whose value averaged with its two neighbours' is highest (ends count twice); the lower
    index on a tie. A lone spike loses to a broad top."""
    padded = [curve[0], *curve, curve[-1]]
    smoothed = [sum(padded[index : index + 3]) / 3 for index in range(len(curve))]
    return max(range(len(curve)), key=smoothed.__getitem__)


def _out_of_fold_combined(inputs: list[np.ndarray], labels: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each validation question's combined probabilities from a combiner fitted on the other four fifths."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    out_of_fold: list[np.ndarray] = [np.zeros(len(x)) for x in inputs]
    for fit_rows, held_rows in KFold(n_splits=5, shuffle=True, random_state=seed).split(np.arange(len(inputs))):
        x = np.vstack([inputs[i] for i in fit_rows if len(inputs[i])])
        y = np.concatenate([labels[i] for i in fit_rows])
        if len(set(y.tolist())) < 2:
            continue
        model = LogisticRegression(max_iter=1000).fit(x, y)
        for i in held_rows:
            if len(inputs[i]):
                out_of_fold[i] = model.predict_proba(inputs[i])[:, 1]
    return out_of_fold


def _report(
    training_questions: int,
    val: Sequence[ParsedQuestion],
    val_golds: Sequence[Sequence[str]],
    val_model_keywords: Sequence[Sequence[str]],
    selected_f1: float,
) -> dict:
    return {
        "validation_questions": len(val),
        "training_questions": training_questions,
        "val_f1_seq2seq": round(score(val_golds, val_model_keywords).f1, 4),
        "val_f1_selected_cross_validated": round(selected_f1, 4),
        "val_f1_baseline": round(score(val_golds, [list(q.rule_keywords) for q in val]).f1, 4),
    }


def fit(
    train: Sequence[ParsedQuestion],
    train_golds: Sequence[Sequence[str]],
    val: Sequence[ParsedQuestion],
    val_golds: Sequence[Sequence[str]],
    val_model_keywords: Sequence[Sequence[str]],
    limit: int,
    seed: int,
) -> SpanSelector | None:
    """Fit both stages; None when the data cannot support it (one class only, too few questions)."""
    from sklearn.linear_model import LogisticRegression

    counts = SpanCounts.count(train, train_golds)
    scorer = _fit_scorer(train, train_golds, counts, seed)
    if scorer is None or len(val) < MIN_VALIDATION_QUESTIONS:
        log.info("span selector not fitted: %d training and %d validation questions", len(train), len(val))
        return None
    alone = SpanSelector(counts, scorer, None, 0.5, True, {})
    scored = alone.span_probabilities(val, val_model_keywords)
    inputs = [
        _combiner_inputs(question, [s for s, _ in pairs], np.array([p for _, p in pairs]), list(answer), counts)
        for question, pairs, answer in zip(val, scored, val_model_keywords, strict=True)
    ]
    labels = [np.array([s in gold for s, _ in pairs]) for pairs, gold in zip(scored, val_golds, strict=True)]
    stacked, stacked_labels = np.vstack([x for x in inputs if len(x)]), np.concatenate(labels)
    if len(set(stacked_labels.tolist())) < 2:
        return None
    # the combiner's threshold is picked on out-of-fold probabilities, then it is refitted on all rows
    out_of_fold = _out_of_fold_combined(inputs, labels, seed)
    combined = [
        list(zip([s for s, _ in pairs], probabilities.tolist(), strict=True))
        for pairs, probabilities in zip(scored, out_of_fold, strict=True)
    ]
    f1, threshold = _best_threshold(val, val_golds, combined, limit)
    final = LogisticRegression(max_iter=1000).fit(stacked, stacked_labels)
    report = _report(len(train), val, val_golds, val_model_keywords, f1)
    log.info(
        "span selector: validation F1 %.4f cross-validated (seq2seq alone %.4f, Kiwi rule %.4f), threshold %.2f",
        f1,
        report["val_f1_seq2seq"],
        report["val_f1_baseline"],
        threshold,
    )
    weights = [float(w) for w in final.coef_[0]]
    if not all(math.isfinite(w) for w in weights):
        return None
    combiner = (weights, float(final.intercept_[0]))
    return SpanSelector(counts, scorer, combiner, threshold, True, report, verbal_nouns=True)
