"""The model directory handed from training to evaluation, registry and serving.

It is an ordinary Hugging Face directory (config, safetensors weights,
tokenizer, generation config) plus `keyword_extractor.json` with what inference
needs. Writes go to a temporary sibling first, so a crash never leaves a
half-written model where a reader expects a whole one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

from keyword_extractor.common.files import write_atomic

SETTINGS_FILE = "keyword_extractor.json"
MODEL_DIR_ARTIFACT = "model_dir"  # name of the model directory inside a logged MLflow model


Grounding = Literal["morphemes", "substrings", "off"]
GROUNDING_MODES: tuple[str, ...] = get_args(Grounding)
# The precision a model runs in on CPU: "off" (fp32) or "int8". Which one is decided where the model
# runs (keyword_extractor.inference.serving_precision); the directory only says whether int8 is allowed.
Quantize = Literal["off", "int8"]
QUANTIZE_MODES: tuple[str, ...] = get_args(Quantize)
# What a loader or KEYWORD_QUANTIZE may ask for: "auto" decides on this machine, the others force.
PrecisionRequest = Literal["auto", "off", "int8"]
PRECISION_REQUESTS: tuple[str, ...] = get_args(PrecisionRequest)
QUANTIZE_ENV = "KEYWORD_QUANTIZE"


DEFAULT_BATCH_SIZE = 32  # questions per model call, unless a model directory or a caller says otherwise


def requested_precision(quantize: str | None = None) -> str:
    """'auto', 'off' or 'int8': the argument, else KEYWORD_QUANTIZE, else 'auto'."""
    source = "quantize" if quantize is not None else QUANTIZE_ENV
    value = (quantize if quantize is not None else os.environ.get(QUANTIZE_ENV, "")).strip().lower() or "auto"
    if value not in PRECISION_REQUESTS:
        raise ValueError(f"{source}={value!r}: choose one of {', '.join(PRECISION_REQUESTS)}")
    return value


def check_grounding(grounding: str) -> str:
    if grounding not in GROUNDING_MODES:
        raise ValueError(f"grounding={grounding!r}: choose one of {', '.join(GROUNDING_MODES)}")
    return grounding


@dataclass
class InferenceSettings:
    """Decoding and post-processing defaults that travel with the weights."""

    max_source_length: int = 128
    max_new_tokens: int = 48  # fallback; training stores a cap sized from its targets (`max_new_tokens_for`)
    num_beams: int = 1
    # "morphemes": keywords are whole candidate spans of Kiwi words (morphology.candidate_spans);
    # "substrings": any substring of the question; "off": unconstrained decoding.
    grounding: str = "morphemes"
    filter_ungrounded: bool = True  # drop keywords the grounding does not allow (a safety net after decoding)
    max_keywords: int = 6
    separator: str = ", "
    batch_size: int = DEFAULT_BATCH_SIZE
    base_model: str = ""
    # Whether row-wise int8 Linear layers (keyword_extractor.model.int8_linear) may serve this model on CPU: what
    # training can know (its validation F1 check, keyword_extractor.training.cpu_precision). Whether they are used
    # is decided at load, on the machine that runs the model (keyword_extractor.inference.serving_precision).
    int8_allowed: bool = False
    extra: dict = field(default_factory=dict)

    def save(self, model_dir: str | Path) -> None:
        """Write to a temporary file and rename it: a reader sees the old settings or the new, never half."""
        write_atomic(Path(model_dir, SETTINGS_FILE), json.dumps(asdict(self), ensure_ascii=False, indent=2))

    @classmethod
    def load(cls, model_dir: str | Path) -> InferenceSettings:
        path = Path(model_dir, SETTINGS_FILE)
        if not path.is_file():
            raise FileNotFoundError(
                f"{model_dir} is not a keyword model directory: {SETTINGS_FILE} is missing "
                "(export one with `python -m keyword_extractor.training.export`)"
            )
        stored = json.loads(path.read_text())
        if "grounding" not in stored:  # written before morpheme grounding: a bool, True meaning substrings
            stored["grounding"] = "substrings" if stored.get("grounded_decoding", True) else "off"
        if "int8_allowed" not in stored:  # written when training chose the precision: "int8" meant allowed
            stored["int8_allowed"] = stored.get("quantize") == "int8"
        known = {f.name for f in fields(cls)}
        settings = cls(**{k: v for k, v in stored.items() if k in known})
        check_grounding(settings.grounding)
        return settings

    @property
    def grounded_decoding(self) -> bool:
        return self.grounding != "off"


def max_new_tokens_for(
    target_lengths: Sequence[int], cap: int | None = None, quantile: float = 0.999, margin: float = 0.25
) -> int:
    """Generation cap from the tokenised training targets (</s> included): their `quantile` length plus `margin`.

    A model never learned to write more than its longest targets, so a longer cap only lets a row that
    fails to end burn decoder steps (and a batch waits for its slowest row). The margin covers test
    questions a little longer than any seen in training; `cap` bounds the result from above.
    """
    if not target_lengths:
        raise ValueError("no training targets to size max_new_tokens from")
    ordered = sorted(target_lengths)
    longest = ordered[min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))]
    budget = max(longest + 2, math.ceil(longest * (1 + margin)))
    return max(1, min(budget, cap)) if cap else budget


def write_model_dir(model, tokenizer, settings: InferenceSettings, output_dir: str | Path) -> Path:
    """Save weights, tokenizer, generation config and settings atomically, each file's digest in integrity.json."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    try:
        model.generation_config.max_new_tokens = settings.max_new_tokens
        model.generation_config.num_beams = settings.num_beams
        model.generation_config.max_length = None
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        settings.save(staging)
        from keyword_extractor.model import integrity  # it reads SETTINGS_FILE from here

        # the settings stay out: the CPU precision check rewrites them after export
        integrity.record(staging, sorted(p.name for p in staging.iterdir() if p.is_file() and p.name != SETTINGS_FILE))
        if output_dir.exists():
            previous = output_dir.with_name(f".{output_dir.name}-previous")
            shutil.rmtree(previous, ignore_errors=True)
            output_dir.replace(previous)
            staging.replace(output_dir)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            staging.replace(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
