"""Which precision a model runs in: decided on the machine that runs it, when it is loaded.

Training can only know whether int8 is *allowed*: its validation F1 check (`cpu_precision`) stores
`int8_allowed` in the model directory. Whether int8 is *faster* depends on the CPU that serves:
row-wise int8 (`int8_linear`) runs 1.5-4.5x faster than fp32 for KoBART-size layers on an AVX-512
VNNI/AMX Xeon, 10-33x slower on an AVX2-only EPYC (torch's int8 product has no fast kernel there), and
slower than fp32 for the tiny model's small layers on both (benchmarks/README.md, "Precision at load").
So at load the model's own Linear shapes are timed in both precisions, at 1 row (one question's decoder
step) and at the batch size (a merged batch), on this process's threads; int8 is used only when it is
allowed, at least `MIN_SPEEDUP` times as fast at the batch size (throughput under load) and not slower
than `MIN_SINGLE_ROW_SPEEDUP` at 1 row (a lone request's latency). The measurement takes a fraction of
a second and is cached per process for the CPU, the threads and the shapes.

`KEYWORD_QUANTIZE=off|int8` (or the `quantize` argument) forces a precision; `auto` (the default) decides.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from keyword_extractor.common.cpu_info import cpu_label
from keyword_extractor.model.artifact import QUANTIZE_ENV, requested_precision
from keyword_extractor.model.int8_linear import RowwiseInt8Linear

log = logging.getLogger(__name__)

# int8 must beat fp32 by this factor at the batch size: near a tie, fp32 (the precision the model was trained
# and validated in) wins, and a restart on the same machine does not flip between precisions. At 1 row it
# must not be slower beyond timing noise (KoBART shape on an AMX Xeon: 1.16x at 1 row, 3.6x at 32 rows).
MIN_SPEEDUP = 1.1
MIN_SINGLE_ROW_SPEEDUP = 0.95
CALIBRATION_BUDGET_S = 0.5  # timing rounds stop once this is spent (after MIN_ROUNDS)
MIN_ROUNDS, MAX_ROUNDS = 3, 9

# seconds one call of `layer` on `hidden` takes; tests pass a controllable one
LayerTimer = Callable[[torch.nn.Module, torch.Tensor], float]


@dataclass(frozen=True)
class RowsTiming:
    """The model's Linear layers (output layer aside) at `rows` rows per call, summed, in each precision."""

    rows: int
    fp32_us: float
    int8_us: float
    required: float  # the speedup int8 needs here to be used

    @property
    def speedup(self) -> float:
        return self.fp32_us / self.int8_us if self.int8_us > 0 else math.inf


@dataclass(frozen=True)
class Int8Calibration:
    cpu: str
    threads: int
    timings: tuple[RowsTiming, ...]
    seconds: float

    @property
    def faster(self) -> bool:
        return all(t.speedup >= t.required for t in self.timings)

    def speedups(self) -> str:
        """'0.31x at 1 row, 0.12x at 32 rows'"""
        return ", ".join(f"{t.speedup:.2f}x at {t.rows} row{'s' if t.rows > 1 else ''}" for t in self.timings)

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "timings": [asdict(t) for t in self.timings],  # a list, as JSON reads it back
            "speedups": {str(t.rows): round(t.speedup, 3) for t in self.timings},
        }


@dataclass(frozen=True)
class PrecisionDecision:
    """What was asked, what training allowed, what runs, and why (logged once, shown by /model_info)."""

    requested: str  # auto | off | int8
    int8_allowed: bool
    effective: str  # off (fp32) | int8
    reason: str
    calibration: Int8Calibration | None = None

    def as_dict(self) -> dict:
        return {
            "requested": self.requested,
            "int8_allowed": self.int8_allowed,
            "effective": self.effective,
            "reason": self.reason,
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
        }

    def describe(self) -> str:
        effective = "fp32" if self.effective == "off" else self.effective
        return f"precision {effective} (requested {self.requested}): {self.reason}"


def linear_shapes(model: torch.nn.Module) -> dict[torch.nn.Linear, int]:
    """One Linear per distinct (in, out) shape, with how many layers have it; the output layer is left out.

    The output layer's cost depends on the decoding path (grounded decoding scores only the allowed
    tokens), not on the precision alone, so the transformer's own layers decide.
    """
    output_layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    counts: Counter = Counter()
    examples: dict[tuple[int, int], torch.nn.Linear] = {}
    for module in model.modules():
        if type(module) is torch.nn.Linear and module is not output_layer:
            shape = (module.in_features, module.out_features)
            counts[shape] += 1
            examples.setdefault(shape, module)
    return {examples[shape]: count for shape, count in counts.items()}


