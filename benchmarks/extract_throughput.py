"""Decoding throughput of `KeywordExtractor` in process, per precision and questions per model call.

    python -m benchmarks.extract_throughput --model-dir DIR [--device cuda] [--precisions fp32,bf16]
        [--batches 1,16,64] [--data data/test.tsv] [--limit 512] [--json out.json]

The service merges the questions of concurrent requests into one model call, so "questions per
call" b is what the model sees at concurrency b. This measures that model side alone, without HTTP
(for the whole server see `benchmarks.serve_bench`), on one machine in one run: each precision loads
the model directory once (fp32, or bf16 weights as the service loads them on a GPU), decodes every
question once to warm up (this also fills the Kiwi candidate-span cache, so the timed passes measure
decoding, grounded by the model's own setting), then runs `extract` twice at each b and reports the
second pass (a server's steady state: on a GPU the first call at each new shape pays one-off costs;
the first pass is kept as `first_pass_questions_per_s`). Reported: questions/s,
the ratio to fp32 at b=1, keyword F1 where `--data` has labels, and how many answers differ from fp32.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from keyword_extractor.common.cli import add_device, add_model_dir
from keyword_extractor.common.cpu_info import cpu_label, describe_cpu
from keyword_extractor.common.paths import PROJECT_ROOT as ROOT
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.inference.extractor import KeywordExtractor
from keyword_extractor.text.keywords import parse_keywords
from keyword_extractor.text.metrics import score


def comma_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def load_extractor(model_dir: str, device: str, precision: str) -> KeywordExtractor:
    if precision == "bf16" and not device.startswith("cuda"):
        raise SystemExit("--precisions bf16 needs a CUDA device: the service loads bf16 weights on GPUs only")
    return KeywordExtractor(model_dir, device=device, half_precision_on_gpu=precision == "bf16")


def timed_pass(extractor: KeywordExtractor, questions: list[str], batch: int) -> tuple[float, list[list[str]]]:
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    answers = extractor.extract(questions, batch_size=batch)
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, answers


def measure(args: argparse.Namespace) -> dict:
    frame = load_pairs(args.data)
    if args.limit:
        frame = frame.head(args.limit)
    questions = frame["query"].tolist()
    golds = [parse_keywords(cell) for cell in frame["keyword"].fillna("")]
    labelled = any(golds)
    single = questions[: args.single_limit]  # one question per call is slow: time fewer of them
    results: dict = {"runs": []}
    reference: dict[int, list[list[str]]] = {}
    for precision in args.precisions:
        extractor = load_extractor(args.model_dir, args.device, precision)
        extractor.extract(questions, batch_size=max(args.batches))  # warm-up, fills the span cache
        for batch in args.batches:
            subset = single if batch == 1 else questions
            cold_seconds, _ = timed_pass(extractor, subset, batch)  # first use of this batch's shapes
            seconds, answers = timed_pass(extractor, subset, batch)
            run = {
                "precision": precision,
                "questions_per_call": batch,
                "questions": len(subset),
                "seconds": round(seconds, 3),
                "questions_per_s": round(len(subset) / seconds, 2),
                "first_pass_questions_per_s": round(len(subset) / cold_seconds, 2),
            }
            if labelled:
                run["f1"] = round(score(golds[: len(subset)], answers).f1, 4)
            if precision == args.precisions[0]:
                reference[batch] = answers
            else:
                run["answers_differing_from_" + args.precisions[0]] = sum(
                    a != b for a, b in zip(answers, reference[batch])
                )
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
        del extractor
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    base = next(r for r in results["runs"] if r["precision"] == args.precisions[0] and r["questions_per_call"] == 1)
    for run in results["runs"]:
        run["ratio_vs_first_precision_at_1"] = round(run["questions_per_s"] / base["questions_per_s"], 2)
    results["environment"] = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu_label(),
        "cpu": describe_cpu(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model_dir": str(args.model_dir),
        "data": str(args.data),
    }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_dir(parser, help="a keyword model directory (trained or kobart_shape)")
    parser.add_argument("--data", default=str(ROOT / "data" / "test.tsv"), help="questions (labels optional)")
    add_device(parser, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", type=lambda s: s.split(","), default=["fp32"], help="fp32,bf16")
    parser.add_argument("--batches", type=comma_ints, default=[1, 16, 64], help="questions per model call")
    parser.add_argument("--limit", type=int, default=512, help="questions used (0: all)")
    parser.add_argument("--single-limit", type=int, default=128, help="questions timed one per call")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    results = measure(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
