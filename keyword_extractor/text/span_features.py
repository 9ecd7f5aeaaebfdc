"""What the span selector knows about each candidate span of a question.

A candidate span (`morphology.candidate_spans`) is judged by evidence the seq2seq model cannot learn
from 2,700 examples trained from scratch: how often the same text was a keyword when it was a
candidate in the training questions (`SpanCounts`, the corpus), the Kiwi tags at its edges and around
it (a noun before `을`/`하다` vs a bound noun), its shape (words, length, digits, Latin letters), where
it stands among the other candidates, whether the Kiwi noun-phrase rule would pick it, and (feature
set 2) Kiwi's own score of its morphemes: a log-probability from Kiwi's language-wide model, which
tells a common word from a rare one or a guessed split of an unknown word even when the 2,700 training
questions never saw it; (set 3) whether the rule's measured word lists ask for or refuse joining the
span's words, and whether quotation marks enclose it; (set 4) how cohesive Kiwi's model finds the span's
words and the most cohesive candidate holding it (`cohesion`): a fixed term is kept whole, and its pieces
are not keywords, on topics the training questions never covered too. The seq2seq model's own choice is added by
`span_selector`, which combines the two.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kiwipiepy import Token

from keyword_extractor.text.baselines import HEADS, MODIFIERS, STANDALONE_LEFT, STANDALONE_RIGHT
from keyword_extractor.text.cohesion import cohesion
from keyword_extractor.text.morphology import token_end

PRIOR_WEIGHT = 2.0  # pseudo-counts of the corpus-wide keep rate behind every span's own rate
EDGE_TAGS = ("NNG", "NNP", "NNB", "NR", "NP", "SL", "SN", "XSN", "XR", "XPN", "MM", "MAG", "SH", "SW")
NEXT_TAGS = ("JKS", "JKO", "JKB", "JKG", "JX", "JC", "XSV", "XSA", "VCP", "SF", "SP", "NNB", "NNG", "NNP", "EC", "END")
OPENING_MARKS = frozenset("'\"‘“『「《〈<([«")
CLOSING_MARKS = frozenset("'\"’”』」》〉>)]»")
PREVIOUS_TAGS = ("NNG", "NNP", "JKG", "MM", "VV", "VA", "ETM", "XSV", "START", "JKB", "JX", "SL", "SN", "NNB")
# 1: counts, tags, shape, rule. 2: + min and mean Kiwi morpheme score inside the span (held-out F1 +1.0
# and +0.25 points on two 10% splits of data/train.tsv, seeds 7 and 11, each with its own seq2seq model).
# 3: + the join evidence of the rule's word lists and quotation marks around the span (benchmarks/README.md,
# "Transfer": with the combiner's inputs 2, +2.5 and +1.0 points on the two leave-domain-out directions).
# 4: + the span's cohesion and the highest cohesion of a candidate holding it (benchmarks/README.md, eighth round).
FEATURE_SETS = (1, 2, 3, 4)
LATEST_FEATURE_SET = FEATURE_SETS[-1]


@dataclass(frozen=True)
class ParsedQuestion:
    """One normalised question with its Kiwi tokens, candidate spans and the noun-phrase rule's keywords."""

    text: str
    tokens: tuple[Token, ...]
    spans: tuple[str, ...]
    rule_keywords: tuple[str, ...]


def tokens_within(question: ParsedQuestion, start: int, end: int) -> list[Token]:
    """The question's Kiwi tokens that lie wholly inside text[start:end]."""
    return [t for t in question.tokens if t.start >= start and token_end(t) <= end]


def token_after(question: ParsedQuestion, end: int) -> Token | None:
    """The question's first Kiwi token starting at or after text position `end`; None at the end."""
    return next((t for t in question.tokens if t.start >= end), None)


