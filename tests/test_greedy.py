"""The greedy loop answers token for token what `generate` answers, under every setting it claims to honour."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import BartForConditionalGeneration

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model import integrity
from keyword_extractor.model.artifact import InferenceSettings
from keyword_extractor.model.greedy import GreedyDecoder, unsupported_settings
from tests.conftest import TEST_TSV

QUESTIONS = load_pairs(TEST_TSV)["query"].tolist()[:40]

# Generation-config changes the loop implements itself; each must leave its answers equal to generate's.
VARIANTS = {
    "as saved": {},
    "suppress tokens": {"suppress_tokens": [5, 6, 7, 8, 9, 10, 11, 12]},
    "suppress at the start": {"begin_suppress_tokens": list(range(3, 40))},
    "length penalty": {"exponential_decay_length_penalty": [3, 1.5]},
    "forced bos": {"forced_bos_token_id": 0, "begin_suppress_tokens": [5, 6]},
    "neutral settings": {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0},
}


@pytest.fixture(scope="module")
def random_model_dir(tiny_base_dir, tmp_path_factory):
    """The tiny base model with large random weights: varied answers that rarely end before the cap."""
    target = tmp_path_factory.mktemp("random") / "model"
    shutil.copytree(tiny_base_dir, target)
    model = BartForConditionalGeneration.from_pretrained(target)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.3)
    model.save_pretrained(target)
    InferenceSettings(max_new_tokens=12, base_model="tiny").save(target)
    return target


def with_generation_settings(model_dir, tmp_path, **settings):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    config = json.loads((target / "generation_config.json").read_text())
    (target / "generation_config.json").write_text(json.dumps({**config, **settings}, indent=2))
    integrity.record(target, ["generation_config.json"])  # changed on purpose
    return target


def both_ways(extractor: KeywordExtractor, questions: list[str], grounded: bool, max_new_tokens: int = 12):
    """Token ids from the greedy loop and from `generate`, same inputs, same processor."""
    assert extractor.greedy is not None
    input_ids, attention_mask = extractor.encode(questions)
    with torch.inference_mode():
        loop = extractor.greedy.decode(
            input_ids, attention_mask, max_new_tokens, extractor.grounded_processor(questions) if grounded else None
        )
        reference = extractor.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            num_beams=1,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            logits_processor=[extractor.grounded_processor(questions)] if grounded else [],
        )
    return loop, reference


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("grounded", [True, False], ids=["grounded", "free"])
def test_loop_equals_generate(random_model_dir, tmp_path, variant, grounded):
    extractor = KeywordExtractor(with_generation_settings(random_model_dir, tmp_path, **VARIANTS[variant]))
    for batch in (QUESTIONS[:16], QUESTIONS[16:17], QUESTIONS[17:40]):
        loop, reference = both_ways(extractor, batch, grounded)
        assert torch.equal(loop, reference)
    loop, _ = both_ways(extractor, QUESTIONS, grounded)
    assert len({tuple(row) for row in loop.tolist()}) > len(QUESTIONS) // 2  # varied answers: a test that can fail


def test_loop_equals_generate_when_rows_end_early(talkative_model_dir):
    """The trained model ends rows with </s> at different steps; ended rows are padded as generate pads them."""
    extractor = KeywordExtractor(talkative_model_dir)
    loop, reference = both_ways(extractor, QUESTIONS, grounded=True, max_new_tokens=20)
    assert torch.equal(loop, reference)
    lengths = {int((row != extractor.greedy.pad_token_id).sum()) for row in loop}
    assert len(lengths) > 1


def test_int8_model_scores_allowed_tokens_only_and_still_equals_generate(random_model_dir):
    extractor = KeywordExtractor(random_model_dir, quantize="int8")
    for grounded in (True, False):
        loop, reference = both_ways(extractor, QUESTIONS[:16], grounded)
        assert torch.equal(loop, reference)


@pytest.mark.parametrize("grounded", [True, False], ids=["grounded", "free"])
def test_int8_answers_are_the_same_alone_as_in_a_batch(random_model_dir, grounded):
    """Activations get a scale per row, not per batch: a question's answer never depends on its neighbours."""
    extractor = KeywordExtractor(random_model_dir, quantize="int8")
    batched, _ = both_ways(extractor, QUESTIONS[:24], grounded)
    for row, question in enumerate(QUESTIONS[:24]):
        alone, _ = both_ways(extractor, [question], grounded)
        written = alone[0][alone[0] != extractor.greedy.pad_token_id]
        assert torch.equal(batched[row][: len(written)], written), question
        assert bool((batched[row][len(written) :] == extractor.greedy.pad_token_id).all()), question


def test_extract_answers_the_same_with_and_without_the_loop(talkative_model_dir):
    fast = KeywordExtractor(talkative_model_dir)
    plain = KeywordExtractor(talkative_model_dir, greedy_loop=False)
    assert fast.greedy is not None and plain.greedy is None
    for batch_size in (1, 16):
        assert fast.extract(QUESTIONS, batch_size=batch_size) == plain.extract(QUESTIONS, batch_size=batch_size)


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"repetition_penalty": 1.3}, "repetition_penalty"),
        ({"no_repeat_ngram_size": 3}, "no_repeat_ngram_size"),
        ({"min_new_tokens": 2}, "min_new_tokens"),
        ({"sequence_bias": [[[5], 2.0]]}, "sequence_bias"),
    ],
)
def test_settings_the_loop_does_not_implement_leave_decoding_to_generate(random_model_dir, tmp_path, settings, named):
    model_dir = with_generation_settings(random_model_dir, tmp_path, **settings)
    extractor = KeywordExtractor(model_dir)
    assert extractor.greedy is None
    assert named in unsupported_settings(extractor.model.generation_config)
    _, why = GreedyDecoder.for_model(extractor.model)
    assert named in why
    assert extractor.extract(QUESTIONS[:4], grounding="off", filter_ungrounded=False) == KeywordExtractor(
        model_dir, greedy_loop=False
    ).extract(QUESTIONS[:4], grounding="off", filter_ungrounded=False)


def test_settings_without_effect_on_greedy_answers_are_not_reported(random_model_dir):
    config = KeywordExtractor(random_model_dir).model.generation_config
    harmless = {"num_beams": 4, "length_penalty": 2.0, "early_stopping": True, "repetition_penalty": 1.0}
    for name, value in harmless.items():
        setattr(config, name, value)
    assert unsupported_settings(config) == []
