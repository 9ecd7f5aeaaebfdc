"""How text becomes model input and output ids: shared by training, export and inference.

Kept apart from `training.datamodule` (datasets, samplers, the Lightning data module) so that serving and evaluation
load no PyTorch Lightning: it adds about 2 s to every process that only decodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keyword_extractor.model.config import default
from keyword_extractor.text.keywords import clean_keywords, format_keywords, parse_keywords

LABEL_PAD_ID = -100  # label positions the loss ignores (padding): PyTorch's cross-entropy default


@dataclass(frozen=True)
class EncodingSettings:
    """Token ids and limits that define how text becomes model input."""

    bos_token_id: int
    eos_token_id: int
    pad_token_id: int
    mask_token_id: int | None
    max_source_length: int = default("max_source_length")
    max_target_length: int = default("max_target_length")

    @classmethod
    def from_tokenizer(
        cls,
        tokenizer,
        max_source_length: int = default("max_source_length"),
        max_target_length: int = default("max_target_length"),
    ) -> EncodingSettings:
        return cls(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            mask_token_id=tokenizer.mask_token_id,
            max_source_length=max_source_length,
            max_target_length=max_target_length,
        )


def encode_sources(tokenizer, texts: Sequence[str], settings: EncodingSettings) -> list[list[int]]:
    """`<s> question </s>`, as KoBART was pre-trained; special tokens added here, not by the tokenizer."""
    pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    body = settings.max_source_length - 2
    return [[settings.bos_token_id, *ids[:body], settings.eos_token_id] for ids in pieces]


def encode_targets(tokenizer, texts: Sequence[str], settings: EncodingSettings) -> list[list[int]]:
    """`keywords </s>`: every target ends with EOS so generation learns to stop."""
    pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    body = settings.max_target_length - 1
    return [[*ids[:body], settings.eos_token_id] for ids in pieces]


def target_text(keyword_cell: str) -> str:
    """The canonical target string for a `keyword` cell."""
    return format_keywords(clean_keywords(parse_keywords(keyword_cell)))
