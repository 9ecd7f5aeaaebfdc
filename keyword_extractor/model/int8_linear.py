"""int8 Linear layers for CPU serving whose output rows do not depend on the rows beside them.

Each output channel's weights are stored in int8 with their own scale, and each input row is
quantised with its own scale when it arrives; the products are summed in int32 by `torch._int_mm`.
Integer sums are exact, so however the kernel blocks a batch, a row's sums, and with its own scale its
whole output, are bitwise the same alone as in any batch: a question's keywords never depend on the
questions decoded beside it. torch.ao's `quantize_dynamic` quantises a call's activations with one
scale for the whole batch, so its answers do depend on the batch; torchao's int8 dynamic-activation
layers use this same per-row scheme but, on CPU, cost more per call than fp32 below a few hundred
rows (benchmarks/README.md, "Batch-independent int8"). On the measured CPU a 16-row product of a
KoBART-size layer took 5x less time than in fp32.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import torch

QMAX = 127  # symmetric range: -127..127, so a row's scale maps its largest |value| to ±127


def _quantise_rows(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, float scale per row) of a 2-D tensor; a row of zeros gets scale 1."""
    scale = values.abs().amax(dim=1, keepdim=True) / QMAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round(values / scale).clamp_(-QMAX, QMAX).to(torch.int8), scale


class RowwiseInt8Linear(torch.nn.Module):
    """A `torch.nn.Linear` stand-in: int8 weights with a scale per output channel, activations per row."""

    def __init__(self, weight_int8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = weight_int8.shape
        self.register_buffer("weight_int8", weight_int8.contiguous())
        self.register_buffer("weight_scale", weight_scale.float().contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_linear(cls, linear: torch.nn.Linear) -> RowwiseInt8Linear:
        weight_int8, weight_scale = _quantise_rows(linear.weight.detach().float())
        return cls(weight_int8, weight_scale.squeeze(1), linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._project(hidden, self.weight_int8, self.weight_scale, self.bias)

    def forward_outputs(self, hidden: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """The output channels `outputs` only (e.g. the tokens grounding allows), each as `forward` computes it."""
        bias = None if self.bias is None else self.bias[outputs]
        return self._project(hidden, self.weight_int8[outputs], self.weight_scale[outputs], bias)

    @staticmethod
    def _project(
        hidden: torch.Tensor, weight_int8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        rows = hidden.reshape(-1, hidden.shape[-1]).float()
        quantised, row_scale = _quantise_rows(rows)
        output = torch._int_mm(quantised, weight_int8.t()).float().mul_(row_scale).mul_(weight_scale)
        if bias is not None:
            output.add_(bias)
        return output.to(hidden.dtype).reshape(*hidden.shape[:-1], weight_int8.shape[0])

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every `torch.nn.Linear` of `model` (in place) with a `RowwiseInt8Linear`; returns the model.

    The fp32 weights become garbage; `release_freed_memory` then hands their pages back to the system,
    which the C allocator otherwise keeps (a served KoBART-size model: ~350 MiB).
    """
    _replace_linears(model)
    release_freed_memory()
    return model


def _replace_linears(module: torch.nn.Module) -> None:
    for name, child in list(module.named_children()):
        if type(child) is torch.nn.Linear:
            setattr(module, name, RowwiseInt8Linear.from_linear(child))
        else:
            _replace_linears(child)


def release_freed_memory() -> bool:
    """glibc's malloc_trim: return free heap pages to the system; False where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    gc.collect()
    trim(0)
    return True
