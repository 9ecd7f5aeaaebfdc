"""Decide per model whether CPU serving may use int8: measured on the validation split, at export.

int8 Linear layers (`keyword_extractor.int8_linear`) make CPU decoding of a KoBART-size model 2.5x
faster (benchmarks/README.md), but what they cost in accuracy depends on the weights, so no default
fits every model. Training therefore decodes its own validation questions twice on CPU, fp32 and
int8, and stores `quantize: "int8"` in the model directory only when int8 loses at most
`max_f1_drop` keyword F1. Evaluation, the registry's
test F1 and the Bento all read that one setting, so what is served is what was scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from keyword_extractor.artifact import InferenceSettings
from keyword_extractor.config import DEFAULT_MAX_F1_DROP
from keyword_extractor.metrics import score

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
    quantize: str  # "int8" or "off" (fp32)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        chosen = "fp32" if self.quantize == "off" else self.quantize
        return (
            f"CPU precision: {chosen} (validation F1 int8 {self.int8_f1:.4f} vs fp32 {self.fp32_f1:.4f} on "
            f"{self.questions} questions; int8 is kept when it loses at most {self.max_f1_drop:.4f})"
        )


def choose_quantize(fp32_f1: float, int8_f1: float, max_f1_drop: float) -> str:
    """'int8' when it loses at most `max_f1_drop` F1 against fp32, else 'off' (stay in fp32)."""
    return "int8" if int8_f1 >= fp32_f1 - max_f1_drop else "off"


def measure_int8(
    model_dir: str | Path,
    queries: Sequence[str],
    golds: Sequence[Sequence[str]],
    max_f1_drop: float = DEFAULT_MAX_F1_DROP,
    max_questions: int = DEFAULT_MAX_QUESTIONS,
) -> Int8Check:
    """Decode the (first `max_questions`) questions with the directory's settings in fp32 and in int8, on CPU."""
    from keyword_extractor.inference import KeywordExtractor

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
        quantize=choose_quantize(f1["off"], f1["int8"], max_f1_drop),
    )


def store_cpu_precision(model_dir: str | Path, quantize: str, check: Int8Check | None = None) -> InferenceSettings:
    """Record the choice (and the measurement behind it) in the directory's settings, atomically."""
    settings = InferenceSettings.load(model_dir)
    settings.quantize = quantize
    settings.extra = {k: v for k, v in settings.extra.items() if k != "int8_check"}
    if check is not None:
        settings.extra["int8_check"] = check.as_dict()
    settings.save(model_dir)
    return settings
