"""Decide per model whether CPU serving may use int8: measured on the validation split, at export.

What int8 Linear layers (`keyword_extractor.model.int8_linear`) cost in accuracy depends on the weights, so no
default fits every model. Training therefore decodes its own validation questions twice on CPU, fp32 and
int8, and stores `int8_allowed: true` in the model directory only when int8 loses at most `max_f1_drop`
keyword F1. Whether an allowed int8 is also *used* depends on the CPU that serves, which training cannot
know: that is decided at load (`keyword_extractor.inference.serving_precision`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from keyword_extractor.model.artifact import InferenceSettings
from keyword_extractor.model.config import DEFAULT_MAX_F1_DROP
from keyword_extractor.text.metrics import score

log = logging.getLogger(__name__)

DEFAULT_MAX_QUESTIONS = 500  # bounds the check's cost for a KoBART-size model on CPU


@dataclass(frozen=True)
class Int8Check:
    """Validation F1 of both precisions, on the same questions, and what was chosen."""

    fp32_f1: float
    int8_f1: float
    max_f1_drop: float
    questions: int
    seconds: float
    int8_allowed: bool

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        verdict = "allowed" if self.int8_allowed else "not allowed"
        return (
            f"int8 {verdict} on CPU (validation F1 int8 {self.int8_f1:.4f} vs fp32 {self.fp32_f1:.4f} on "
            f"{self.questions} questions; allowed when it loses at most {self.max_f1_drop:.4f}; "
            "used where it is also faster, decided at load)"
        )


def int8_within_drop(fp32_f1: float, int8_f1: float, max_f1_drop: float) -> bool:
    """True when int8 loses at most `max_f1_drop` F1 against fp32."""
    return int8_f1 >= fp32_f1 - max_f1_drop


def measure_int8(
    model_dir: str | Path,
    queries: Sequence[str],
    golds: Sequence[Sequence[str]],
    max_f1_drop: float = DEFAULT_MAX_F1_DROP,
    max_questions: int = DEFAULT_MAX_QUESTIONS,
) -> Int8Check:
    """Decode the (first `max_questions`) questions with the directory's settings in fp32 and in int8, on CPU."""
    from keyword_extractor.inference.extractor import KeywordExtractor

    if not queries:
        raise ValueError("no validation questions to compare int8 with fp32 on")
    queries, golds = list(queries[:max_questions]), list(golds[:max_questions])
    started = time.perf_counter()
    f1 = {}
    for quantize in ("off", "int8"):
        extractor = KeywordExtractor(model_dir, device="cpu", quantize=quantize)
        f1[quantize] = score(golds, extractor.extract(queries)).f1
        del extractor
    return Int8Check(
        fp32_f1=round(f1["off"], 4),
        int8_f1=round(f1["int8"], 4),
        max_f1_drop=max_f1_drop,
        questions=len(queries),
        seconds=round(time.perf_counter() - started, 1),
        int8_allowed=int8_within_drop(f1["off"], f1["int8"], max_f1_drop),
    )


def store_int8_allowed(model_dir: str | Path, allowed: bool, check: Int8Check | None = None) -> InferenceSettings:
    """Record whether int8 is allowed (and the measurement behind it) in the directory's settings, atomically."""
    settings = InferenceSettings.load(model_dir)
    settings.int8_allowed = allowed
    settings.extra = {k: v for k, v in settings.extra.items() if k != "int8_check"}
    if check is not None:
        settings.extra["int8_check"] = check.as_dict()
    settings.save(model_dir)
    return settings
