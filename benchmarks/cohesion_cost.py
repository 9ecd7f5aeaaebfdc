"""What span feature set 4 (Kiwi's cohesion of each span) adds to a request: set 3 against set 4, per question.

    PYTHONPATH=. .venv/bin/python -m benchmarks.cohesion_cost

The features of every candidate span of each question are built one question at a time, the two sets
alternating over `--rounds` rounds. Set 4's Kiwi calls are cached per text, so each round starts with an
empty cache (`--warm` keeps it: a service that has seen the spans before). Questions are parsed once
beforehand, as a request's questions are before its features. In-process, on this machine's CPU (named in
the output); milliseconds per question and the ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from keyword_extractor.common.cpu_info import cpu_label
from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.cohesion import language_score
from keyword_extractor.text.keywords import clean_keywords, parse_keywords
from keyword_extractor.text.questions import QuestionAnalyser
from keyword_extractor.text.span_features import ParsedQuestion, SpanCounts, span_features


def ms_per_question(parsed: list[ParsedQuestion], counts: SpanCounts, feature_set: int, warm: bool) -> float:
    if not warm:
        language_score.cache_clear()
    started = time.perf_counter()
    for question in parsed:
        span_features(question, counts, feature_set=feature_set)
    return (time.perf_counter() - started) / len(parsed) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cohesion_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "test.tsv", help="questions")
    parser.add_argument("--train", type=Path, default=PROJECT_ROOT / "data" / "train.tsv", help="for the counts")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, the two sets alternating")
    parser.add_argument("--warm", action="store_true", help="keep set 4's cache between rounds")
    args = parser.parse_args(argv)
    analyser = QuestionAnalyser()
    train = load_pairs(args.train)
    golds = [clean_keywords(parse_keywords(cell)) for cell in train["keyword"]]
    counts = SpanCounts.count(analyser.parse_batch(train["query"].tolist()), golds)
    parsed = analyser.parse_batch(load_pairs(args.data)["query"].tolist())
    ms_per_question(parsed, counts, 4, warm=False)  # warm-up: Kiwi's first calls, the interpreter's caches
    timings: dict[int, list[float]] = {3: [], 4: []}
    for _ in range(args.rounds):
        for feature_set in timings:
            timings[feature_set].append(ms_per_question(parsed, counts, feature_set, args.warm))
    best = {feature_set: min(values) for feature_set, values in timings.items()}
    cache = "warm" if args.warm else "cold"
    print(f"CPU: {cpu_label()}; {len(parsed)} questions, best of {args.rounds} rounds, cache {cache}")
    for feature_set, values in timings.items():
        rounds = ", ".join(f"{value:.2f}" for value in values)
        print(f"feature set {feature_set}: {best[feature_set]:.2f} ms per question (rounds: {rounds})")
    print(f"set 4 / set 3: {best[4] / best[3]:.2f}x, +{best[4] - best[3]:.2f} ms per question")


if __name__ == "__main__":
    main()
