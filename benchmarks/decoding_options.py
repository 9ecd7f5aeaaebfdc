"""CPU serving options, side by side in one process: speed and keyword F1 of each, through `KeywordExtractor`.

    python -m benchmarks.decoding_options --model-dir /tmp/perf/tiny/model [--json out.json]
    python -m benchmarks.decoding_options --model-dir /tmp/perf/kobart/model --no-f1 --limit 64 --single 8

Options (rows): beam width (greedy, 2, 3, 5), the generation cap (`max_new_tokens` stored with the
model, sized from the training targets, vs the old fixed 48), row-wise int8 Linear layers
(`keyword_extractor.model.int8_linear`), torch threads (1 vs 2), and greedy decoding by `generate()` instead
of the greedy loop (`keyword_extractor.model.greedy`, the default for greedy rows). For each: keyword F1 on
`--data` (`metrics.score`), batched throughput (questions/s, `extract` with batches of 32, as the
service's batching queue calls it) and single-question latency (p50/p95 of `--single` one-question
calls, the concurrency-1 case), and how many answers change when the same questions are decoded in
batches of 16 instead of 32 (none should: fp32 and the row-wise int8 layers of
`keyword_extractor.model.int8_linear` both decode each row on its own).

Every option runs on the same questions in the same process, one after the other; options are
skipped once `--time-budget-s` is spent. On a shared machine the absolute numbers move from run to
run: compare rows of one run, as ratios to the first row.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from keyword_extractor.common.cli import add_labelled_file, add_model_dir
from keyword_extractor.common.cpu_info import describe_cpu
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.text import metrics
from keyword_extractor.text.keywords import parse_keywords

OLD_CAP = 48  # the fixed max_new_tokens every model was exported with before it was sized from the targets


@dataclass(frozen=True)
class Option:
    name: str
    num_beams: int
    max_new_tokens: int | None = None  # None: the model's stored cap
    quantize: str = "off"
    threads: int = 1
    greedy_loop: bool = True


OPTIONS = (
    Option("beam 5, cap 48", 5, OLD_CAP),
    Option("beam 3, stored cap", 3),
    Option("beam 2, stored cap", 2),
    Option("greedy, cap 48", 1, OLD_CAP),
    Option("greedy, stored cap, generate()", 1, greedy_loop=False),
    Option("greedy, stored cap", 1),
    Option("greedy, stored cap, int8", 1, quantize="int8"),
    Option("beam 3, stored cap, int8", 3, quantize="int8"),
    Option("greedy, stored cap, 2 threads", 1, threads=2),
)


def run_option(
    extractor: KeywordExtractor, option: Option, questions: list[str], golds, single: int, with_f1: bool
) -> dict:
    torch.set_num_threads(option.threads)
    decode = dict(num_beams=option.num_beams, max_new_tokens=option.max_new_tokens)
    extractor.extract(questions[:4], **decode)  # warm-up
    began = time.perf_counter()
    predictions = extractor.extract(questions, batch_size=32, **decode)
    batched_s = time.perf_counter() - began
    regrouped = extractor.extract(questions, batch_size=16, **decode)
    latencies = []
    for question in questions[:single]:
        began = time.perf_counter()
        extractor.extract([question], **decode)
        latencies.append(1000 * (time.perf_counter() - began))
    result = {
        **asdict(option),
        "max_new_tokens": option.max_new_tokens or extractor.settings.max_new_tokens,
        "batched_qps": len(questions) / batched_s,
        "single_p50_ms": float(np.percentile(latencies, 50)),
        "single_p95_ms": float(np.percentile(latencies, 95)),
        "batch_dependent": sum(a != b for a, b in zip(predictions, regrouped)),
        "questions": len(questions),
        "answers": predictions,
    }
    if with_f1:
        scores = metrics.score(golds, predictions, questions)
        result.update(f1=scores.f1, precision=scores.precision, recall=scores.recall)
    return result


def loop_against_generate(rows: list[dict]) -> list[str]:
    """For each `generate()` row, how many answers the greedy loop row of the same settings changes."""
    lines = []
    for plain in (row for row in rows if not row["greedy_loop"]):
        same = ("num_beams", "max_new_tokens", "quantize", "threads")
        for loop in (row for row in rows if row["greedy_loop"] and all(row[k] == plain[k] for k in same)):
            differ = sum(a != b for a, b in zip(plain["answers"], loop["answers"]))
            loop["differ_from_generate"] = differ
            lines.append(f"{loop['name']} vs {plain['name']}: {differ} of {loop['questions']} answers differ")
    return lines


def table(rows: list[dict]) -> str:
    first = rows[0]
    head = (
        f"{'option':32s} {'F1':>7s} {'batched q/s':>12s} {'x':>6s} {'single p50 ms':>14s} {'x':>6s} {'p95 ms':>8s}"
        f" {'batch-dependent':>16s}"
    )
    lines = [head]
    for row in rows:
        f1 = f"{row['f1']:.4f}" if "f1" in row else "-"
        speed = row["batched_qps"] / first["batched_qps"]
        latency = first["single_p50_ms"] / row["single_p50_ms"]
        lines.append(
            f"{row['name']:32s} {f1:>7s} {row['batched_qps']:12.2f} {speed:5.2f}x "
            f"{row['single_p50_ms']:14.1f} {latency:5.2f}x {row['single_p95_ms']:8.1f}"
            f" {row['batch_dependent']:>7d} of {row['questions']:<5d}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_dir(parser)
    add_labelled_file(parser)
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--single", type=int, default=40, help="one-question calls timed per option")
    parser.add_argument("--options", help="comma-separated row numbers of the option list (default: all)")
    parser.add_argument("--no-f1", action="store_true", help="speed only (models with random weights)")
    parser.add_argument("--time-budget-s", type=float, default=1200, help="start no option after this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    pairs = load_pairs(args.data)
    if args.limit:
        pairs = pairs.head(args.limit)
    questions = pairs["query"].tolist()
    golds = [parse_keywords(cell) for cell in pairs["keyword"]]
    options = [OPTIONS[int(i)] for i in args.options.split(",")] if args.options else list(OPTIONS)
    extractors: dict[tuple[str, bool], KeywordExtractor] = {}
    rows: list[dict] = []
    skipped: list[str] = []
    started = time.monotonic()
    for option in options:
        if time.monotonic() - started > args.time_budget_s:
            skipped.append(option.name)
            continue
        key = (option.quantize, option.greedy_loop)
        if key not in extractors:
            extractors[key] = KeywordExtractor(
                args.model_dir, device="cpu", quantize=option.quantize, greedy_loop=option.greedy_loop
            )
        rows.append(run_option(extractors[key], option, questions, golds, args.single, not args.no_f1))
        print(f"  {option.name}: {rows[-1]['batched_qps']:.2f} q/s batched", flush=True)
    print()
    print(table(rows))
    for line in loop_against_generate(rows):
        print(line)
    for row in rows:
        del row["answers"]
    if skipped:
        print(f"skipped (time budget): {', '.join(skipped)}")
    result = {
        "model_dir": str(args.model_dir),
        "settings": asdict(next(iter(extractors.values())).settings),
        "questions": len(questions),
        "single": args.single,
        "rows": rows,
        "skipped": skipped,
        "machine": {"cpu_cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0], **describe_cpu()},
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
