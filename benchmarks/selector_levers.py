"""Span-selector levers on the transfer folds, in one process: the same seq2seq models, one change at a time.

    PYTHONPATH=. .venv/bin/python -m benchmarks.selector_levers --models artifacts/transfer/current
    PYTHONPATH=. .venv/bin/python -m benchmarks.selector_levers --variants current,expected-f1
    PYTHONPATH=. .venv/bin/python -m benchmarks.selector_levers --variants current,no-verbal-nouns --labels convention
    PYTHONPATH=. .venv/bin/python -m benchmarks.selector_levers --variants current,one-scorer --models DIR
    PYTHONPATH=. .venv/bin/python -m benchmarks.selector_levers --variants current --selector-seeds 3

`benchmarks.transfer --reuse-models` refits a selector through the real entry point, one process per fold
and a full evaluation each (minutes per variant). This keeps each fold's parsed questions and seq2seq
answers (cached beside the models, `selector_cache.json`) and calls `span_selector.fit` again per
variant (about 2.5 minutes per variant and seed for the five folds on the 2-core AMD EPYC, once the
folds are parsed). `current` reproduces the committed selector's held-out F1 exactly. Every variant is a
change of the selector's code, applied for its run and undone after it.
`--labels` scores the held-out answers against the labels as written, against the labels with every
domain verbal noun added as LABELLING.md asks (in memory; no file is rewritten), or with verbal nouns
left out of both labels and answers. `--selector-seeds` fits each selector with several seeds of its own
randomness (bootstrap samples, trees, the combiner's folds) and prints their mean and range: a lever is
worth keeping when it moves a fold by more than that range.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from keyword_extractor.common.paths import PROJECT_ROOT
from keyword_extractor.data.folds import split_train_val, validation_folds
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.model import span_selector
from keyword_extractor.text.keywords import clean_keywords, covered_by, nested_in, parse_keywords
from keyword_extractor.text.metrics import score
from keyword_extractor.text.questions import QuestionAnalyser
from keyword_extractor.text.span_features import ParsedQuestion

CACHE_FILE = "selector_cache.json"
SEED_STEP = 1000  # between the selector seeds of --selector-seeds


def fold_inputs(models: Path, train_file: Path) -> dict[str, dict]:
    """Per fold: questions and gold keywords of its training, validation and held-out parts, and the seq2seq
    model's answers on the latter two (decoded once, then read from the cache)."""
    from keyword_extractor.model.config import CONFIG_FILE, TrainConfig

    golds = lambda frame: [clean_keywords(parse_keywords(cell)) for cell in frame["keyword"]]  # noqa: E731
    inputs = {}
    for fold in validation_folds(load_pairs(train_file)):
        folder = models / fold.name.replace("→", "-to-") / "train"
        cache = folder / CACHE_FILE
        if not cache.is_file() and not (folder / CONFIG_FILE).is_file():
            print(f"{fold.name}: no model in {folder}, left out (train it with benchmarks.transfer --folds)")
            continue
        if not cache.is_file():
            config = TrainConfig.load(folder / CONFIG_FILE)
            train, val = split_train_val(fold.train, config.val_fraction, config.seed)
            parts = {"train": train, "val": val, "held_out": fold.held_out}
            record = {name: {"questions": part["query"].tolist(), "golds": golds(part)} for name, part in parts.items()}
            record.update(seq2seq_answers(folder / "model", record), seed=config.seed)
            cache.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        inputs[fold.name] = json.loads(cache.read_text(encoding="utf-8"))
    return inputs


def seq2seq_answers(model_dir: Path, record: dict) -> dict:
    from keyword_extractor.inference.extractor import KeywordExtractor

    extractor = KeywordExtractor(model_dir)
    answers = {name: extractor.extract(record[name]["questions"], select_spans=False) for name in ("val", "held_out")}
    return {"answers": answers, "limit": extractor.settings.max_keywords}


DOMAIN_VERBAL_NOUNS = span_selector.domain_verbal_nouns  # the labels' view, whatever a variant patches


def as_labelled(questions: list[ParsedQuestion], golds: list[list[str]], answers: list[list[str]]) -> tuple:
    return golds, answers


def to_convention(questions: list[ParsedQuestion], golds: list[list[str]], answers: list[list[str]]) -> tuple:
    """The labels with every domain verbal noun that the row's keywords do not cover added to them."""
    added = [
        gold + [n for n in DOMAIN_VERBAL_NOUNS(q) if not covered_by(n, gold, q.text)]
        for q, gold in zip(questions, golds, strict=True)
    ]
    return [list(dict.fromkeys(row)) for row in added], answers


def verbal_nouns_ignored(questions: list[ParsedQuestion], golds: list[list[str]], answers: list[list[str]]) -> tuple:
    """Labels and answers without the domain verbal nouns: the choice among the other spans alone."""
    nouns = [set(DOMAIN_VERBAL_NOUNS(q)) for q in questions]
    strip = lambda rows: [[k for k in row if k not in n] for row, n in zip(rows, nouns, strict=True)]  # noqa: E731
    return strip(golds), strip(answers)


LABELS = {"as-labelled": as_labelled, "convention": to_convention, "verbal-nouns-ignored": verbal_nouns_ignored}


