"""What the span scorer bag costs a request: the model directory against a copy with one scorer of its bag.

    PYTHONPATH=. .venv/bin/python -m benchmarks.selector_cost --model-dir artifacts/runs/<run>/train/model

Both load the same seq2seq weights; the copy keeps the bag's first member only (what selectors fitted before
the bag stored). Each question is extracted alone (one request, no merging), the two alternating over
`--rounds` rounds after one warm-up pass; reported are milliseconds per question, the ratio, and how many
answers differ. In-process, on this machine's CPU (named in the output).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from keyword_extractor.common.cli import add_model_dir
from keyword_extractor.common.cpu_info import cpu_label
from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.model.span_selector import ScorerBag, SpanSelector


def one_scorer_copy(model_dir: Path, into: Path) -> Path:
    """A copy of the model directory whose selector keeps the first scorer of its bag."""
    copy = Path(shutil.copytree(model_dir, into / "one-scorer"))
    selector = SpanSelector.load(copy)
    if not isinstance(selector.scorer, ScorerBag):
        raise SystemExit(f"{model_dir}: its selector holds one scorer already; nothing to compare")
    selector.scorer = selector.scorer.members[0]
    selector.save(copy)
    return copy


def ms_per_question(extractor: KeywordExtractor, questions: list[str]) -> float:
    started = time.perf_counter()
    for question in questions:
        extractor.extract([question])
    return (time.perf_counter() - started) / len(questions) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selector_cost", description=__doc__.split("\n\n")[0])
    add_model_dir(parser, help="a trained model directory whose selector holds a bag of scorers")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / "data" / "test.tsv", help="questions")
    parser.add_argument("--limit", type=int, default=120, help="questions per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, the two alternating")
    args = parser.parse_args(argv)
    questions = load_pairs(args.data)["query"].tolist()[: args.limit]
    with tempfile.TemporaryDirectory() as scratch:
        extractors = {
            "bag": KeywordExtractor(args.model_dir),
            "one": KeywordExtractor(one_scorer_copy(args.model_dir, Path(scratch))),
        }
        answers = {name: extractor.extract(questions) for name, extractor in extractors.items()}
        timings: dict[str, list[float]] = {name: [] for name in extractors}
        for _ in range(args.rounds):
            for name, extractor in extractors.items():
                timings[name].append(ms_per_question(extractor, questions))
    bag, one = min(timings["bag"]), min(timings["one"])
    differ = sum(a != b for a, b in zip(answers["bag"], answers["one"], strict=True))
    result = {
        "cpu": cpu_label(),
        "questions": len(questions),
        "ms_per_question_bag": [round(t, 1) for t in timings["bag"]],
        "ms_per_question_one_scorer": [round(t, 1) for t in timings["one"]],
        "ratio_of_best": round(bag / one, 2),
        "answers_that_differ": differ,
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
