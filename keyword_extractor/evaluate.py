"""Step 3 of the pipeline: score a model on the held-out test file, next to the Kiwi baseline.

The model runs through `KeywordExtractor` (the same path the service uses) and is scored with
`metrics.score` (the one metric definition), so the numbers here are the numbers everywhere.
Outputs, each written atomically (temp file + os.replace) so a reader never sees half a file:

- `predictions.tsv`: one row per test question: gold, model and baseline keywords, per-row P/R/F1;
- `metrics.json`: model and baseline scores, latency, the test file's sha256 and size;
- `report.md`: headline table, F1 by number of gold keywords, by question length and by domain, the worst
  questions of the model and of the baseline;
- `f1_chart.png`: precision / recall / F1 / exact match, model vs baseline.

    python -m keyword_extractor.evaluate --model-dir artifacts/runs/RUN/train/model --test data/test.tsv
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keyword_extractor.artifact import SETTINGS_FILE
from keyword_extractor.domains import CUSTOMS, GENERAL, domain_of
from keyword_extractor.files import markdown_cell, positive_int, spreadsheet_cell, write_atomic
from keyword_extractor.keywords import clean_keywords, format_keywords, normalize, parse_keywords
from keyword_extractor.metrics import latency_summary, row_scores, score
from keyword_extractor.tsv import DataFileError, Problem, load_pairs, parse_tsv

PREDICTIONS_FILE = "predictions.tsv"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
CHART_FILE = "f1_chart.png"
DEFAULT_OUTPUT_DIR = Path("artifacts/evaluation")
WORST_SHOWN = 20
# Upper bounds (inclusive) of the question-length buckets, in characters of the normalised question.
LENGTH_BUCKETS = (15, 30, 45)
MAX_KEYWORD_BUCKET = 6  # gold-keyword buckets 1..5 and "6+"
_WARMUP_QUESTIONS = 4

# (label, key in the metrics dict, key in the latency dict): the headline, in the order it is shown.
_HEADLINE_SCORES = (
    ("F1", "f1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("macro F1", "macro_f1"),
    ("exact match", "exact_match"),
    ("grounded rate", "grounded_rate"),
    ("empty rate", "empty_prediction_rate"),
    ("mean keywords", "mean_predicted"),
)
_HEADLINE_LATENCY = (
    ("p50 ms/question", "p50_ms"),
    ("p95 ms/question", "p95_ms"),
    ("throughput q/s", "throughput_qps"),
)


@dataclass
class EvaluationResult:
    """What later steps need: scores, latency, where the outputs are, and which test set was used.

    `model_metrics` / `latency` are None in baseline-only mode; `baseline_metrics` /
    `baseline_latency` are None with `include_baseline=False`. Latencies are amortised batch
    latencies per question (see `evaluate`).
    """

    model_metrics: dict[str, float] | None
    baseline_metrics: dict[str, float] | None
    latency: dict[str, float] | None
    baseline_latency: dict[str, float] | None
    paths: dict[str, str]
    test_path: str
    test_digest: str
    n: int
    model_dir: str | None = None
    batch_size: int | None = None
    device: str | None = None
    beats_baseline: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # the seq2seq model's own answers (no span selector), when the model has a selector: what each stage adds
    seq2seq_metrics: dict[str, float] | None = None

    @property
    def files(self) -> list[str]:
        """Every output file, for logging them as artifacts (MLflow)."""
        return list(self.paths.values())

    def headline(self) -> list[dict[str, Any]]:
        """One row per system (model, baseline) with the headline scores and latency."""
        rows = []
        for system, metrics, latency in (
            ("model", self.model_metrics, self.latency),
            ("baseline", self.baseline_metrics, self.baseline_latency),
        ):
            if metrics is None:
                continue
            row: dict[str, Any] = {"system": system}
            row.update({key: _rounded(metrics.get(key)) for _, key in _HEADLINE_SCORES})
            row.update({key: _rounded((latency or {}).get(key)) for _, key in _HEADLINE_LATENCY})
            rows.append(row)
        return rows

    def headline_text(self) -> str:
        """The headline as a plain-text table (metric rows, one column per system) for a terminal."""
        header, body = self._headline_grid()
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
            for line in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * width for width in widths))
        return "\n".join(line.rstrip() for line in lines)

    def headline_markdown(self) -> str:
        """The headline as a Markdown table."""
        header, body = self._headline_grid()
        lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
        lines += ["| " + " | ".join(line) + " |" for line in body]
        return "\n".join(lines)

    def _headline_grid(self) -> tuple[list[str], list[list[str]]]:
        systems = [
            (name, metrics, latency or {})
            for name, metrics, latency in (
                ("model", self.model_metrics, self.latency),
                ("baseline", self.baseline_metrics, self.baseline_latency),
            )
            if metrics is not None
        ]
        header = ["metric"] + [name for name, _, _ in systems]
        body = [[label] + [_fmt(metrics.get(key)) for _, metrics, _ in systems] for label, key in _HEADLINE_SCORES]
        body += [
            [label] + [_fmt(latency.get(key), digits=1) for _, _, latency in systems]
            for label, key in _HEADLINE_LATENCY
        ]
        return header, body


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# --- inputs ----------------------------------------------------------------------------------


def check_model_dir(model_dir: str | Path) -> Path:
    """Fail early, with a message that says what is missing, before loading anything heavy."""
    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a model directory: no such directory")
    missing = [name for name in (SETTINGS_FILE, "config.json") if not (path / name).is_file()]
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
    if not any((path / name).is_file() for name in weights):
        missing.append("model.safetensors")
    if missing:
        raise FileNotFoundError(
            f"{path} is not a keyword model directory: missing {', '.join(missing)} "
            "(a training run writes one to <run>/train/model; `python -m keyword_extractor.export` converts a .ckpt)"
        )
    return path


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


# --- outputs ---------------------------------------------------------------------------------


def _tsv_cell(value: Any) -> str:
    """Numbers as written; text on one line, tab-free, and never run as a formula when opened in a spreadsheet."""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, int):
        return str(value)
    return spreadsheet_cell(str(value).replace("\t", " ").replace("\r", " ").replace("\n", " "))


def _predictions_tsv(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(_tsv_cell(row[name]) for name in columns) for row in rows]
    return "\n".join(lines) + "\n"


def _bucket_table(
    title: str,
    label: str,
    buckets: list[tuple[str, list[int]]],
    golds: list[list[str]],
    queries: list[str],
    systems: list[tuple[str, list[list[str]]]],
) -> list[str]:
    """Micro F1 (metrics.score) of each system on each bucket of questions; '—' for an empty bucket."""
    lines = [f"## {title}", "", f"| {label} | questions | " + " | ".join(f"{n} F1" for n, _ in systems) + " |"]
    lines.append("|---|---:|" + "---:|" * len(systems))
    for name, indices in buckets:
        cells = [name, str(len(indices))]
        for _, preds in systems:
            if indices:
                scores = score([golds[i] for i in indices], [preds[i] for i in indices], [queries[i] for i in indices])
                cells.append(f"{scores.f1:.4f}")
            else:
                cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _keyword_count_buckets(golds: list[list[str]]) -> list[tuple[str, list[int]]]:
    buckets: list[tuple[str, list[int]]] = []
    if any(not gold for gold in golds):
        buckets.append(("0", [i for i, gold in enumerate(golds) if not gold]))
    for count in range(1, MAX_KEYWORD_BUCKET):
        buckets.append((str(count), [i for i, gold in enumerate(golds) if len(gold) == count]))
    buckets.append((f"{MAX_KEYWORD_BUCKET}+", [i for i, gold in enumerate(golds) if len(gold) >= MAX_KEYWORD_BUCKET]))
    return buckets


def _length_buckets(queries: list[str]) -> list[tuple[str, list[int]]]:
    lengths = [len(normalize(query)) for query in queries]
    buckets: list[tuple[str, list[int]]] = []
    low = 0
    for high in LENGTH_BUCKETS:
        name = f"≤{high}" if low == 0 else f"{low}–{high}"
        buckets.append((name, [i for i, n in enumerate(lengths) if low <= n <= high]))
        low = high + 1
    buckets.append((f">{LENGTH_BUCKETS[-1]}", [i for i, n in enumerate(lengths) if n > LENGTH_BUCKETS[-1]]))
    return buckets


def _domain_buckets(queries: list[str]) -> list[tuple[str, list[int]]]:
    domains = [domain_of(query) for query in queries]
    return [(name, [i for i, domain in enumerate(domains) if domain == name]) for name in (CUSTOMS, GENERAL)]


def render_report(result: EvaluationResult, chart_ref: str | None = CHART_FILE) -> str:
    """The Markdown report; `chart_ref` is how the chart is linked (relative to the report by default)."""
    rows = result.rows
    queries = [row["query"] for row in rows]
    golds = [clean_keywords(parse_keywords(row["gold"])) for row in rows]
    systems: list[tuple[str, list[list[str]]]] = []
    if result.model_metrics is not None:
        systems.append(("model", [parse_keywords(row["predicted"]) for row in rows]))
    if result.baseline_metrics is not None:
        systems.append(("baseline", [parse_keywords(row["baseline"]) for row in rows]))
    lines = ["# Evaluation", ""]
    lines += [
        f"- test file: `{result.test_path}` ({result.n} questions, sha256 `{result.test_digest}`)",
        f"- model: `{result.model_dir}`" if result.model_dir else "- model: none (baseline only)",
    ]
    if result.model_dir:
        lines.append(f"- device: {result.device}, batch size {result.batch_size}")
    if result.model_metrics is not None and result.baseline_metrics is not None:
        delta = result.model_metrics["f1"] - result.baseline_metrics["f1"]
        verdict = "beats" if result.beats_baseline else "does not beat"
        lines.append(f"- the model **{verdict}** the Kiwi noun-phrase baseline: F1 {delta:+.4f}")
    if result.seq2seq_metrics is not None and result.model_metrics is not None:
        alone = result.seq2seq_metrics["f1"]
        lines.append(
            f"- the seq2seq model alone (without its span selector): F1 {alone:.4f}; "
            f"the span selector adds {result.model_metrics['f1'] - alone:+.4f}"
        )
    lines += ["", "## Headline", "", result.headline_markdown(), ""]
    lines += [
        "F1 / precision / recall are micro (over all keywords); macro F1 is the mean per-question F1. "
        "Latency is the amortised batch latency per question (batch time / batch size), not what one "
        "user waits for alone; see `metrics.json` for means and totals.",
        "",
    ]
    if chart_ref:
        lines += ["![precision, recall, F1 and exact match: model vs baseline](" + chart_ref + ")", ""]
    lines += _bucket_table(
        "F1 by number of gold keywords", "gold keywords", _keyword_count_buckets(golds), golds, queries, systems
    )
    lines += _bucket_table(
        "F1 by question length (characters)", "length", _length_buckets(queries), golds, queries, systems
    )
    lines += _bucket_table(
        "F1 by domain (customs vs general, told from the question's terms: keyword_extractor.domains)",
        "domain",
        _domain_buckets(queries),
        golds,
        queries,
        systems,
    )
    for ranked_by, _ in systems:  # the model's worst questions, then the baseline's: where each one fails
        lines += _worst_table(rows, ranked_by, systems)
    return "\n".join(lines) + "\n"


def _worst_table(rows: list[dict[str, Any]], ranked_by: str, systems: list[tuple[str, list[list[str]]]]) -> list[str]:
    f1_key = f"{ranked_by}_f1"
    worst = sorted(range(len(rows)), key=lambda i: (rows[i][f1_key], rows[i]["line"]))[:WORST_SHOWN]
    lines = [f"## Worst {len(worst)} questions by {ranked_by} F1", ""]
    header = ["line", f"{ranked_by} F1", "query", "gold"] + [f"{name}" for name, _ in systems]
    lines += ["| " + " | ".join(header) + " |", "|---:|---:|" + "---|" * (len(header) - 2)]
    for i in worst:
        row = rows[i]
        cells = [str(row["line"]), f"{row[f1_key]:.2f}", markdown_cell(row["query"]), markdown_cell(row["gold"])]
        cells += [markdown_cell(row["predicted" if name == "model" else "baseline"]) or "∅" for name, _ in systems]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def render_chart(result: EvaluationResult) -> bytes:
    """PNG bar chart of precision / recall / F1 / exact match per system (ASCII labels only)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = ["precision", "recall", "F1", "exact match"]
    keys = ["precision", "recall", "f1", "exact_match"]
    systems = [
        (name, metrics, color)
        for name, metrics, color in (
            ("model", result.model_metrics, "#1f77b4"),
            ("Kiwi baseline", result.baseline_metrics, "#aaaaaa"),
        )
        if metrics is not None
    ]
    figure = Figure(figsize=(7, 4), dpi=100)
    axes = figure.subplots()
    width = 0.8 / len(systems)
    for offset, (name, metrics, color) in enumerate(systems):
        positions = [i + (offset - (len(systems) - 1) / 2) * width for i in range(len(keys))]
        values = [metrics[key] for key in keys]
        bars = axes.bar(positions, values, width, label=name, color=color)
        axes.bar_label(bars, labels=[f"{v:.3f}" for v in values], fontsize=8, padding=2)
    axes.set_xticks(range(len(keys)), labels)
    axes.set_ylim(0, 1.2)  # room above a perfect score for its label and the legend
    axes.set_ylabel("score")
    axes.set_title(f"Keyword extraction on {result.n} test questions")
    axes.legend(loc="upper center", ncols=len(systems), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _metrics_json(result: EvaluationResult) -> dict[str, Any]:
    return {
        "test_path": result.test_path,
        "test_digest": result.test_digest,
        "n": result.n,
        "model_dir": result.model_dir,
        "device": result.device,
        "batch_size": result.batch_size,
        "model": result.model_metrics,
        "baseline": result.baseline_metrics,
        "seq2seq_alone": result.seq2seq_metrics,
        "latency": result.latency,
        "baseline_latency": result.baseline_latency,
        "latency_note": "amortised batch latency per question: batch wall time / batch size",
        "beats_baseline": result.beats_baseline,
    }


def write_outputs(result: EvaluationResult, output_dir: str | Path) -> dict[str, str]:
    """Write the four outputs under output_dir; return their paths by name."""
    output = Path(output_dir)
    paths = {
        "predictions": output / PREDICTIONS_FILE,
        "metrics": output / METRICS_FILE,
        "report": output / REPORT_FILE,
        "chart": output / CHART_FILE,
    }
    result.paths = {name: str(path) for name, path in paths.items()}
    write_atomic(paths["predictions"], _predictions_tsv(result.rows).encode("utf-8"))
    write_atomic(paths["chart"], render_chart(result))
    write_atomic(paths["report"], render_report(result).encode("utf-8"))
    metrics_text = json.dumps(_metrics_json(result), ensure_ascii=False, indent=2) + "\n"
    write_atomic(paths["metrics"], metrics_text.encode("utf-8"))  # last: its presence means the set is complete
    return result.paths


# --- the step --------------------------------------------------------------------------------


def _row_scores(prefix: str, gold: list[str], pred: list[str]) -> dict[str, float]:
    precision, recall, f1 = row_scores(gold, pred)
    return {f"{prefix}_precision": precision, f"{prefix}_recall": recall, f"{prefix}_f1": f1}


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
        model_dir = check_model_dir(model_dir)

    model_preds = baseline_preds = None
    model_metrics = baseline_metrics = latency = baseline_latency = seq2seq_metrics = None
    device_name = None
    if model_dir is not None:
        from keyword_extractor.inference import KeywordExtractor  # torch: only when a model is evaluated

        extractor = KeywordExtractor(model_dir, device=device)
        batch_size = batch_size or extractor.settings.batch_size
        device_name = str(extractor.device)
        model_preds, latency = _timed_batches(
            queries, batch_size, lambda chunk: extractor.extract(chunk, batch_size=len(chunk))
        )
        model_metrics = score(golds, model_preds, queries).as_dict()
        if extractor.selector is not None:
            seq2seq_preds = extractor.extract(queries, batch_size=batch_size, select_spans=False)
            seq2seq_metrics = score(golds, seq2seq_preds, queries).as_dict()
    if include_baseline:
        from keyword_extractor.baselines import KiwiNounPhraseBaseline

        baseline = KiwiNounPhraseBaseline()
        baseline_preds, baseline_latency = _timed_batches(queries, batch_size or 32, baseline.extract_batch)
        baseline_metrics = score(golds, baseline_preds, queries).as_dict()

    rows: list[dict[str, Any]] = []
    for index, (query, gold) in enumerate(zip(queries, golds, strict=True)):
        row: dict[str, Any] = {"query": query, "gold": format_keywords(gold)}
        if model_preds is not None:
            row["predicted"] = format_keywords(model_preds[index])
        if baseline_preds is not None:
            row["baseline"] = format_keywords(baseline_preds[index])
        if model_preds is not None:
            row.update(_row_scores("model", gold, model_preds[index]))
        if baseline_preds is not None:
            row.update(_row_scores("baseline", gold, baseline_preds[index]))
        row["line"] = lines[index]
        rows.append(row)

    beats = (
        model_metrics is not None
        and baseline_metrics is not None
        and model_metrics["f1"] > baseline_metrics["f1"]
        and not math.isclose(model_metrics["f1"], baseline_metrics["f1"])
    )
    result = EvaluationResult(
        model_metrics=model_metrics,
        baseline_metrics=baseline_metrics,
        latency=latency,
        baseline_latency=baseline_latency,
        paths={},
        test_path=str(Path(test_path).resolve()),
        test_digest=digest,
        n=len(queries),
        model_dir=str(Path(model_dir).resolve()) if model_dir is not None else None,
        batch_size=batch_size,
        device=device_name,
        beats_baseline=bool(beats),
        rows=rows,
        seq2seq_metrics=seq2seq_metrics,
    )
    write_outputs(result, output_dir)
    return result


# --- CLI -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keyword_extractor.evaluate",
        description="Score a keyword model on a held-out TSV next to the Kiwi noun-phrase baseline. Writes "
        f"{PREDICTIONS_FILE}, {METRICS_FILE}, {REPORT_FILE} and {CHART_FILE}; prints the headline table. "
        "Exits 2 when the model directory or the test file cannot be used.",
    )
    parser.add_argument("--model-dir", type=Path, help="model directory (with keyword_extractor.json) to evaluate")
    parser.add_argument("--test", required=True, type=Path, help="held-out file, UTF-8 'query<TAB>keyword' TSV")
    parser.add_argument(
        "--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="folder for the outputs (default: %(default)s)"
    )
    parser.add_argument("--baseline-only", action="store_true", help="evaluate only the Kiwi baseline, no model")
    parser.add_argument(
        "--batch-size", type=positive_int, help="questions per generation batch (default: the model's setting)"
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI: evaluate, print the headline table; exit 2 on a bad model directory or test file."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.baseline_only and args.model_dir:
        parser.error("--baseline-only evaluates no model; drop --model-dir or --baseline-only")
    if not args.baseline_only and not args.model_dir:
        parser.error("--model-dir is required (or --baseline-only)")
    try:
        result = evaluate(
            args.test,
            args.output_dir,
            None if args.baseline_only else args.model_dir,
            batch_size=args.batch_size,
            device=args.device,
        )
    except (FileNotFoundError, DataFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"evaluated {result.n} questions from {result.test_path} (sha256 {result.test_digest[:12]})")
    print(result.headline_text())
    print(f"outputs: {Path(result.paths['report']).parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
