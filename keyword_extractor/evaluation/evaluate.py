"""Step 3 of the pipeline: score a model on the held-out test file, next to the Kiwi baseline.

The model runs through `KeywordExtractor` (the same path the service uses) and is scored with
`metrics.score` (the one metric definition), so the numbers here are the numbers everywhere.
Outputs, each written atomically (temp file + os.replace) so a reader never sees half a file:

- `predictions.tsv`: one row per test question: gold, model and baseline keywords, per-row P/R/F1;
- `metrics.json`: model and baseline scores, latency, the test file's sha256 and size;
- `report.md`: headline table, F1 by number of gold keywords, by question length and by domain, the worst
  questions of the model and of the baseline;
- `f1_chart.png`: precision / recall / F1 / exact match, model vs baseline.

    python -m keyword_extractor.evaluation --model-dir artifacts/runs/RUN/train/model --test data/test.tsv
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyword_extractor.common.results import EvaluationResult
from keyword_extractor.data.tsv import DataFileError, Problem, load_pairs, parse_tsv
from keyword_extractor.evaluation.report import (
    write_outputs,
)
from keyword_extractor.model.artifact import DEFAULT_BATCH_SIZE
from keyword_extractor.model.integrity import check_model_dir
from keyword_extractor.text.keywords import clean_keywords, format_keywords, parse_keywords
from keyword_extractor.text.metrics import latency_summary, row_scores, score

_WARMUP_QUESTIONS = 4

# --- inputs ----------------------------------------------------------------------------------


def load_test_set(test_path: str | Path) -> tuple[list[str], list[list[str]], list[int], str]:
    """Questions, clean gold keyword lists, line numbers and the file's sha256, read once from the same bytes."""
    path = Path(test_path)
    if not path.is_file():
        load_pairs(path)  # raises DataFileError: file not found
    raw = path.read_bytes()
    table = parse_tsv(path, raw)
    if table.problems:
        raise DataFileError(table.problems)
    frame = table.rows
    if frame.empty:
        raise DataFileError([Problem(str(path), None, None, "the file has a header but no data rows")])
    digest = hashlib.sha256(raw).hexdigest()
    queries = frame["query"].tolist()
    golds = [clean_keywords(parse_keywords(cell)) for cell in frame["keyword"]]
    return queries, golds, [int(line) for line in frame["line"]], digest


# --- timed extraction ------------------------------------------------------------------------


def _timed_batches(
    questions: Sequence[str], batch_size: int, extract: Callable[[list[str]], list[list[str]]]
) -> tuple[list[list[str]], dict[str, float]]:
    """Run `extract` on length-sorted batches (as `KeywordExtractor.extract` batches them) and time each."""
    order = sorted(range(len(questions)), key=lambda i: len(questions[i]))
    predictions: list[list[str]] = [[] for _ in questions]
    seconds: list[float] = []
    sizes: list[int] = []
    extract([questions[i] for i in order[:_WARMUP_QUESTIONS]])  # untimed: lazy initialisation, kernel selection
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        began = time.perf_counter()
        output = extract([questions[i] for i in chunk])
        seconds.append(time.perf_counter() - began)
        sizes.append(len(chunk))
        for index, keywords in zip(chunk, output, strict=True):
            predictions[index] = list(keywords)
    return predictions, latency_summary(seconds, sizes)


# --- the step --------------------------------------------------------------------------------


def _row_scores(prefix: str, gold: list[str], pred: list[str]) -> dict[str, float]:
    precision, recall, f1 = row_scores(gold, pred)
    return {f"{prefix}_precision": precision, f"{prefix}_recall": recall, f"{prefix}_f1": f1}


@dataclass
class _Answers:
    """One extractor's answers on the test questions, with their metrics and latency."""

    predictions: list[list[str]]
    metrics: dict[str, float]
    latency: dict[str, float]
    batch_size: int
    device: str | None = None
    precision: dict | None = None
    seq2seq_metrics: dict[str, float] | None = None


