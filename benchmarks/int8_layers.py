"""One Linear layer in each CPU precision: time per call and whether a row's output depends on its batch.

    python -m benchmarks.int8_layers [--shapes 768x768,768x3072] [--rows 1,16,64] [--json out.json]

For each layer shape (in x out; default: the KoBART-base attention projection and feed-forward
layers) and each number of rows per call (1: one question's decoder step; 16: a merged batch; 64:
an encoder call), it times, on one torch thread:

- `fp32`: `torch.nn.Linear`;
- `rowwise-int8`: `keyword_extractor.model.int8_linear.RowwiseInt8Linear`, what `quantize: "int8"` serves;
- `torch.ao-dynamic-int8`: `torch.ao.quantization.quantize_dynamic`, what int8 used to be;
- `torchao-int8`: torchao's `Int8DynamicActivationInt8WeightConfig`, if torchao is installed (it is
  not a dependency: `pip install torchao` to include it).

"row-independent" says whether every output row, computed alone, is bitwise the one computed in the
batch of 16: the property that keeps a question's answer independent of the questions decoded beside it.
Ratios are to fp32 in the same run.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

import torch

from keyword_extractor.common.cpu_info import cpu_label, describe_cpu
from keyword_extractor.model.int8_linear import RowwiseInt8Linear

DEFAULT_SHAPES = "768x768,768x3072"
DEFAULT_ROWS = "1,16,64"


def _torch_ao_dynamic(linear: torch.nn.Linear) -> torch.nn.Module:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(torch.nn.Sequential(copy.deepcopy(linear)), {torch.nn.Linear}, dtype=torch.qint8)


def _torchao(linear: torch.nn.Linear) -> torch.nn.Module | None:
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        return None
    layer = torch.nn.Sequential(copy.deepcopy(linear))
    quantize_(layer, Int8DynamicActivationInt8WeightConfig())
    return layer


def variants(linear: torch.nn.Linear) -> dict[str, torch.nn.Module]:
    found = {
        "fp32": linear,
        "rowwise-int8": RowwiseInt8Linear.from_linear(linear),
        "torch.ao-dynamic-int8": _torch_ao_dynamic(linear),
    }
    torchao = _torchao(linear)
    if torchao is not None:
        found["torchao-int8"] = torchao
    return found


def microseconds_per_call(layer: torch.nn.Module, hidden: torch.Tensor, min_seconds: float) -> float:
    for _ in range(10):
        layer(hidden)
    calls, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < min_seconds:
        layer(hidden)
        calls += 1
    return 1e6 * elapsed / calls


def row_independent(layer: torch.nn.Module, in_features: int) -> bool:
    torch.manual_seed(1)
    batch = torch.randn(16, in_features) * torch.logspace(-1, 1, 16)[:, None]
    together = layer(batch)
    return all(torch.equal(layer(batch[row : row + 1])[0], together[row]) for row in range(len(batch)))


def measure(shapes: list[tuple[int, int]], rows: list[int], min_seconds: float) -> list[dict]:
    torch.set_num_threads(1)
    results = []
    with torch.inference_mode():
        for in_features, out_features in shapes:
            torch.manual_seed(0)
            layers = variants(torch.nn.Linear(in_features, out_features))
            for name, layer in layers.items():
                result = {
                    "shape": f"{in_features}x{out_features}",
                    "variant": name,
                    "row_independent": row_independent(layer, in_features),
                }
                for count in rows:
                    hidden = torch.randn(count, in_features)
                    result[f"us_{count}_rows"] = round(microseconds_per_call(layer, hidden, min_seconds), 1)
                results.append(result)
    for result in results:
        fp32 = next(r for r in results if r["shape"] == result["shape"] and r["variant"] == "fp32")
        for count in rows:
            key = f"us_{count}_rows"
            result[f"x_fp32_{count}_rows"] = round(fp32[key] / result[key], 2)
    return results


def table(results: list[dict], rows: list[int]) -> str:
    header = f"{'shape':<10} {'variant':<22} {'row-independent':>15}" + "".join(
        f" {f'{n} rows us (x fp32)':>20}" for n in rows
    )
    lines = [header]
    for r in results:
        cells = "".join(f" {r[f'us_{n}_rows']:>11.1f} ({r[f'x_fp32_{n}_rows']:>5.2f}x)" for n in rows)
        lines.append(f"{r['shape']:<10} {r['variant']:<22} {str(r['row_independent']):>15}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="layer shapes, in x out, comma-separated")
    parser.add_argument("--rows", default=DEFAULT_ROWS, help="rows per call, comma-separated")
    parser.add_argument("--min-seconds", type=float, default=0.5, help="time spent timing each variant and size")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]
    rows = [int(n) for n in args.rows.split(",")]
    results = measure(shapes, rows, args.min_seconds)
    print(f"CPU: {cpu_label()}, 1 torch thread")
    print(table(results, rows))
    if args.json:
        args.json.write_text(json.dumps({"threads": 1, "cpu": describe_cpu(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
