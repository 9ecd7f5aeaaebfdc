"""Row-wise int8 Linear layers: close to fp32, and every output row independent of the batch it is computed in."""

from __future__ import annotations

import torch

from keyword_extractor.model.int8_linear import RowwiseInt8Linear, quantize_int8


def linear_and_rows(rows: int = 16, seed: int = 0) -> tuple[torch.nn.Linear, torch.Tensor]:
    torch.manual_seed(seed)
    linear = torch.nn.Linear(96, 70)
    hidden = torch.randn(rows, 96) * torch.logspace(-2, 2, rows)[:, None]  # rows of very different size
    return linear, hidden


def test_each_row_is_bitwise_the_same_alone_and_in_any_batch():
    linear, hidden = linear_and_rows()
    layer = RowwiseInt8Linear.from_linear(linear)
    batched = layer(hidden)
    for row in range(len(hidden)):
        assert torch.equal(layer(hidden[row : row + 1])[0], batched[row])
    assert torch.equal(layer(hidden[3:11]), batched[3:11])
    assert torch.equal(layer(hidden.reshape(4, 4, 96)), batched.reshape(4, 4, 70))


def test_outputs_stay_within_a_few_percent_of_fp32():
    linear, hidden = linear_and_rows()
    layer = RowwiseInt8Linear.from_linear(linear)
    with torch.no_grad():
        reference = linear(hidden)
    error = (layer(hidden) - reference).norm(dim=1) / reference.norm(dim=1)
    assert float(error.max()) < 0.03


def test_selected_outputs_equal_the_same_columns_of_the_whole_output():
    linear, hidden = linear_and_rows()
    layer = RowwiseInt8Linear.from_linear(linear)
    outputs = torch.tensor([0, 5, 6, 41, 69])
    assert torch.equal(layer.forward_outputs(hidden, outputs), layer(hidden)[:, outputs])


def test_a_row_of_zeros_gives_the_bias():
    linear, _ = linear_and_rows()
    layer = RowwiseInt8Linear.from_linear(linear)
    assert torch.equal(layer(torch.zeros(1, 96))[0], linear.bias.detach())


def test_every_linear_layer_of_a_model_is_replaced_and_the_rest_kept():
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Embedding(5, 16), torch.nn.Linear(16, 4))
    )
    quantize_int8(model)
    kinds = [type(module) for module in model.modules()]
    assert torch.nn.Linear not in kinds and kinds.count(RowwiseInt8Linear) == 2
    assert torch.nn.Embedding in kinds and torch.nn.ReLU in kinds


def test_layer_benchmark_finds_rowwise_int8_row_independent_and_torch_ao_int8_not():
    from benchmarks.int8_layers import measure

    results = {r["variant"]: r for r in measure([(64, 96)], rows=[1, 16], min_seconds=0.01)}
    assert results["rowwise-int8"]["row_independent"] is True
    assert results["torch.ao-dynamic-int8"]["row_independent"] is False  # one activation scale per batch
    assert results["fp32"]["x_fp32_16_rows"] == 1.0 and results["rowwise-int8"]["us_16_rows"] > 0


MEMORY_PROBE = """
import sys, psutil, torch
from transformers import BartForConditionalGeneration
from keyword_extractor.model.int8_linear import quantize_int8
rss = lambda: psutil.Process().memory_info().rss / 2**20
model = BartForConditionalGeneration.from_pretrained(sys.argv[1], disable_mmap=True)
linear = sum(m.weight.numel() * 4 for m in model.modules() if type(m) is torch.nn.Linear and m is not model.lm_head)
loaded = rss()
quantize_int8(model)
print(linear / 2**20, rss() - loaded)
"""


def test_quantising_hands_the_fp32_weights_back_to_the_system(tmp_path):
    """A served model process must shrink by the fp32 Linear weights it no longer holds, not keep them in the heap."""
    import subprocess
    import sys

    from transformers import BartConfig, BartForConditionalGeneration

    shape = dict(d_model=768, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=128)
    config = BartConfig(vocab_size=8000, encoder_layers=2, decoder_layers=2, **shape)
    BartForConditionalGeneration(config).save_pretrained(tmp_path / "model")
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "model")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    linear_mib, change_mib = (float(x) for x in done.stdout.split()[-2:])
    assert change_mib < -0.5 * linear_mib, (linear_mib, change_mib)  # int8 keeps a quarter of them
