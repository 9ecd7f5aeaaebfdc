"""Morpheme grounding: whatever a model prefers, every keyword it writes is a candidate span of its question.

Checked for the tiny profile's tokenizer and for a KoBART-like one (SentencePiece-style BPE with an 8k
vocabulary, as benchmarks/kobart_shape.py builds offline; the real KoBART tokenizer needs the hub).
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer, BartForConditionalGeneration

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model.artifact import InferenceSettings, write_model_dir
from keyword_extractor.model.grounded import SEPARATOR_CHAR, GroundedKeywordsProcessor, GroundedVocabulary, token_texts
from keyword_extractor.model.tiny import TinySpec, tiny_config, train_tokenizer
from keyword_extractor.text.questions import QuestionAnalyser
from tests.conftest import TEST_TSV, TRAIN_TSV


@pytest.fixture(scope="module")
def analyser() -> QuestionAnalyser:
    return QuestionAnalyser()


@pytest.fixture(scope="module")
def questions() -> list[str]:
    return load_pairs(TEST_TSV)["query"].tolist()


@pytest.fixture(scope="module")
def kobart_like_tokenizer():
    return train_tokenizer(load_pairs(TRAIN_TSV)["query"].tolist(), vocab_size=8000)


def _tokenizers(tiny_base_dir, kobart_like_tokenizer) -> dict:
    return {"tiny": AutoTokenizer.from_pretrained(tiny_base_dir), "kobart-like": kobart_like_tokenizer}


def _decode_random(tokenizer, vocabulary, question, spans, generator, steps=30) -> tuple[list[str], str]:
    """Greedy decoding of random scores under the processor: (completed keywords, the unfinished rest)."""
    texts = vocabulary.texts
    eos = tokenizer.eos_token_id
    processor = GroundedKeywordsProcessor(vocabulary, [question], 1, eos, spans=[spans])
    ids = [eos]
    ended = False
    for _ in range(steps):
        scores = processor(torch.tensor([ids]), torch.randn(1, len(texts), generator=generator))
        next_id = int(scores.argmax())
        ids.append(next_id)
        if next_id == eos:
            ended = True
            break
    written = "".join(texts[i] or "" for i in ids[1:])
    *done, rest = written.split(SEPARATOR_CHAR)
    done = [item.strip() for item in done]
    if ended:
        return [*done, rest.strip()], ""
    return done, rest.lstrip()


@pytest.mark.parametrize("which", ["tiny", "kobart-like"])
def test_random_scores_only_ever_write_candidate_spans(
    which, tiny_base_dir, kobart_like_tokenizer, analyser, questions
):
    tokenizer = _tokenizers(tiny_base_dir, kobart_like_tokenizer)[which]
    vocabulary = GroundedVocabulary(token_texts(tokenizer))
    generator = torch.Generator().manual_seed(3)
    written = 0
    for question, spans in zip(questions[:60], analyser.spans_batch(questions[:60]), strict=True):
        for _ in range(3):
            done, rest = _decode_random(tokenizer, vocabulary, question, spans, generator)
            done = [keyword for keyword in done if keyword]
            assert all(keyword in spans for keyword in done), (question, done, spans)
            assert not rest or any(span.startswith(rest) for span in spans), (question, rest, spans)
            written += len(done)
    assert written > 60  # random scores do write keywords, and every one of them is a whole candidate


def test_a_question_without_candidates_ends_at_once(tiny_base_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_dir)
    vocabulary = GroundedVocabulary(token_texts(tokenizer))
    processor = GroundedKeywordsProcessor(vocabulary, ["왜요?"], 1, tokenizer.eos_token_id, spans=[()])
    assert processor.allowed_tokens(torch.tensor([[tokenizer.eos_token_id]])) == [[tokenizer.eos_token_id]]


def _cut_words(extractor: KeywordExtractor, questions: list[str], spans, grounding: str) -> tuple[list, int]:
    """Keywords of the raw decoded text (before any filtering) that cut a Kiwi word, and how many were written.

    Every keyword but the last is finished (a separator follows it) and must be a candidate; the last one
    may have been cut short by max_new_tokens, and must then still be the beginning of a candidate.
    """
    s = extractor.settings
    texts = extractor.generate_texts(questions, 1, s.max_new_tokens, grounding, spans)
    cut, written = [], 0
    for question, text, allowed in zip(questions, texts, spans, strict=True):
        *finished, last = [item.strip() for item in text.split(SEPARATOR_CHAR)]
        cut += [(question, k) for k in finished if k not in allowed]
        if last and not any(span.startswith(last) for span in allowed):
            cut.append((question, last))
        written += len(finished) + bool(last)
    return cut, written


def test_a_trained_model_cuts_no_kiwi_word_on_the_test_set(talkative_model_dir, analyser, questions):
    """The raw output of decoding, not a filter after it: zero keywords that start or end inside a Kiwi word."""
    extractor = KeywordExtractor(talkative_model_dir)
    assert extractor.settings.grounding == "morphemes"
    spans = analyser.spans_batch(questions)
    cut, written = _cut_words(extractor, questions, spans, "morphemes")
    assert written > len(questions) // 2 and cut == []
    cut, _ = _cut_words(extractor, questions, spans, "substrings")
    assert cut  # the same model under substring grounding does cut words: the test can tell
    predictions = extractor.extract(questions)
    assert all(k in allowed for row, allowed in zip(predictions, spans) for k in row)


def test_the_span_selectors_answers_cut_no_kiwi_word_on_the_test_set(selected_model_dir, analyser, questions):
    extractor = KeywordExtractor(selected_model_dir)
    assert extractor.selector is not None
    spans = analyser.spans_batch(questions)
    predictions = extractor.extract(questions)
    assert sum(map(len, predictions)) > len(questions)
    assert [k for row, allowed in zip(predictions, spans) for k in row if k not in allowed] == []


def test_kobart_like_random_model_writes_only_candidates(kobart_like_tokenizer, analyser, questions, tmp_path):
    tokenizer = kobart_like_tokenizer
    torch.manual_seed(0)
    config = tiny_config(TinySpec(d_model=64, layers=1, heads=2, ffn_dim=128), tokenizer)
    model = BartForConditionalGeneration(config).eval()
    model.generation_config.exponential_decay_length_penalty = (6, 1.5)  # random weights: make </s> likely
    settings = InferenceSettings(filter_ungrounded=False, max_new_tokens=40, base_model="kobart-like")
    extractor = KeywordExtractor(write_model_dir(model, tokenizer, settings, tmp_path / "kobart-like"))
    predictions = extractor.extract(questions[:80])
    spans = analyser.spans_batch(questions[:80])
    assert any(predictions)
    for question, row, allowed in zip(questions, predictions, spans):
        assert all(keyword in allowed for keyword in row), (question, row, allowed)
