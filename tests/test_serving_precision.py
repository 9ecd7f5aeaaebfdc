"""The precision a model runs in is decided where it is loaded: int8 only when allowed and faster on this CPU."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from transformers import BartConfig, BartForConditionalGeneration

from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.inference.serving_precision import (
    MIN_SINGLE_ROW_SPEEDUP,
    MIN_SPEEDUP,
    calibrate_int8,
    decide_precision,
    linear_shapes,
    requested_precision,
)
from keyword_extractor.model.artifact import SETTINGS_FILE
from keyword_extractor.model.int8_linear import RowwiseInt8Linear

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small_bart() -> BartForConditionalGeneration:
    config = BartConfig(
        vocab_size=64,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=32,
    )
    return BartForConditionalGeneration(config).eval()


def timer(int8_seconds: float | dict[int, float], fp32_seconds: float = 1.0):
    """A controllable clock: every fp32 layer call takes `fp32_seconds`, every int8 one `int8_seconds` (per rows)."""
    calls = []

    def seconds(layer: torch.nn.Module, hidden: torch.Tensor) -> float:
        calls.append((type(layer).__name__, hidden.shape[0]))
        if isinstance(layer, RowwiseInt8Linear):
            return int8_seconds[hidden.shape[0]] if isinstance(int8_seconds, dict) else int8_seconds
        return fp32_seconds

    seconds.calls = calls
    return seconds


def decide(model, allowed: bool, clock, requested: str = "auto", batch_size: int = 16):
    return decide_precision(
        model, requested=requested, int8_allowed=allowed, device=CPU, batch_size=batch_size, timer=clock
    )


def test_allowed_and_faster_runs_int8(small_bart):
    decision = decide(small_bart, allowed=True, clock=timer(0.5))
    assert decision.effective == "int8" and decision.requested == "auto" and decision.int8_allowed
    assert [t.rows for t in decision.calibration.timings] == [1, 16]
    assert all(t.speedup == pytest.approx(2.0) for t in decision.calibration.timings)
    assert "faster" in decision.reason and "2.00x at 16 rows" in decision.reason


def test_allowed_but_slower_runs_fp32(small_bart):
    decision = decide(small_bart, allowed=True, clock=timer(3.0))
    assert decision.effective == "off" and decision.calibration is not None
    assert "not fast enough" in decision.reason and "0.33x at 1 row" in decision.reason


def test_faster_in_batches_but_slower_for_a_lone_question_runs_fp32(small_bart):
    slower_alone = 1.0 / (MIN_SINGLE_ROW_SPEEDUP - 0.1)
    assert decide(small_bart, allowed=True, clock=timer({1: slower_alone, 16: 0.25})).effective == "off"
    just_faster = 1.0 / (MIN_SPEEDUP + 0.05)
    assert decide(small_bart, allowed=True, clock=timer({1: 1.0, 16: just_faster})).effective == "int8"
    near_tie = 1.0 / (MIN_SPEEDUP - 0.05)  # within the margin fp32, the precision it was validated in, stays
    assert decide(small_bart, allowed=True, clock=timer({1: 1.0, 16: near_tie})).effective == "off"


def test_not_allowed_runs_fp32_without_measuring(small_bart):
    clock = timer(0.01)
    decision = decide(small_bart, allowed=False, clock=clock)
    assert decision.effective == "off" and decision.calibration is None and "not allowed" in decision.reason
    assert clock.calls == []


def test_a_forced_precision_wins_and_is_never_measured(small_bart):
    clock = timer(0.01)
    off = decide(small_bart, allowed=True, clock=clock, requested="off")
    forced = decide(small_bart, allowed=False, clock=clock, requested="int8")
    assert (off.effective, forced.effective) == ("off", "int8") and clock.calls == []
    assert "forced" in off.reason and "NOT allowed" in forced.reason


def test_calibration_times_each_shape_once_per_size_and_leaves_out_the_output_layer(small_bart):
    shapes = {(layer.in_features, layer.out_features): n for layer, n in linear_shapes(small_bart).items()}
    # 4 self-attention projections per layer, 4 cross-attention ones in the decoder; fc1 and fc2 per layer
    assert shapes == {(32, 32): 12, (32, 64): 2, (64, 32): 2}
    clock = timer(0.5)
    calibration = calibrate_int8(small_bart, batch_size=8, timer=clock)
    assert {rows for _, rows in clock.calls} == {1, 8}
    assert calibration.timings[0].fp32_us == pytest.approx(1e6 * sum(shapes.values()))  # 1 s a layer, weighted


def test_the_real_calibration_is_cached_per_process_and_cpu(small_bart):
    first = calibrate_int8(small_bart, batch_size=4)
    assert first is calibrate_int8(small_bart, batch_size=4)
    assert all(t.fp32_us > 0 and t.int8_us > 0 for t in first.timings) and first.seconds < 30
    assert first.cpu and first.threads == torch.get_num_threads()


def test_the_environment_forces_and_a_bad_value_is_refused(monkeypatch):
    monkeypatch.setenv("KEYWORD_QUANTIZE", " INT8 ")
    assert requested_precision() == "int8"
    assert requested_precision("off") == "off"  # an explicit argument wins over the environment
    monkeypatch.setenv("KEYWORD_QUANTIZE", "fast")
    with pytest.raises(ValueError, match="KEYWORD_QUANTIZE"):
        requested_precision()
    monkeypatch.delenv("KEYWORD_QUANTIZE")
    assert requested_precision() == "auto"


@pytest.fixture
def allowed_model_dir(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    settings = json.loads((model_dir / SETTINGS_FILE).read_text())
    (model_dir / SETTINGS_FILE).write_text(json.dumps({**settings, "int8_allowed": True}))
    return model_dir


def test_the_extractor_decides_at_load_and_logs_it_once(allowed_model_dir, caplog, monkeypatch):
    monkeypatch.delenv("KEYWORD_QUANTIZE", raising=False)
    with caplog.at_level(logging.INFO, logger="keyword_extractor.inference.serving_precision"):
        faster = KeywordExtractor(allowed_model_dir, device="cpu", precision_timer=timer(0.5))
    assert faster.quantize == "int8" and faster.precision.effective == "int8"
    assert any(isinstance(m, RowwiseInt8Linear) for m in faster.model.modules())
    assert [r.getMessage() for r in caplog.records] == [faster.precision.describe()]
    slower = KeywordExtractor(allowed_model_dir, device="cpu", precision_timer=timer(2.0))
    assert slower.quantize == "off" and not any(isinstance(m, RowwiseInt8Linear) for m in slower.model.modules())
    monkeypatch.setenv("KEYWORD_QUANTIZE", "off")
    assert KeywordExtractor(allowed_model_dir, device="cpu", precision_timer=timer(0.5)).quantize == "off"
    monkeypatch.setenv("KEYWORD_QUANTIZE", "int8")
    assert KeywordExtractor(allowed_model_dir, device="cpu", precision_timer=timer(2.0)).quantize == "int8"


def test_a_cpu_whose_int8_product_is_slow_is_served_fp32(allowed_model_dir, monkeypatch):
    """Without oneDNN torch multiplies int8 with its reference loop, as slow as on a CPU with no int8 kernel."""
    monkeypatch.delenv("KEYWORD_QUANTIZE", raising=False)
    with torch.backends.mkldnn.flags(enabled=False):
        extractor = KeywordExtractor(allowed_model_dir, device="cpu")
    assert extractor.precision.int8_allowed and extractor.quantize == "off"
    assert all(t.speedup < 1 for t in extractor.precision.calibration.timings), extractor.precision.reason