def perf_counter_timer(layer: torch.nn.Module, hidden: torch.Tensor) -> float:
    """Seconds per call, over enough calls to last about a millisecond."""
    started = time.perf_counter()
    layer(hidden)
    once = time.perf_counter() - started
    calls = max(1, min(64, int(1e-3 / max(once, 1e-7))))
    started = time.perf_counter()
    for _ in range(calls):
        layer(hidden)
    return (time.perf_counter() - started) / calls


_CACHE: dict[tuple, Int8Calibration] = {}


def calibrate_int8(model: torch.nn.Module, batch_size: int, timer: LayerTimer | None = None) -> Int8Calibration:
    """Time the model's Linear shapes in fp32 and row-wise int8 at 1 row and `batch_size` rows, on this CPU.

    Each shape's time is the fastest of several interleaved rounds (the least disturbed by other work),
    weighted by how many layers have that shape. Cached per process for (CPU, threads, shapes, rows,
    oneDNN on/off) unless a `timer` is given.
    """
    layers = linear_shapes(model)
    rows = sorted({1, max(1, batch_size)})
    key = (
        cpu_label(),
        torch.get_num_threads(),
        torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        tuple(sorted(((layer.in_features, layer.out_features), n) for layer, n in layers.items())),
        tuple(rows),
    )
    if timer is None and key in _CACHE:
        return _CACHE[key]
    measure = timer or perf_counter_timer
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    best: dict[tuple[int, int, str], float] = {}
    with torch.inference_mode():
        pairs = [(layer, RowwiseInt8Linear.from_linear(layer), count) for layer, count in layers.items()]
        inputs = {
            (id(layer), n): torch.randn(n, layer.in_features, generator=generator, dtype=layer.weight.dtype)
            for layer, _, _ in pairs
            for n in rows
        }
        for round_ in range(MAX_ROUNDS):
            for index, (fp32, int8, _) in enumerate(pairs):
                for n in rows:
                    hidden = inputs[(id(fp32), n)]
                    for name, layer in (("fp32", fp32), ("int8", int8)):
                        seconds = measure(layer, hidden)
                        slot = (index, n, name)
                        best[slot] = min(best.get(slot, math.inf), seconds)
            if round_ + 1 >= MIN_ROUNDS and time.perf_counter() - started > CALIBRATION_BUDGET_S:
                break
    timings = tuple(
        RowsTiming(
            rows=n,
            fp32_us=round(1e6 * sum(best[(i, n, "fp32")] * count for i, (_, _, count) in enumerate(pairs)), 1),
            int8_us=round(1e6 * sum(best[(i, n, "int8")] * count for i, (_, _, count) in enumerate(pairs)), 1),
            required=MIN_SINGLE_ROW_SPEEDUP if n == 1 < rows[-1] else MIN_SPEEDUP,
        )
        for n in rows
    )
    calibration = Int8Calibration(
        cpu=key[0], threads=key[1], timings=timings, seconds=round(time.perf_counter() - started, 3)
    )
    if timer is None:
        _CACHE[key] = calibration
    return calibration


def decide_precision(
    model: torch.nn.Module,
    *,
    requested: str,
    int8_allowed: bool,
    device: torch.device,
    batch_size: int,
    timer: LayerTimer | None = None,
) -> PrecisionDecision:
    """fp32 or int8 for this model on this machine; only 'auto' with int8 allowed needs a measurement."""
    requested = requested_precision(requested)
    decision = _decide(model, requested, int8_allowed, device, batch_size, timer)
    log.info("%s", decision.describe())
    return decision


def _decide(
    model: torch.nn.Module,
    requested: str,
    int8_allowed: bool,
    device: torch.device,
    batch_size: int,
    timer: LayerTimer | None,
) -> PrecisionDecision:
    def decided(effective: str, reason: str, calibration: Int8Calibration | None = None) -> PrecisionDecision:
        return PrecisionDecision(requested, int8_allowed, effective, reason, calibration)

    if device.type != "cpu":
        if requested == "int8":
            log.warning("int8 is CPU-only; %s runs fp32", device)
        return decided("off", f"int8 is CPU-only; {device} runs the model's own precision")
    if requested == "off":
        return decided("off", f"forced by {QUANTIZE_ENV}/quantize=off")
    if requested == "int8":
        allowed = "allowed by" if int8_allowed else "NOT allowed by"
        return decided("int8", f"forced by {QUANTIZE_ENV}/quantize=int8 ({allowed} the model's validation F1 check)")
    if not int8_allowed:
        return decided("off", "int8 is not allowed for this model (its validation F1 check, or training's --quantize)")
    calibration = calibrate_int8(model, batch_size, timer)
    where = f"on {calibration.cpu}, {calibration.threads} thread(s): {calibration.speedups()}"
    if calibration.faster:
        return decided("int8", f"int8 is allowed and measured faster than fp32 {where}", calibration)
    needs = ", ".join(f"{t.required}x at {t.rows} row{'s' if t.rows > 1 else ''}" for t in calibration.timings)
    return decided("off", f"int8 is allowed but not fast enough (needs {needs}) {where}", calibration)
