"""Decoding that can only copy from the question.

Keywords must occur verbatim in the question, so at every step the next token
is restricted to those that keep the current keyword a substring of the
question, plus the ', ' separator and </s>. Works on the *text* of tokens, so
keywords can be built from tokens the question itself was not split into
(e.g. '면세한도' from '▁면세 한 도는'). Needs a SentencePiece-style vocabulary
('▁' marks a word start), which KoBART and the tiny profile both have.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from transformers import LogitsProcessor

from keyword_extractor.keywords import normalize

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


class GroundedVocabulary:
    """Token texts indexed by their stripped text, built once per tokenizer.

    Finding the tokens a question can use then means looking up the question's substrings
    (a few hundred) instead of testing every vocabulary entry (30,000 for KoBART) per request.
    """

    def __init__(self, texts: list[str | None]):
        self.texts = texts
        self.by_core: dict[str, list[int]] = {}
        always: list[int] = []  # spaces and separator tokens fit any question
        for token_id, text in enumerate(texts):
            if text is None:
                continue
            core = text.strip()
            if not core or SEPARATOR_CHAR in text:
                always.append(token_id)
            else:
                self.by_core.setdefault(core, []).append(token_id)
        self.always = tuple(always)
        self.longest = max((len(core) for core in self.by_core), default=0)

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


class GroundedKeywordsProcessor(LogitsProcessor):
    """Masks every token that would make the keyword being written leave the question.

    What a row may write next depends only on its question, the keyword written so far and
    whether anything was written at all, so the answer is memoised on exactly that: beams and
    steps that share a partial keyword share the work. Rows that already ended are left alone.
    """

    def __init__(self, vocabulary: GroundedVocabulary, queries: Sequence[str], num_beams: int, eos_token_id: int):
        self.vocabulary = vocabulary
        self.texts = vocabulary.texts
        self.num_beams = num_beams
        self.eos_token_id = eos_token_id
        self.queries = [" " + normalize(query) for query in queries]
        self._memo: dict[tuple[int, str, bool], list[int]] = {}

    def _allowed(self, question: int, partial: str, started: bool) -> list[int]:
        key = (question, partial, started)
        if key in self._memo:
            return self._memo[key]
        query = self.queries[question]
        allowed = [self.eos_token_id] if started else []
        for token_id in self.vocabulary.candidates(query):
            text = self.texts[token_id]
            if SEPARATOR_CHAR in text:
                finished, _, rest = text.partition(SEPARATOR_CHAR)
                done = (partial + finished).strip()
                if done and done in query and SEPARATOR_CHAR not in rest and rest.lstrip() in query:
                    allowed.append(token_id)
                continue
            extended = (partial + text).lstrip()
            if extended in query:
                allowed.append(token_id)
        self._memo[key] = allowed = allowed or [self.eos_token_id]
        return allowed

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows: list[int] = []
        columns: list[int] = []
        open_rows: list[int] = []
        n_texts = len(self.texts)
        for row, ids in enumerate(input_ids.tolist()):
            if self.eos_token_id in ids[1:]:  # ended (ids[0] is the decoder start token): output ignored
                continue
            open_rows.append(row)
            written = "".join(self.texts[i] or "" for i in ids if i < n_texts)
            partial = written.rsplit(SEPARATOR_CHAR, 1)[-1].lstrip()
            allowed = self._allowed(row // self.num_beams, partial, bool(written.strip()))
            rows.extend([row] * len(allowed))
            columns.extend(allowed)
        if not open_rows:
            return scores
        mask = torch.full_like(scores, float("-inf"))
        mask[rows, columns] = 0.0
        still_open = set(open_rows)
        ended = [row for row in range(scores.shape[0]) if row not in still_open]
        if ended:
            mask[ended] = 0.0
        return scores + mask
