"""Keyword parsing, encoding, the dynamic-padding collator and length-grouped batching."""

from __future__ import annotations

import unicodedata

import pytest
import torch

from keyword_extractor.data.augment import substitute_keywords
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.keywords import clean_keywords, format_keywords, is_grounded, normalize, parse_keywords
from keyword_extractor.training.datamodule import (
    LABEL_PAD_ID,
    DynamicPaddingCollator,
    EncodingSettings,
    LengthGroupedSampler,
    encode_sources,
    encode_targets,
    target_text,
)
from tests.conftest import TRAIN_TSV


def test_parse_keywords_splits_on_comma_and_strips():
    assert parse_keywords("여행자 휴대품, 면세한도") == ["여행자 휴대품", "면세한도"]
    assert parse_keywords("a,b ,  c") == ["a", "b", "c"]


def test_parse_keywords_keeps_empty_items_for_validation():
    assert parse_keywords("a, , b") == ["a", "", "b"]
    assert parse_keywords("   ") == []


def test_clean_keywords_normalises_dedupes_and_caps():
    decomposed = unicodedata.normalize("NFD", "면세한도")
    assert decomposed != "면세한도"
    assert clean_keywords([decomposed, "면세한도", " 관세  환급 ", ""]) == ["면세한도", "관세 환급"]
    assert clean_keywords(["a", "b", "c"], max_keywords=2) == ["a", "b"]


def test_format_and_target_text_round_trip():
    assert format_keywords(["세종대왕", "훈민정음"]) == "세종대왕, 훈민정음"
    assert target_text("세종대왕,훈민정음 , 세종대왕") == "세종대왕, 훈민정음"


def test_grounding_uses_normalised_text():
    assert is_grounded("여행자 휴대품", "여행자  휴대품 면세한도는?")
    assert not is_grounded("면세 한도", "면세한도는?")
    assert normalize("  a \t b ") == "a b"


def test_invisible_and_full_width_characters_are_normalised_away():
    assert normalize("휴대\u200b품\u00ad") == "휴대품" and normalize("면세한도？") == "면세한도?"
    assert normalize("\u200b\u200c\u200d\ufeff") == ""  # only invisible: blank
    assert is_grounded("휴대품", "여행자 휴\u2060대품은?") and normalize("한\u3000도") == "한 도"


@pytest.fixture(scope="module")
def tokenizer(tiny_base_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_dir)


def test_sources_are_wrapped_in_bos_eos_and_truncated(tokenizer):
    settings = EncodingSettings.from_tokenizer(tokenizer, max_source_length=6)
    short, long = encode_sources(tokenizer, ["관세", "관세 환급 신청은 어디에서 하나요 오늘 내일"], settings)
    assert short[0] == tokenizer.bos_token_id and short[-1] == tokenizer.eos_token_id
    assert len(long) == 6 and long[0] == tokenizer.bos_token_id and long[-1] == tokenizer.eos_token_id


def test_targets_end_with_eos_even_when_truncated(tokenizer):
    settings = EncodingSettings.from_tokenizer(tokenizer, max_target_length=4)
    (short, long) = encode_targets(tokenizer, ["관세", "관세, 환급, 신청, 세관, 통관"], settings)
    assert short[-1] == tokenizer.eos_token_id and tokenizer.bos_token_id not in short
    assert len(long) == 4 and long[-1] == tokenizer.eos_token_id


def test_collator_pads_to_longest_row_not_to_a_fixed_length():
    collate = DynamicPaddingCollator(pad_token_id=2)
    batch = collate(
        [
            {"input_ids": [0, 10, 11, 1], "labels": [10, 1]},
            {"input_ids": [0, 12, 1], "labels": [12, 13, 14, 1]},
        ]
    )
    assert batch["input_ids"].tolist() == [[0, 10, 11, 1], [0, 12, 1, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[10, 1, LABEL_PAD_ID, LABEL_PAD_ID], [12, 13, 14, 1]]
    assert batch["input_ids"].dtype == torch.long


def test_collator_fixed_length_mode_reproduces_pad_to_512():
    batch = DynamicPaddingCollator(pad_token_id=2, pad_to=512)([{"input_ids": [0, 1], "labels": [1]}])
    assert batch["input_ids"].shape == (1, 512) and batch["labels"].shape == (1, 512)


def test_length_grouped_sampler_covers_every_row_once_and_groups_lengths():
    lengths = [(i * 37) % 50 + 1 for i in range(400)]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3, group_factor=10)
    order = list(sampler)
    assert sorted(order) == list(range(400))
    batches = [order[i : i + 8] for i in range(0, 400, 8)]
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches of this data spread over ~40
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_length_grouped_sampler_shards_batches_across_ranks():
    lengths = list(range(1, 101))
    shards = [list(LengthGroupedSampler(lengths, 5, seed=0, num_replicas=2, rank=r)) for r in (0, 1)]
    assert not set(shards[0]) & set(shards[1])
    assert len(shards[0]) == len(shards[1]) == 50


def test_comma_inside_a_number_is_not_a_separator():
    assert parse_keywords("면세한도, 1,200달러, 11,000m") == ["면세한도", "1,200달러", "11,000m"]
    assert target_text("면세한도,1,200달러") == "면세한도, 1,200달러"


def test_keyword_substitution_keeps_every_keyword_in_its_question_and_the_input_untouched():
    frame = load_pairs(TRAIN_TSV).head(200)
    before = frame.copy()
    extra = substitute_keywords(frame, copies=2, seed=5)
    assert frame.equals(before)
    assert 200 <= len(extra) <= 400  # rows where nothing could be swapped are left out
    originals = set(zip(frame["query"], frame["keyword"]))
    for query, cell in zip(extra["query"], extra["keyword"]):
        keywords = clean_keywords(parse_keywords(cell))
        assert keywords and all(keyword in query for keyword in keywords), (query, cell)
        assert (query, cell) not in originals
    assert extra.equals(substitute_keywords(frame, copies=2, seed=5))  # seeded: the same rows every run
    assert substitute_keywords(frame, copies=0).empty