def held_out_f1(fold: dict, parsed: dict, labels=as_labelled, seed_offset: int = 0) -> tuple[float, float]:
    """(selector, Kiwi baseline) F1 on the fold's held-out questions, the selector fitted as training fits it.

    `seed_offset` moves the selector's own randomness (its scorers' bootstrap samples and trees, the
    combiner's folds) away from the training's seed, to measure how far a refit alone moves the F1.
    """
    selector = span_selector.fit(
        parsed["train"],
        fold["train"]["golds"],
        parsed["val"],
        fold["val"]["golds"],
        fold["answers"]["val"],
        limit=fold["limit"],
        seed=fold["seed"] + seed_offset,
    )
    questions = parsed["held_out"]
    chosen = selector.select(questions, fold["answers"]["held_out"], fold["limit"])
    golds, chosen = labels(questions, fold["held_out"]["golds"], chosen)
    rule_golds, rule = labels(questions, fold["held_out"]["golds"], [list(q.rule_keywords) for q in questions])
    return score(golds, chosen).f1, score(rule_golds, rule).f1


@contextlib.contextmanager
def patched(name: str, replacement) -> Iterator[None]:
    original = getattr(span_selector, name)
    setattr(span_selector, name, replacement)
    try:
        yield
    finally:
        setattr(span_selector, name, original)


def expected_f1_choice(question, scored, threshold, drop_nested, limit) -> list[str]:
    """Per question, the top-k spans whose expected F1 (from their probabilities) is highest."""
    kept, probabilities = [], []
    for span, probability in sorted(scored, key=lambda pair: -pair[1]):
        span = span_selector.without_plural(span, question)
        overlaps = covered_by(span, kept, question.text) or any(nested_in(o, span, question.text) for o in kept)
        if span not in kept and not (drop_nested and overlaps):
            kept.append(span)
            probabilities.append(probability)
    total, running, best = sum(probabilities), 0.0, (-1.0, 0)
    for k, probability in enumerate(probabilities[:limit], start=1):
        if probability < threshold:
            break
        running += probability
        best = max(best, (2 * running / (k + total), k))
    return sorted(kept[: best[1]], key=question.text.find)


def seq2seq_overlap_inputs(question, spans, scores, model_keywords, counts, version=2) -> np.ndarray:
    """The combiner's inputs plus: the span lies inside a seq2seq keyword, the span holds one."""
    base = ORIGINAL_INPUTS(question, spans, scores, model_keywords, counts, version)
    inside = [any(s != k and s in k for k in model_keywords) for s in spans]
    holds = [any(s != k and k in s for k in model_keywords) for s in spans]
    return np.column_stack([base, np.array(inside, dtype=float), np.array(holds, dtype=float)])


@contextlib.contextmanager
def expected_f1() -> Iterator[None]:
    """The expected-F1 choice; the threshold grid becomes a floor under it."""
    with patched("choose", expected_f1_choice), patched("THRESHOLDS", (0.0, 0.05, 0.1, 0.15, 0.2)):
        yield


ORIGINAL_INPUTS = span_selector._combiner_inputs
VARIANTS: dict[str, Callable[[], contextlib.AbstractContextManager]] = {
    "current": contextlib.nullcontext,
    "expected-f1": expected_f1,
    "seq2seq-overlap": lambda: patched("_combiner_inputs", seq2seq_overlap_inputs),
    "no-verbal-nouns": lambda: patched("domain_verbal_nouns", lambda question: []),
    "one-scorer": lambda: patched("SCORER_BAG", 1),  # the selector before the bag of scorers
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selector_levers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=PROJECT_ROOT / "artifacts" / "transfer" / "current")
    parser.add_argument("--train", type=Path, default=PROJECT_ROOT / "data" / "train.tsv")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--labels", choices=LABELS, default="as-labelled", help="what the answers are scored against")
    parser.add_argument(
        "--selector-seeds",
        type=int,
        default=1,
        metavar="N",
        help="fit each selector with N seeds (the training's, then +1000, +2000, ...) and print the mean "
        "F1 with its range: how far the selector's own randomness moves a fold (default: 1, the training's)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    if args.selector_seeds < 1:
        parser.error(f"--selector-seeds must be 1 or more, got {args.selector_seeds}")
    folds = fold_inputs(args.models, args.train)
    analyser = QuestionAnalyser()
    parsed = {
        name: {part: analyser.parse_batch(fold[part]["questions"]) for part in ("train", "val", "held_out")}
        for name, fold in folds.items()
    }
    print("| variant | " + " | ".join(folds) + " |\n|---|" + "---:|" * len(folds))
    for variant in args.variants.split(","):
        with VARIANTS[variant]():
            cells = [
                fold_cell(
                    [
                        held_out_f1(folds[name], parsed[name], LABELS[args.labels], SEED_STEP * k)
                        for k in range(args.selector_seeds)
                    ]
                )
                for name in folds
            ]
        print(f"| {variant} | " + " | ".join(cells) + " |", flush=True)


def fold_cell(results: list[tuple[float, float]]) -> str:
    """`model (margin over the rule)`, or with several seeds `mean (margin) [lowest–highest]`."""
    models = [model for model, _ in results]
    mean, baseline = float(np.mean(models)), results[0][1]
    cell = f"{mean:.4f} ({mean - baseline:+.4f})"
    return cell if len(models) == 1 else f"{cell} [{min(models):.4f}–{max(models):.4f}]"


if __name__ == "__main__":
    main()