def _model_answers(
    model_dir: Path, queries: list[str], golds: list[list[str]], batch_size: int | None, device: str | None
) -> _Answers:
    from keyword_extractor.inference.extractor import KeywordExtractor  # torch: only when a model is evaluated

    extractor = KeywordExtractor(model_dir, device=device)
    batch_size = batch_size or extractor.settings.batch_size
    predictions, latency = _timed_batches(
        queries, batch_size, lambda chunk: extractor.extract(chunk, batch_size=len(chunk))
    )
    seq2seq_metrics = None
    if extractor.selector is not None:
        seq2seq = extractor.extract(queries, batch_size=batch_size, select_spans=False)
        seq2seq_metrics = score(golds, seq2seq, queries).as_dict()
    return _Answers(
        predictions,
        score(golds, predictions, queries).as_dict(),
        latency,
        batch_size,
        str(extractor.device),
        extractor.precision.as_dict(),
        seq2seq_metrics,
    )


def _baseline_answers(queries: list[str], golds: list[list[str]], batch_size: int) -> _Answers:
    from keyword_extractor.text.baselines import KiwiNounPhraseBaseline

    baseline = KiwiNounPhraseBaseline()
    predictions, latency = _timed_batches(queries, batch_size, baseline.extract_batch)
    return _Answers(predictions, score(golds, predictions, queries).as_dict(), latency, batch_size)


def _rows(
    queries: list[str], golds: list[list[str]], lines: list[int], model: _Answers | None, baseline: _Answers | None
) -> list[dict[str, Any]]:
    """predictions.tsv's rows: the question, gold, each answer and its per-row scores, the file line."""
    rows: list[dict[str, Any]] = []
    for index, (query, gold) in enumerate(zip(queries, golds, strict=True)):
        row: dict[str, Any] = {"query": query, "gold": format_keywords(gold)}
        if model is not None:
            row["predicted"] = format_keywords(model.predictions[index])
        if baseline is not None:
            row["baseline"] = format_keywords(baseline.predictions[index])
        if model is not None:
            row.update(_row_scores("model", gold, model.predictions[index]))
        if baseline is not None:
            row.update(_row_scores("baseline", gold, baseline.predictions[index]))
        row["line"] = lines[index]
        rows.append(row)
    return rows


def evaluate(
    test_path: str | Path,
    output_dir: str | Path,
    model_dir: str | Path | None = None,
    *,
    include_baseline: bool = True,
    batch_size: int | None = None,
    device: str | None = None,
) -> EvaluationResult:
    """Score the model (and the Kiwi baseline) on every test question and write the outputs.

    `model_dir=None` evaluates the baseline alone. `batch_size` defaults to the model's
    `keyword_extractor.json`; the baseline uses the same batches. Latency: each batch is timed
    (wall clock, after one untimed warm-up batch) and its time shared equally by its questions,
    so p50/p95 are *amortised batch latency* per question, the cost that throughput planning
    needs, not the latency of a single request (`metrics.latency_summary`).

    Raises FileNotFoundError when `model_dir` is not a model directory, `tsv.DataFileError` when
    the test file is missing or malformed, both before any model is loaded.
    """
    if model_dir is None and not include_baseline:
        raise ValueError("nothing to evaluate: no model_dir and include_baseline=False")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    queries, golds, lines, digest = load_test_set(test_path)
    if model_dir is not None:
        model_dir = check_model_dir(model_dir, verify_digests=False)  # KeywordExtractor verifies them on load

    model = _model_answers(model_dir, queries, golds, batch_size, device) if model_dir is not None else None
    batch_size = model.batch_size if model is not None else batch_size
    baseline = _baseline_answers(queries, golds, batch_size or DEFAULT_BATCH_SIZE) if include_baseline else None
    beats = (
        model is not None
        and baseline is not None
        and model.metrics["f1"] > baseline.metrics["f1"]
        and not math.isclose(model.metrics["f1"], baseline.metrics["f1"])
    )
    result = EvaluationResult(
        model_metrics=model.metrics if model else None,
        baseline_metrics=baseline.metrics if baseline else None,
        latency=model.latency if model else None,
        baseline_latency=baseline.latency if baseline else None,
        paths={},
        test_path=str(Path(test_path).resolve()),
        test_digest=digest,
        n=len(queries),
        model_dir=str(Path(model_dir).resolve()) if model_dir is not None else None,
        batch_size=batch_size,
        device=model.device if model else None,
        precision=model.precision if model else None,
        beats_baseline=bool(beats),
        rows=_rows(queries, golds, lines, model, baseline),
        seq2seq_metrics=model.seq2seq_metrics if model else None,
    )
    write_outputs(result, output_dir)
    return result


# --- CLI -------------------------------------------------------------------------------------


if __name__ == "__main__":  # the command line lives in keyword_extractor.evaluation.cli
    from keyword_extractor.evaluation.cli import main

    raise SystemExit(main())
