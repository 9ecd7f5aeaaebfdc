"""Decoding that can only copy from the question.

Keywords must occur verbatim in the question, so at every step the next token
is restricted to those that keep the current keyword a substring of the
question, plus the ', ' separator and </s> ("substrings" grounding). With
"morphemes" grounding the question's candidate spans (`morphology.candidate_spans`)
take the place of its substrings: the keyword being written must stay a prefix of
a candidate, and may only be closed (separator, </s>) when it is one, so no keyword
starts or ends inside a Kiwi word. Works on the *text* of tokens, so
keywords can be built from tokens the question itself was not split into
(e.g. '면세한도' from '▁면세 한 도는'). Needs a SentencePiece-style vocabulary
('▁' marks a word start), which KoBART and the tiny profile both have.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from transformers import LogitsProcessor

from keyword_extractor.text.keywords import normalize

WORD_START = "▁"
SEPARATOR_CHAR = ","


def token_texts(tokenizer) -> list[str | None] | None:
    """Surface text of every token id ('▁' as a space); None for special tokens.

    Returns None when the vocabulary is not SentencePiece-style, in which case
    grounded decoding cannot be applied.
    """
    vocab_size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(vocab_size)))
    if not any(piece and piece.startswith(WORD_START) for piece in pieces):
        return None
    special = set(tokenizer.all_special_ids)
    return [None if i in special or piece is None else piece.replace(WORD_START, " ") for i, piece in enumerate(pieces)]


class QueryTable:
    """What may follow what inside one question, computed once per question text.

    `after[e]`: the non-separator tokens whose text starts at position `e` of the query, so a keyword
    `partial` may continue with exactly the union of `after[e]` over the positions where `partial`
    ends. `starts`: the non-separator tokens that may begin a keyword.
    """

    def __init__(self, vocabulary: GroundedVocabulary, query: str):
        texts = vocabulary.texts
        candidates = vocabulary.candidates(query)
        self.starts = tuple(t for t in candidates if SEPARATOR_CHAR not in texts[t] and texts[t].lstrip() in query)
        longest = vocabulary.longest_text
        self.after = tuple(
            tuple(
                token_id
                for end in range(start + 1, min(len(query), start + longest) + 1)
                for token_id in vocabulary.by_text.get(query[start:end], ())
            )
            for start in range(len(query) + 1)
        )


class GroundedVocabulary:
    """Token texts indexed by their text, built once per tokenizer.

    Finding the tokens a question can use then means looking up the question's substrings
    (a few hundred) instead of testing every vocabulary entry (30,000 for KoBART) per request.
    """

    def __init__(self, texts: list[str | None]):
        self.texts = texts
        self.by_core: dict[str, list[int]] = {}
        self.by_text: dict[str, list[int]] = {}  # exact text, spaces included; separator tokens left out
        always: list[int] = []  # spaces and separator tokens fit any question
        separators: list[int] = []
        for token_id, text in enumerate(texts):
            if text is None:
                continue
            core = text.strip()
            if SEPARATOR_CHAR in text:
                separators.append(token_id)
            else:
                self.by_text.setdefault(text, []).append(token_id)
            if not core or SEPARATOR_CHAR in text:
                always.append(token_id)
            else:
                self.by_core.setdefault(core, []).append(token_id)
        self.always = tuple(always)
        self.separators = tuple(separators)
        self.longest = max((len(core) for core in self.by_core), default=0)
        self.longest_text = max((len(text) for text in self.by_text), default=0)

    @classmethod
    def from_tokenizer(cls, tokenizer) -> GroundedVocabulary | None:
        texts = token_texts(tokenizer)
        return None if texts is None else cls(texts)

    @lru_cache(maxsize=4096)  # noqa: B019 - one instance per loaded model; repeated questions are common
    def candidates(self, query: str) -> tuple[int, ...]:
        """Tokens that could ever appear for `query` (normalised, with a leading space), in id order."""
        found = set(self.always)
        for start in range(len(query)):
            for end in range(start + 1, min(len(query), start + self.longest) + 1):
                ids = self.by_core.get(query[start:end])
                if ids:
                    found.update(ids)
        return tuple(sorted(found))

    @lru_cache(maxsize=65536)  # noqa: B019 - as above; one entry per (question, keyword prefix)
    def span_continuations(self, spans: tuple[str, ...], partial: str) -> tuple[int, ...]:
        """Non-separator tokens after which the keyword `partial` is still a prefix of one of `spans`.

        A keyword's first token may carry the space that precedes it (' 휴대품'), and tokens that are
        only whitespace may come before a keyword, as in substring grounding.
        """
        found: dict[int, None] = {}
        if not partial and spans:
            found.update(dict.fromkeys(t for t in self.always if not self.texts[t].strip()))
        for span in spans:
            if not span.startswith(partial) or span == partial:
                continue
            rest = span[len(partial) :]
            for end in range(1, min(len(rest), self.longest_text) + 1):
                found.update(dict.fromkeys(self.by_text.get(rest[:end], ())))
                if not partial:
                    found.update(dict.fromkeys(self.by_text.get(" " + rest[:end], ())))
        return tuple(found)

    @lru_cache(maxsize=4096)  # noqa: B019 - as above
    def table(self, query: str) -> QueryTable:
        """The question's position table: built once, then every decoding step only looks it up."""
        return QueryTable(self, query)


