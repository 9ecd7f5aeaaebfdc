"""The indexed, memoised grounded decoding allows exactly what the plain definition allows."""

from __future__ import annotations

import random

import torch
from transformers import AutoTokenizer

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.model.grounded import SEPARATOR_CHAR, GroundedKeywordsProcessor, GroundedVocabulary, token_texts
from keyword_extractor.text.keywords import normalize
from tests.conftest import TEST_TSV


def allowed_by_definition(texts: list[str | None], query: str, written_ids: list[int], eos: int) -> set[int]:
    """Every token whose text keeps the keyword being written inside the question (a full vocabulary scan)."""
    query = " " + normalize(query)
    written = "".join(texts[i] or "" for i in written_ids)
    partial = written.rsplit(SEPARATOR_CHAR, 1)[-1].lstrip()
    allowed = {eos} if written.strip() else set()
    for token_id, text in enumerate(texts):
        if text is None:
            continue
        if SEPARATOR_CHAR in text:
            finished, _, rest = text.partition(SEPARATOR_CHAR)
            done = (partial + finished).strip()
            if done and done in query and SEPARATOR_CHAR not in rest and rest.lstrip() in query:
                allowed.add(token_id)
        elif (partial + text).lstrip() in query:
            allowed.add(token_id)
    return allowed or {eos}


def test_indexed_processor_matches_the_definition_on_random_prefixes(tiny_base_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    texts = token_texts(tokenizer)
    vocabulary = GroundedVocabulary(texts)
    eos = tokenizer.eos_token_id
    questions = load_pairs(TEST_TSV)["query"].tolist()[:30]
    rng = random.Random(7)
    checked = 0
    for question in questions:
        processor = GroundedKeywordsProcessor(vocabulary, [question], 1, eos)  # one memo across all prefixes
        for _ in range(8):
            # Grow a prefix the way decoding does: each next token picked among the allowed ones.
            prefix = [eos]  # the decoder start token
            for _step in range(rng.randint(0, 10)):
                options = sorted(allowed_by_definition(texts, question, prefix[1:], eos) - {eos})
                if not options:
                    break
                prefix.append(rng.choice(options))
            masked = processor(torch.tensor([prefix]), torch.zeros(1, len(texts)))
            got = set(torch.nonzero(masked[0] == 0).flatten().tolist())
            assert got == allowed_by_definition(texts, question, prefix[1:], eos), (question, prefix)
            checked += 1
    assert checked == len(questions) * 8


def test_rows_that_already_ended_are_left_unmasked(tiny_base_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    vocabulary = GroundedVocabulary.from_tokenizer(tokenizer)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    processor = GroundedKeywordsProcessor(vocabulary, ["면세한도는?", "관세 환급"], 1, eos)
    scores = torch.randn(2, len(vocabulary.texts))
    masked = processor(torch.tensor([[eos, eos, pad], [eos, 100, 101]]), scores.clone())
    assert torch.equal(masked[0], scores[0])  # ended: generate() ignores it, so no work is spent on it
    assert torch.isinf(masked[1]).sum() > 0


def test_candidates_are_the_tokens_whose_text_occurs_in_the_question(tiny_base_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    texts = token_texts(tokenizer)
    vocabulary = GroundedVocabulary(texts)
    for question in load_pairs(TEST_TSV)["query"].tolist()[:20]:
        query = " " + normalize(question)
        expected = [
            i
            for i, text in enumerate(texts)
            if text is not None and (not text.strip() or SEPARATOR_CHAR in text or text.strip() in query)
        ]
        assert list(vocabulary.candidates(query)) == expected