class SpanCounts:
    """How often each span text was a candidate, and a keyword, in the training questions."""

    def __init__(self, candidate: Counter, keyword: Counter) -> None:
        self.candidate = candidate
        self.keyword = keyword
        total = sum(candidate.values())
        self.prior = sum(keyword.values()) / total if total else 0.0

    @classmethod
    def count(cls, parsed: Sequence[ParsedQuestion], golds: Sequence[Sequence[str]]) -> SpanCounts:
        candidate: Counter = Counter()
        keyword: Counter = Counter()
        for question, gold in zip(parsed, golds, strict=True):
            wanted = set(gold)
            for span in set(question.spans):
                candidate[span] += 1
                keyword[span] += span in wanted
        return cls(candidate, keyword)

    def rate(self, span: str, own: tuple[int, int] = (0, 0)) -> tuple[float, int, int]:
        """(smoothed keep rate, times a candidate, times a keyword), leaving out `own` (candidate, keyword) counts.

        Training rows leave themselves out, so a span seen only in its own question looks as unseen as it
        will in a new question.
        """
        seen = self.candidate[span] - own[0]
        kept = self.keyword[span] - own[1]
        return (kept + PRIOR_WEIGHT * self.prior) / (seen + PRIOR_WEIGHT), seen, kept

    def unseen(self) -> SpanCounts:
        """Counts that have seen no span, with this corpus's keep rate as the prior of every one."""
        empty = SpanCounts(Counter(), Counter())
        empty.prior = self.prior
        return empty

    def to_dict(self) -> dict:
        return {"candidate": dict(self.candidate), "keyword": {k: v for k, v in self.keyword.items() if v}}

    @classmethod
    def from_dict(cls, stored: dict) -> SpanCounts:
        return cls(Counter(stored["candidate"]), Counter(stored["keyword"]))


def _one_hot(tag: str, vocabulary: Sequence[str]) -> list[float]:
    return [float(tag == known) for known in vocabulary] + [float(tag not in vocabulary)]


def labelled_examples(
    parsed: Sequence[ParsedQuestion], golds: Sequence[Sequence[str]], counts: SpanCounts, also_unseen: bool = False
) -> tuple[list[list[float]], list[bool]]:
    """Every candidate span of every training question as (features, is a gold keyword).

    Each question leaves its own counts out. `also_unseen` adds each question a second time as if none of
    its spans had ever been seen: what a question on a topic the training data never covered looks like.
    The span scorer and the label audit both learn from these; a question's rows stay together, in
    question order, because the scorer's early-stopping split depends on the order.
    """
    views = [(counts, True)] + ([(counts.unseen(), False)] if also_unseen else [])
    features: list[list[float]] = []
    labels: list[bool] = []
    for question, gold in zip(parsed, golds, strict=True):
        for view, leave_own_out in views:
            spans, rows = span_features(question, view, gold if leave_own_out else None)
            features.extend(rows)
            labels.extend(span in gold for span in spans)
    return features, labels


