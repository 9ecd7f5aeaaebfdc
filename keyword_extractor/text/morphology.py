"""Kiwi words and the keyword candidates built from them: the boundaries a keyword may start and end on.

A *word* is a run of nominal morphemes glued together in the text (`면세한도는` → `면세` + `한도`, the
particle ends the run); a `-` or `·` glued between two nominal morphemes joins them (`한-EU`, `6·25`),
a `/` glued between Latin letters too (`B/L`, `C/O`, `TCP/IP`: one document or protocol, as all ten
such pairs of data/train.tsv are labelled; `수입/수출` stays two words), and so does `%` after a number.
The Kiwi baseline builds its phrases from these words, and a model's keywords are restricted to
*candidate spans* of them (`candidate_spans`): about 98% of the gold keywords of data/train.tsv are one,
at about 8 candidates per question.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from kiwipiepy import Kiwi, Token

# Tags that can be part of a keyword: nouns, bound nouns, numerals, numbers, foreign words, hanja,
# noun suffixes (`-용`, `-산`, `-가`) and prefixes (`재-`, `불-`).
NOMINAL_TAGS = frozenset({"NNG", "NNP", "NNB", "NR", "SN", "SL", "SH", "XSN", "XPN"})
_CONNECTORS = frozenset({"-", "·"})
_LATIN_CONNECTOR = "/"  # only between Latin letters: `B/L` is one term, `수입/수출` two
_PERCENT = frozenset({"%", "\uff05"})  # ASCII and full-width
# Leading morphemes a word may lose (`년`, `-산` alone) and trailing ones (`원소들`, `관세법상`, `27년간`).
_LEADING_TRIM_TAGS = frozenset({"XSN", "NNB"})
_TRAILING_TRIM_TAGS = frozenset({"XSN"})
# Glued morphemes that Kiwi often splits off the front of a compound (`직접/MAG 검증`, `세/MM 번`,
# `우리/NP 나라`): a candidate may also start on them when they touch the word.
_GLUED_PREFIX_TAGS = frozenset({"MAG", "MM", "NP", "IC"})
MAX_SPAN_WORDS = 4
_OF = "의"  # `한국의 탈춤`, `음악의 아버지`: a span may run on across `의` and a space


class SharedKiwi:
    """One Kiwi per process and thread count, behind one lock: a new Kiwi costs about 2.7 s (load, then
    its first analysis), and every model load, evaluation and baseline would otherwise pay it again."""

    def __init__(self, num_workers: int) -> None:
        if num_workers == 0 or num_workers < -1:
            raise ValueError(f"num_workers must be -1 (all cores) or at least 1, got {num_workers}")
        self.kiwi = Kiwi(num_workers=num_workers)
        self.lock = threading.Lock()

    def tokenize(self, texts: Sequence[str]) -> list[list[Token]]:
        """Kiwi's tokens of each text, in one batch call (callers may be on several threads)."""
        with self.lock:
            return list(self.kiwi.tokenize(list(texts))) if texts else []


@functools.cache
def shared_kiwi(num_workers: int = 1) -> SharedKiwi:
    """This process's Kiwi with `num_workers` threads (1 or more, or -1 for all cores)."""
    return SharedKiwi(num_workers)


@dataclass(frozen=True)
class Word:
    """Nominal tokens glued together in the text; `start`/`end` index the normalised question."""

    tokens: tuple[Token, ...]
    start: int
    end: int
    text: str

    @property
    def first_tag(self) -> str:
        return self.tokens[0].tag

    @property
    def last_tag(self) -> str:
        return self.tokens[-1].tag

    def has_tag(self, *tags: str) -> bool:
        return any(token.tag in tags for token in self.tokens)


def token_end(token: Token) -> int:
    return token.start + token.len


def _is_nominal(tokens: Sequence[Token], index: int, run: list[Token]) -> bool:
    """Whether tokens[index] continues (or starts) a word; connectors need nominal tokens on both sides."""
    token = tokens[index]
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    glued_to_next = following is not None and following.start == token_end(token)
    if token.tag in NOMINAL_TAGS and token.len > 0:
        return not (glued_to_next and following.tag.startswith("XSA"))
    glued_to_run = bool(run) and token_end(run[-1]) == token.start
    if glued_to_run and token.form in _CONNECTORS:
        return glued_to_next and following.tag in NOMINAL_TAGS
    if glued_to_run and token.form == _LATIN_CONNECTOR:
        return glued_to_next and run[-1].tag == "SL" and following.tag == "SL"
    return glued_to_run and token.form in _PERCENT and run[-1].tag == "SN"


def words(text: str, tokens: Sequence[Token]) -> list[Word]:
    """Maximal runs of glued nominal tokens, in text order."""
    found: list[Word] = []
    run: list[Token] = []

    def flush() -> None:
        if run:
            start, end = run[0].start, token_end(run[-1])
            found.append(Word(tuple(run), start, end, text[start:end]))
            run.clear()

    for index, token in enumerate(tokens):
        if _is_nominal(tokens, index, run):
            if run and token_end(run[-1]) != token.start:
                flush()
            run.append(token)
        else:
            flush()
    flush()
    return found


def _starts(word: Word, glued_before: Sequence[Token]) -> list[int]:
    """Where a candidate beginning with `word` may start: the word, without leading suffixes, or a glued prefix."""
    starts = [word.start]
    tokens = list(word.tokens)
    while len(tokens) > 1 and tokens[0].tag in _LEADING_TRIM_TAGS:
        tokens.pop(0)
        starts.append(tokens[0].start)
    starts.extend(token.start for token in glued_before if token.tag in _GLUED_PREFIX_TAGS)
    return starts


def _ends(word: Word) -> list[int]:
    """Where a candidate ending with `word` may end: the word, or before trailing suffixes."""
    ends = [word.end]
    tokens = list(word.tokens)
    while len(tokens) > 1 and tokens[-1].tag in _TRAILING_TRIM_TAGS:
        tokens.pop()
        ends.append(token_end(tokens[-1]))
    return ends


def _continues(text: str, left: Word, right: Word) -> bool:
    """Whether a span may run on from `left` to `right`: only whitespace, or `의` and whitespace, between."""
    gap = text[left.end : right.start]
    if gap.startswith(_OF):
        gap = gap[len(_OF) :]
    return bool(gap) and gap.isspace()


def candidate_spans(text: str, tokens: Sequence[Token], max_words: int = MAX_SPAN_WORDS) -> tuple[str, ...]:
    """Every keyword a question allows: 1 to `max_words` neighbouring words, cut only on morpheme boundaries.

    `text` is the normalised question and `tokens` Kiwi's analysis of it. Spans are distinct, in order of
    their first word, each a slice of `text` (so grounded by construction).
    """
    found = words(text, tokens)
    glued_before: dict[int, list[Token]] = {}
    for token in tokens:
        glued_before.setdefault(token_end(token), []).append(token)
    spans: dict[str, None] = {}
    for first, word in enumerate(found):
        starts = _starts(word, glued_before.get(word.start, ()))
        for last in range(first, min(first + max_words, len(found))):
            if last > first and not _continues(text, found[last - 1], found[last]):
                break
            for start in starts:
                for end in _ends(found[last]):
                    if end > start:
                        spans.setdefault(text[start:end].strip())
    return tuple(span for span in spans if span)
