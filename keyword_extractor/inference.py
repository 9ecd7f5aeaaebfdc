"""`KeywordExtractor`: the one inference path used by evaluation, bulk prediction and the service."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, BartForConditionalGeneration, LogitsProcessorList

from keyword_extractor.artifact import InferenceSettings
from keyword_extractor.data import EncodingSettings, encode_sources
from keyword_extractor.greedy import GreedyDecoder
from keyword_extractor.grounded import GroundedKeywordsProcessor, GroundedVocabulary
from keyword_extractor.keywords import clean_keywords, is_grounded, parse_keywords

log = logging.getLogger(__name__)
QUANTIZE_MODES = ("", "int8")


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 Linear layers: int8 weights, activations quantised per call, CPU only.

    Decoding one token at a time reads every weight once per step, so on CPU it is bound by memory
    traffic, and int8 weights are a quarter of fp32's.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        # torch >= 2.10 announces the move of torch.ao quantization to torchao; the API still works
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def has_content(keyword: str) -> bool:
    """Punctuation alone ('?', '.') is never a keyword, even though it occurs in the question."""
    return any(ch.isalnum() for ch in keyword)


class KeywordExtractor:
    """Load a model directory once; turn batches of questions into clean keyword lists."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str | None = None,
        half_precision_on_gpu: bool = True,
        quantize: str | None = None,
        greedy_loop: bool = True,
    ):
        """`quantize`: "int8" or "" (off); None means the model directory's setting (off unless stored).

        `greedy_loop`: decode greedy requests with `keyword_extractor.greedy` where the model's generation
        config allows it (the same answers, faster); False always uses `generate`.
        """
        self.model_dir = Path(model_dir)
        self.settings = InferenceSettings.load(self.model_dir)
        self.device = pick_device(device)
        self.quantize = self.settings.quantize if quantize is None else quantize
        if self.quantize not in QUANTIZE_MODES:
            raise ValueError(f"quantize={self.quantize!r}: choose one of {QUANTIZE_MODES}")
        if self.quantize and self.device.type != "cpu":
            log.warning("quantize=%s is CPU-only; ignored on %s", self.quantize, self.device)
            self.quantize = ""
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        dtype = None
        if self.device.type == "cuda" and half_precision_on_gpu:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.model = BartForConditionalGeneration.from_pretrained(self.model_dir, dtype=dtype).to(self.device).eval()
        if self.quantize == "int8":
            self.model = quantize_int8(self.model)
        self.encoding = EncodingSettings.from_tokenizer(
            self.tokenizer, max_source_length=self.settings.max_source_length
        )
        self.vocabulary = GroundedVocabulary.from_tokenizer(self.tokenizer) if self.settings.grounded_decoding else None
        if self.settings.grounded_decoding and self.vocabulary is None:
            log.warning("grounded decoding needs a SentencePiece-style vocabulary; decoding unconstrained")
        self.greedy: GreedyDecoder | None = None
        if greedy_loop:
            self.greedy, why_not = GreedyDecoder.for_model(self.model)
            if self.greedy is None:
                log.info("greedy requests are decoded by generate(): %s", why_not)

    def encode(self, questions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) of a batch, padded to its longest question, on the model's device."""
        sources = encode_sources(self.tokenizer, questions, self.encoding)
        longest = max(len(ids) for ids in sources)
        input_ids = torch.full((len(sources), longest), self.encoding.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, ids in enumerate(sources):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        return input_ids.to(self.device), attention_mask.to(self.device)

    def grounded_processor(self, questions: Sequence[str], num_beams: int = 1) -> GroundedKeywordsProcessor | None:
        if self.vocabulary is None:
            return None
        return GroundedKeywordsProcessor(self.vocabulary, questions, num_beams, self.encoding.eos_token_id)

    def _generate(self, questions: Sequence[str], num_beams: int, max_new_tokens: int, grounded: bool) -> list[str]:
        input_ids, attention_mask = self.encode(questions)
        processor = self.grounded_processor(questions, num_beams) if grounded else None
        with torch.inference_mode():
            if num_beams == 1 and self.greedy is not None:
                output = self.greedy.decode(input_ids, attention_mask, max_new_tokens, processor)
                return self.tokenizer.batch_decode(output, skip_special_tokens=True)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                logits_processor=LogitsProcessorList([processor] if processor else []),
                do_sample=False,
            )
        return self.tokenizer.batch_decode(output, skip_special_tokens=True)

    def extract(
        self,
        questions: Sequence[str],
        *,
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
        max_keywords: int | None = None,
        filter_ungrounded: bool | None = None,
        grounded_decoding: bool | None = None,
        batch_size: int | None = None,
    ) -> list[list[str]]:
        """Keywords per question, in input order; every list is clean, deduplicated and capped."""
        s = self.settings
        num_beams = num_beams or s.num_beams
        max_new_tokens = max_new_tokens or s.max_new_tokens
        max_keywords = max_keywords or s.max_keywords
        filter_ungrounded = s.filter_ungrounded if filter_ungrounded is None else filter_ungrounded
        grounded = s.grounded_decoding if grounded_decoding is None else grounded_decoding
        batch_size = batch_size or s.batch_size
        order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
        results: list[list[str]] = [[] for _ in questions]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            texts = self._generate([questions[i] for i in chunk], num_beams, max_new_tokens, grounded)
            for index, text in zip(chunk, texts):
                keywords = [k for k in clean_keywords(parse_keywords(text)) if has_content(k)]
                if filter_ungrounded:
                    keywords = [k for k in keywords if is_grounded(k, questions[index])]
                results[index] = keywords[:max_keywords]
        return results

    def extract_one(self, question: str, **options) -> list[str]:
        return self.extract([question], **options)[0]
