"""Training throughput on the KoBART-base shape: pad-to-512 (the original code) vs dynamic padding.

    python -m benchmarks.train_throughput --steps 8 --pad512-steps 2 [--shape tiny] [--precision auto]

Random initialisation (no download); real questions from data/train.tsv,
tokenised by a BPE tokenizer trained on them (8k vocabulary, a proxy for
KoBART's subword granularity on Korean). Each mode runs full optimiser steps
(forward, backward, AdamW, clipping) at the same batch size in the same process
on the *same* randomly drawn rows (dynamic padding in random order, length-grouped
in length order, pad-to-512 on the first batches of them), after one warm-up step
on other rows, and reports samples/s, the ratio to pad-to-512, and the process's
peak RSS after the dynamic modes (training at this batch size) and after pad-to-512.
`--shape tiny` (a one-layer model) checks the script itself in seconds; `--precision auto` is bf16 on
GPUs and on CPUs with native bf16 (AVX-512 BF16 / AMX), fp32 elsewhere: emulated bf16 is many times
slower than fp32. The JSON's environment names the CPU (`keyword_extractor.common.cpu_info`).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from transformers import BartConfig, BartForConditionalGeneration

from keyword_extractor.common.cli import add_batch_size, add_device
from keyword_extractor.common.cpu_info import describe_cpu, native_bf16
from keyword_extractor.common.paths import PROJECT_ROOT as ROOT
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.model.modeling import adamw
from keyword_extractor.model.tiny import train_tokenizer
from keyword_extractor.training.datamodule import (
    DynamicPaddingCollator,
    EncodedPairs,
    EncodingSettings,
    LengthGroupedSampler,
)

KOBART_BASE_SHAPE = dict(
    vocab_size=30000,
    d_model=768,
    encoder_layers=6,
    decoder_layers=6,
    encoder_attention_heads=16,
    decoder_attention_heads=16,
    encoder_ffn_dim=3072,
    decoder_ffn_dim=3072,
    max_position_embeddings=1026,
)
# the same code paths in seconds (pad-to-512 included), for dry runs on any CPU
TINY_SHAPE = dict(
    vocab_size=8000,
    d_model=64,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=128,
    decoder_ffn_dim=128,
    max_position_embeddings=1026,
)
SHAPES = {"kobart-base": KOBART_BASE_SHAPE, "tiny": TINY_SHAPE}


def build_model(device: torch.device, shape: str = "kobart-base") -> BartForConditionalGeneration:
    torch.manual_seed(0)
    config = BartConfig(**SHAPES[shape], pad_token_id=2, bos_token_id=0, eos_token_id=1, decoder_start_token_id=1)
    return BartForConditionalGeneration(config).to(device).train()


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto': bf16 where it is native (CUDA with bf16, or a CPU with AVX-512 BF16/AMX), else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if native_bf16() else "fp32"


def train_step(model, optimizer, batch: dict, device: torch.device, autocast) -> None:
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with autocast:
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    model, warmup_batch: dict, loader, steps: int, device: torch.device, precision: str, passes: int = 1
) -> dict:
    """Samples/s and padded tokens per sample over the first `steps` batches of `loader`, after a warm-up step.

    With `passes` > 1 the same batches run again and the last pass is reported: on a GPU the first
    step at each new shape pays one-off costs (kernel selection, allocator growth) that a long run
    pays once per shape; `first_pass_samples_per_s` keeps the cold figure.
    """
    optimizer = adamw(model.parameters(), 1e-5, mixed_precision=precision == "bf16")  # as in training
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    train_step(model, optimizer, warmup_batch, device, autocast)
    rates = []
    for _ in range(passes):
        samples = tokens = 0
        started = time.perf_counter()
        for step, batch in enumerate(loader):
            if step == steps:
                break
            train_step(model, optimizer, batch, device, autocast)
            samples += batch["input_ids"].size(0)
            tokens += batch["input_ids"].numel() + batch["labels"].numel()
        seconds = time.perf_counter() - started
        rates.append(samples / seconds)
    return {
        "samples_per_s": rates[-1],
        "first_pass_samples_per_s": rates[0],
        "tokens_per_sample": tokens / samples,
        "steps": steps,
        "passes": passes,
        "seconds": seconds,
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", default=str(ROOT / "data" / "train.tsv"))
    add_batch_size(parser, 8, help="training batch, the same for every mode (the original used 8)")
    parser.add_argument("--steps", type=int, default=8, help="timed steps for the dynamic modes")
    parser.add_argument("--pad512-steps", type=int, default=2, help="timed steps for pad-to-512 (slow on CPU)")
    parser.add_argument("--passes", type=int, default=1, help="run the timed batches N times, report the last")
    add_device(parser, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "auto"],
        default="fp32",
        help="auto: bf16 where native (GPUs with bf16, CPUs with AVX-512 BF16/AMX), else fp32",
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="kobart-base", help="model shape (tiny: dry runs)")
    parser.add_argument("--json", help="also write the results here")
    return parser


def _loaders(args: argparse.Namespace, pairs: EncodedPairs, collate, pad_token_id: int):
    """(warm-up batch, {mode: (loader, timed steps)}): the same drawn rows for every mode."""
    drawn = random.Random(0).sample(range(len(pairs)), (args.steps + 1) * args.batch_size)
    warmup_rows, rows = drawn[: args.batch_size], drawn[args.batch_size :]
    subset = Subset(pairs, rows)
    subset_lengths = [pairs.lengths()[i] for i in rows]
    modes = {
        "dynamic_padding": (DataLoader(subset, args.batch_size, collate_fn=collate), args.steps),
        "dynamic_length_grouped": (
            DataLoader(
                subset,
                args.batch_size,
                collate_fn=collate,
                # one group over all drawn rows: the same rows as dynamic_padding, batched by length
                sampler=LengthGroupedSampler(subset_lengths, args.batch_size, seed=0, group_factor=args.steps),
            ),
            args.steps,
        ),
        "pad_to_512": (
            DataLoader(subset, args.batch_size, collate_fn=DynamicPaddingCollator(pad_token_id, pad_to=512)),
            args.pad512_steps,
        ),
    }
    return collate([pairs[i] for i in warmup_rows]), modes


def main() -> None:
    args = _parser().parse_args()
    device = torch.device(args.device)
    args.precision = resolve_precision(args.precision, device)
    print(f"precision {args.precision}, shape {args.shape}", flush=True)
    frame = load_pairs(args.train)
    tokenizer = train_tokenizer(frame["query"].tolist(), vocab_size=8000)
    settings = EncodingSettings.from_tokenizer(tokenizer, max_source_length=512, max_target_length=512)
    pairs = EncodedPairs.for_keywords(tokenizer, frame, settings)
    model = build_model(device, args.shape)
    collate = DynamicPaddingCollator(settings.pad_token_id)
    warmup_batch, modes = _loaders(args, pairs, collate, settings.pad_token_id)
    results: dict = {}
    for name, (loader, steps) in modes.items():
        results[name] = measure(model, warmup_batch, loader, steps, device, args.precision, args.passes)
        results[name]["peak_rss_mib_so_far"] = peak_rss_mib()
        print(
            f"{name:24s} {results[name]['samples_per_s']:8.2f} samples/s  "
            f"{results[name]['tokens_per_sample']:7.1f} tokens/sample  ({steps} steps)  "
            f"peak RSS so far {results[name]['peak_rss_mib_so_far']:.0f} MiB",
            flush=True,
        )
    base = results["pad_to_512"]["samples_per_s"]
    for name in ("dynamic_padding", "dynamic_length_grouped"):
        results[name]["speedup_vs_pad_to_512"] = results[name]["samples_per_s"] / base
        print(f"{name}: {results[name]['speedup_vs_pad_to_512']:.1f}x pad-to-512")
    grouped_gain = results["dynamic_length_grouped"]["samples_per_s"] / results["dynamic_padding"]["samples_per_s"]
    results["length_grouping_gain_over_dynamic"] = grouped_gain
    print(f"length grouping on top of dynamic padding: {grouped_gain:.2f}x")
    results["environment"] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "precision": args.precision,
        "shape": args.shape,
        "torch": torch.__version__,
        **({} if device.type == "cuda" else {"cpu": describe_cpu()}),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