def span_features(
    question: ParsedQuestion,
    counts: SpanCounts,
    gold: Sequence[str] | None = None,
    feature_set: int = LATEST_FEATURE_SET,
) -> tuple[list[str], list[list[float]]]:
    """The question's distinct candidate spans and one feature row each.

    `gold`: the question's own keywords when it is a training row, to leave its own counts out.
    `feature_set`: the one the scorer was fitted with (selectors stored before set 2 keep set 1).
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown span feature set {feature_set}; this version knows {FEATURE_SETS}")
    spans = list(dict.fromkeys(question.spans))
    own_gold = set(gold) if gold is not None else set()
    own = 1 if gold is not None else 0
    cohesive = {span: cohesion(span) for span in spans} if feature_set >= 4 else {}
    rows = []
    for span in spans:
        start = question.text.find(span)
        end = start + len(span)
        inside = tokens_within(question, start, end)
        row = _corpus_and_shape(question, spans, span, start, counts, own, own_gold)
        row += _context(question, start, end, inside)
        if feature_set >= 2:
            row.extend(_kiwi_scores(inside))
        if feature_set >= 3:
            row.extend(_join_evidence(span.split(" ")))
            row.extend(_quoting(question.text, start, end))
        if feature_set >= 4:
            row.extend(_cohesion(span, cohesive))
        rows.append(row)
    return spans, rows


def _corpus_and_shape(
    question: ParsedQuestion,
    spans: Sequence[str],
    span: str,
    start: int,
    counts: SpanCounts,
    own: int,
    own_gold: set[str],
) -> list[float]:
    """Keep rates of the span and its words (own counts left out), its shape, the rule's pick around it."""
    rule = question.rule_keywords
    rate, seen, kept = counts.rate(span, (own, int(span in own_gold)))
    pieces = span.split(" ")
    piece_rates = [
        counts.rate(piece, (own if piece in spans else 0, int(piece in own_gold and piece in spans)))[0]
        for piece in pieces
    ]
    return [
        float(span in rule),
        rate,
        math.log1p(seen),
        float(kept > 0),
        float(len(pieces)),
        float(len(span)),
        float("의 " in span),
        start / max(1, len(question.text)),
        min(piece_rates),
        max(piece_rates),
        piece_rates[-1],
        float(any(other != span and span in other for other in rule)),
        float(any(other != span and other in span for other in rule)),
        float(len(spans)),
        float(len(rule)),
        float(bool(re.search(r"[0-9]", span))),
        float(bool(re.search(r"[A-Za-z]", span))),
        float(sum(1 for other in spans if other != span and span in other)),
        float(sum(1 for other in spans if other != span and other in span)),
    ]


def _context(question: ParsedQuestion, start: int, end: int, inside: Sequence[Token]) -> list[float]:
    """Kiwi tags at the span's edges and right around it: a noun before `을`/`하다` vs a bound noun."""
    after = token_after(question, end)
    before = [t for t in question.tokens if token_end(t) <= start]
    return [
        float(len(inside)),
        float(after.start == end if after else True),
        *_one_hot(inside[0].tag if inside else "NONE", EDGE_TAGS),
        *_one_hot(inside[-1].tag if inside else "NONE", EDGE_TAGS),
        *_one_hot(after.tag if after else "END", NEXT_TAGS),
        *_one_hot(before[-1].tag if before else "START", PREVIOUS_TAGS),
    ]


def _kiwi_scores(inside: Sequence[Token]) -> list[float]:
    """[lowest, mean] Kiwi score of the span's morphemes; 0 when it holds none."""
    if not inside:
        return [0.0, 0.0]
    scores = [float(token.score) for token in inside]
    return [min(scores), sum(scores) / len(scores)]


def _join_evidence(pieces: Sequence[str]) -> list[float]:
    """[a listed modifier or head asks for the join, a standalone word refuses it] (baselines' lists).

    The lists hold words measured on the whole training file: evidence about a phrase that still holds
    when the phrase itself was never seen (`우금치 전투`, `유네스코 세계기록유산`), which corpus counts are not.
    """
    if len(pieces) < 2:
        return [0.0, 0.0]
    listed = any(p in MODIFIERS for p in pieces[:-1]) or any(p in HEADS for p in pieces[1:])
    standalone = any(p in STANDALONE_LEFT for p in pieces[:-1]) or any(p in STANDALONE_RIGHT for p in pieces[1:])
    return [float(listed), float(standalone)]


def _quoting(text: str, start: int, end: int) -> list[float]:
    """[an opening mark right before the span, a closing mark right after, both]: titles and names are quoted."""
    opened = start > 0 and text[start - 1] in OPENING_MARKS
    closed = end < len(text) and text[end] in CLOSING_MARKS
    return [float(opened), float(closed), float(opened and closed)]


def _cohesion(span: str, cohesive: dict[str, float]) -> list[float]:
    """[the span's cohesion, the highest of the candidates holding it, 0 when none]: `사라예보` inside a
    cohesive `사라예보 사건` is a piece, not a keyword."""
    holders = [value for other, value in cohesive.items() if other != span and span in other]
    return [cohesive[span], max(holders, default=0.0)]
