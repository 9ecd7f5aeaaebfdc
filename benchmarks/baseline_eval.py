"""Score the Kiwi noun-phrase baseline on a data file: the bar every model has to clear.

python -m benchmarks.baseline_eval --data data/test.tsv [--errors 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from keyword_extractor.common.cli import add_batch_size, add_labelled_file
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text import metrics
from keyword_extractor.text.baselines import KiwiNounPhraseBaseline
from keyword_extractor.text.keywords import format_keywords, parse_keywords


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_labelled_file(parser)
    add_batch_size(parser, 64, help="questions per Kiwi call (timing only)")
    parser.add_argument("--errors", type=int, default=0, help="print this many questions with the lowest F1")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores to this file")
    args = parser.parse_args(argv)

    pairs = load_pairs(args.data)
    queries = pairs["query"].tolist()
    golds = [parse_keywords(cell) for cell in pairs["keyword"]]

    baseline = KiwiNounPhraseBaseline()
    baseline.extract("")  # nothing to analyse, but keeps start-up out of the timings below
    baseline.extract("관세")  # Kiwi finishes loading on its first analysis
    preds: list[list[str]] = []
    seconds: list[float] = []
    sizes: list[int] = []
    for start in range(0, len(queries), args.batch_size):
        batch = queries[start : start + args.batch_size]
        began = time.perf_counter()
        preds.extend(baseline.extract_batch(batch))
        seconds.append(time.perf_counter() - began)
        sizes.append(len(batch))

    scores = metrics.score(golds, preds, queries).as_dict()
    latency = metrics.latency_summary(seconds, sizes)
    print(f"{args.data}: {len(queries)} questions")
    for name, value in scores.items():
        print(f"  {name:24s} {value:.4f}" if isinstance(value, float) else f"  {name:24s} {value}")
    print(f"  {'p50_ms / question':24s} {latency['p50_ms']:.3f}")
    print(f"  {'throughput (q/s)':24s} {latency['throughput_qps']:.1f}")

    if args.errors:
        rows = sorted(range(len(queries)), key=lambda i: metrics.row_scores(golds[i], preds[i])[2])
        print(f"\nlowest-F1 questions ({args.errors}):")
        for i in rows[: args.errors]:
            f1 = metrics.row_scores(golds[i], preds[i])[2]
            print(f"  [{f1:.2f}] {queries[i]}")
            print(f"         gold: {format_keywords(golds[i])}")
            print(f"         pred: {format_keywords(preds[i])}")

    result = {**scores, **{f"latency_{key}": value for key, value in latency.items()}}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