class GroundedKeywordsProcessor(LogitsProcessor):
    """Masks every token that would make the keyword being written leave the question.

    What a row may write next depends only on its question, the keyword written so far and
    whether anything was written at all, so the answer is memoised on exactly that: beams and
    steps that share a partial keyword share the work. A row's state is derived from its
    prefix's state and its last token (kept per prefix, so beams that reorder find theirs),
    not re-read from the whole prefix at every step. Rows that already ended are left alone.
    """

    def __init__(
        self,
        vocabulary: GroundedVocabulary,
        queries: Sequence[str],
        num_beams: int,
        eos_token_id: int,
        spans: Sequence[tuple[str, ...]] | None = None,
    ):
        """`spans`: per question, the only keywords it allows (morpheme grounding); None: any substring."""
        if spans is not None and len(spans) != len(queries):
            raise ValueError(f"{len(spans)} candidate lists for {len(queries)} questions")
        self.vocabulary = vocabulary
        self.texts = vocabulary.texts
        self.num_beams = num_beams
        self.eos_token_id = eos_token_id
        self.queries = [" " + normalize(query) for query in queries]
        self.spans = None if spans is None else [tuple(s) for s in spans]
        self._memo: dict[tuple[int, str, bool], list[int]] = {}
        self._states: dict[tuple[int, ...], tuple[bool, str, bool]] = {}  # prefix -> (ended, partial, started)

    def _allowed(self, question: int, partial: str, started: bool) -> list[int]:
        key = (question, partial, started)
        if key in self._memo:
            return self._memo[key]
        if self.spans is not None:
            allowed = self._allowed_in_spans(self.spans[question], partial, started)
            self._memo[key] = allowed
            return allowed
        query = self.queries[question]
        table = self.vocabulary.table(query)
        allowed = [self.eos_token_id] if started else []
        for token_id in self.vocabulary.separators:
            finished, _, rest = self.texts[token_id].partition(SEPARATOR_CHAR)
            done = (partial + finished).strip()
            if done and done in query and SEPARATOR_CHAR not in rest and rest.lstrip() in query:
                allowed.append(token_id)
        if not partial:
            allowed.extend(table.starts)
        else:  # `partial` is left-stripped and not empty: a token may continue it where it occurs
            ends: set[int] = set()
            start = query.find(partial)
            while start >= 0:
                ends.add(start + len(partial))
                start = query.find(partial, start + 1)
            for end in ends:
                allowed.extend(table.after[end])
        self._memo[key] = allowed = allowed or [self.eos_token_id]
        return allowed

    def _allowed_in_spans(self, spans: tuple[str, ...], partial: str, started: bool) -> list[int]:
        """As `_allowed`, with keywords that must be whole candidate spans."""
        complete = not partial or partial in spans
        allowed = [self.eos_token_id] if started and complete else []
        for token_id in self.vocabulary.separators:
            finished, _, rest = self.texts[token_id].partition(SEPARATOR_CHAR)
            done = (partial + finished).strip()
            after = rest.lstrip()
            if done in spans and SEPARATOR_CHAR not in rest and (not after or any(s.startswith(after) for s in spans)):
                allowed.append(token_id)
        allowed.extend(self.vocabulary.span_continuations(spans, partial))
        return allowed or [self.eos_token_id]

    def _text(self, token_id: int) -> str:
        return (self.texts[token_id] if token_id < len(self.texts) else None) or ""

    def _state(self, ids: tuple[int, ...]) -> tuple[bool, str, bool]:
        """(ended, keyword being written, anything written) after `ids` (ids[0]: the decoder start token)."""
        state = self._states.get(ids)
        if state is not None:
            return state
        parent = self._states.get(ids[:-1]) if len(ids) > 1 else None
        if parent is None:  # from scratch: the first step, or a prefix never seen
            written = "".join(self._text(i) for i in ids)
            ended = self.eos_token_id in ids[1:]
            state = (ended, written.rsplit(SEPARATOR_CHAR, 1)[-1].lstrip(), bool(written.strip()))
        else:
            ended, partial, started = parent
            text = self._text(ids[-1])
            if not ended and ids[-1] == self.eos_token_id:
                ended = True
            if SEPARATOR_CHAR in text:
                partial = text.rsplit(SEPARATOR_CHAR, 1)[-1].lstrip()
            else:
                partial = (partial + text).lstrip()
            state = (ended, partial, started or bool(text.strip()))
        self._states[ids] = state
        return state

    def allowed_tokens(self, input_ids: torch.LongTensor) -> list[list[int] | None]:
        """Per row, the tokens it may write next; None for a row that already ended."""
        allowed: list[list[int] | None] = []
        for row, ids in enumerate(input_ids.tolist()):
            ended, partial, started = self._state(tuple(ids))
            allowed.append(None if ended else self._allowed(row // self.num_beams, partial, started))
        return allowed

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows: list[int] = []
        columns: list[int] = []
        ended_rows: list[int] = []
        for row, allowed in enumerate(self.allowed_tokens(input_ids)):
            if allowed is None:  # generate() ignores what an ended row scores
                ended_rows.append(row)
                continue
            rows.extend([row] * len(allowed))
            columns.extend(allowed)
        if not rows:
            return scores
        mask = torch.full_like(scores, float("-inf"))
        mask[rows, columns] = 0.0
        if ended_rows:
            mask[ended_rows] = 0.0
        return scores + mask
