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


class GroundedKeywordsProcessor(LogitsProcessor):
    """Masks every token that would make the keyword being written leave the question."""

    def __init__(
        self, texts: list[str | None], queries: Sequence[str], num_beams: int, eos_token_id: int, vocab_size: int
    ):
        self.texts = texts
        self.num_beams = num_beams
        self.eos_token_id = eos_token_id
        self.vocab_size = vocab_size
        self.queries = [" " + normalize(query) for query in queries]
        self.candidates = [self._candidates(query) for query in self.queries]

    def _candidates(self, query: str) -> list[int]:
        """Tokens that could ever appear: pieces of the question, separators and spaces."""
        keep = []
        for token_id, text in enumerate(self.texts):
            if text is None:
                continue
            core = text.strip()
            if not core or SEPARATOR_CHAR in text or core in query:
                keep.append(token_id)
        return keep

    def _allowed(self, row_ids: list[int], query: str, candidates: list[int]) -> list[int]:
        written = "".join(self.texts[i] or "" for i in row_ids if i < len(self.texts))
        partial = written.rsplit(SEPARATOR_CHAR, 1)[-1].lstrip()
        allowed = [self.eos_token_id] if written.strip() else []
        for token_id in candidates:
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
        return allowed or [self.eos_token_id]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids.tolist()):
            question = row // self.num_beams
            allowed = self._allowed(ids, self.queries[question], self.candidates[question])
            mask[row, allowed] = 0.0
        return scores + mask
