"""`KeywordExtractor`: the one inference path used by evaluation, bulk prediction and the service."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoTokenizer, BartForConditionalGeneration, LogitsProcessorList, PreTrainedModel

from keyword_extractor.inference.serving_precision import (
    LayerTimer,
    PrecisionDecision,
    decide_precision,
    requested_precision,
)
from keyword_extractor.model.artifact import InferenceSettings, check_grounding
from keyword_extractor.model.encoding import EncodingSettings, encode_sources
from keyword_extractor.model.greedy import GreedyDecoder
from keyword_extractor.model.grounded import GroundedKeywordsProcessor, GroundedVocabulary
from keyword_extractor.model.int8_linear import quantize_int8
from keyword_extractor.model.integrity import check_model_dir
from keyword_extractor.model.span_selector import SpanSelector
from keyword_extractor.text.keywords import clean_keywords, is_grounded, parse_keywords
from keyword_extractor.text.questions import QuestionAnalyser

log = logging.getLogger(__name__)

MMAP_OPTION = "disable_mmap"  # from_pretrained's switch to read the weights file instead of mapping it


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def has_content(keyword: str) -> bool:
    """Punctuation alone ('?', '.') is never a keyword, even though it occurs in the question."""
    return any(ch.isalnum() for ch in keyword)


def decoded_keywords(
    text: str, question: str, spans: Sequence[str] | None, filter_ungrounded: bool, limit: int
) -> list[str]:
    """A decoded answer's keywords: clean, with content, grounded, capped.

    With the question's candidate `spans` (morpheme grounding) only those stay: the last keyword can be
    unfinished, cut by max_new_tokens. Otherwise `filter_ungrounded` drops keywords not in the question.
    """
    keywords = [k for k in clean_keywords(parse_keywords(text)) if has_content(k)]
    if spans is not None:
        keywords = [k for k in keywords if k in spans]
    elif filter_ungrounded:
        keywords = [k for k in keywords if is_grounded(k, question)]
    return keywords[:limit]


class KeywordExtractor:
    """Load a model directory once; turn batches of questions into clean keyword lists."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str | None = None,
        half_precision_on_gpu: bool = False,
        quantize: str | None = None,
        greedy_loop: bool = True,
        precision_timer: LayerTimer | None = None,
    ):
        """`quantize`: "auto", "int8" or "off"; None means KEYWORD_QUANTIZE, else "auto": int8 where the model
        directory allows it and this CPU runs it faster than fp32 (`serving_precision`; the decision and its
        figures are `self.precision`). `precision_timer` replaces the clock of that measurement.

        `half_precision_on_gpu`: bf16 (fp16 without bf16) weights on CUDA. Off by default: on an H200 it
        decoded KoBART-size models no faster than fp32 (0.73–0.88×) and changed 2–6 of 297 answers
        (benchmarks/README.md, "GPU check").

        `greedy_loop`: decode greedy requests with `keyword_extractor.model.greedy` where the model's generation
        config allows it (the same answers, faster); False always uses `generate`.
        """
        self.model_dir = check_model_dir(model_dir)  # one line naming a missing or damaged file, before loading
        settings = InferenceSettings.load(self.model_dir)
        device_ = pick_device(device)
        requested = requested_precision(quantize)
        wants_int8 = requested == "int8" or (requested == "auto" and settings.int8_allowed)
        may_use_int8 = device_.type == "cpu" and wants_int8
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        dtype = None
        if device_.type == "cuda" and half_precision_on_gpu:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        load_options = {"dtype": dtype}
        if may_use_int8 and MMAP_OPTION in inspect.signature(PreTrainedModel.from_pretrained).parameters:
            # int8 replaces every Linear weight: read into memory, the fp32 copies are freed after it, whereas
            # pages of a memory-mapped weights file stay resident while any tensor (an embedding) maps it
            load_options[MMAP_OPTION] = True
        model = BartForConditionalGeneration.from_pretrained(self.model_dir, **load_options).to(device_).eval()
        self.precision: PrecisionDecision = decide_precision(
            model,
            requested=requested,
            int8_allowed=settings.int8_allowed,
            device=device_,
            batch_size=settings.batch_size,
            timer=precision_timer,
        )
        if self.precision.effective == "int8":
            model = quantize_int8(model)
        self._assemble(model, tokenizer, settings, device_, greedy_loop)
        self.selector = SpanSelector.load(self.model_dir)

    @classmethod
    def from_loaded(
        cls, model: PreTrainedModel, tokenizer, settings: InferenceSettings, greedy_loop: bool = True
    ) -> KeywordExtractor:
        """Wrap a model already in memory (training's validation F1) without saving it first."""
        extractor = cls.__new__(cls)
        extractor.model_dir = None
        extractor._assemble(model, tokenizer, settings, next(model.parameters()).device, greedy_loop)
        extractor.precision = PrecisionDecision("off", False, "off", "an in-memory model is decoded as it is")
        extractor.selector = None
        return extractor

    @property
    def quantize(self) -> str:
        """The precision that runs: "int8" or "off" (fp32), as `self.precision` decided it."""
        return self.precision.effective

    def _assemble(
        self, model: PreTrainedModel, tokenizer, settings: InferenceSettings, device: torch.device, greedy_loop: bool
    ) -> None:
        self.settings = settings
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.encoding = EncodingSettings.from_tokenizer(tokenizer, max_source_length=settings.max_source_length)
        self.vocabulary = GroundedVocabulary.from_tokenizer(tokenizer)
        if settings.grounded_decoding and self.vocabulary is None:
            log.warning("grounded decoding needs a SentencePiece-style vocabulary; decoding unconstrained")
        self._analyser: QuestionAnalyser | None = None
        self.greedy: GreedyDecoder | None = None
        if greedy_loop:
            self.greedy, why_not = GreedyDecoder.for_model(model)
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

    @property
    def analyser(self) -> QuestionAnalyser:
        """Kiwi, loaded on first use: models served with substring or no grounding never need it."""
        if self._analyser is None:
            self._analyser = QuestionAnalyser()
        return self._analyser

    def candidate_spans(self, questions: Sequence[str]) -> list[tuple[str, ...]]:
        """The keywords morpheme grounding allows for each question."""
        return self.analyser.spans_batch(questions)

    def grounded_processor(
        self,
        questions: Sequence[str],
        num_beams: int = 1,
        grounding: str | None = None,
        spans: Sequence[tuple[str, ...]] | None = None,
    ) -> GroundedKeywordsProcessor | None:
        """The logits processor of `grounding` (default: the model's); None when decoding is unconstrained."""
        grounding = check_grounding(grounding or self.settings.grounding)
        if self.vocabulary is None or grounding == "off":
            return None
        if grounding == "morphemes" and spans is None:
            spans = self.candidate_spans(questions)
        return GroundedKeywordsProcessor(
            self.vocabulary,
            questions,
            num_beams,
            self.encoding.eos_token_id,
            spans=spans if grounding == "morphemes" else None,
        )

    def generate_texts(
        self,
        questions: Sequence[str],
        num_beams: int,
        max_new_tokens: int,
        grounding: str,
        spans: Sequence[tuple[str, ...]] | None = None,
    ) -> list[str]:
        """The decoded text of one batch, before it is split into keywords and cleaned."""
        input_ids, attention_mask = self.encode(questions)
        processor = self.grounded_processor(questions, num_beams, grounding, spans)
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
        grounding: str | None = None,
        batch_size: int | None = None,
        select_spans: bool = True,
    ) -> list[list[str]]:
        """Keywords per question, in input order; every list is clean, deduplicated and capped.

        `grounding` ("morphemes", "substrings", "off"; default the model's) constrains decoding. Under
        "morphemes" every keyword decoding finishes is a candidate span; one that `max_new_tokens` cut short
        is dropped, and the model directory's span selector (if it has one; `select_spans=False` skips it)
        makes the final choice among the candidate spans, the decoded answer among its evidence.
        Otherwise `filter_ungrounded` drops keywords that do not occur in the question.
        """
        s = self.settings
        num_beams = num_beams or s.num_beams
        max_new_tokens = max_new_tokens or s.max_new_tokens
        max_keywords = max_keywords or s.max_keywords
        filter_ungrounded = s.filter_ungrounded if filter_ungrounded is None else filter_ungrounded
        grounding = check_grounding(grounding or s.grounding)
        batch_size = batch_size or s.batch_size
        parsed = self.analyser.parse_batch(questions) if grounding == "morphemes" else None
        spans = None if parsed is None else [question.spans for question in parsed]
        order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
        results: list[list[str]] = [[] for _ in questions]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            chunk_spans = None if spans is None else [spans[i] for i in chunk]
            texts = self.generate_texts(
                [questions[i] for i in chunk], num_beams, max_new_tokens, grounding, chunk_spans
            )
            for index, text in zip(chunk, texts):
                question_spans = None if spans is None else spans[index]
                results[index] = decoded_keywords(
                    text, questions[index], question_spans, filter_ungrounded, max_keywords
                )
        if parsed is not None and select_spans and self.selector is not None:
            results = self.selector.select(parsed, results, max_keywords)
        return results

    def extract_one(self, question: str, **options) -> list[str]:
        return self.extract([question], **options)[0]
