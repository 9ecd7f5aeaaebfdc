"""The evaluation's outputs: headline tables, the Markdown report, the chart, predictions.tsv, metrics.json.

Rendering only: the numbers come from `evaluate.evaluate` (scored by `metrics.score`), held in
`results.EvaluationResult`. Every file is written atomically, so a reader never sees half of one.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from keyword_extractor.common.files import markdown_cell, spreadsheet_cell, write_atomic
from keyword_extractor.common.results import EvaluationResult
from keyword_extractor.text.domains import CUSTOMS, GENERAL, domain_of
from keyword_extractor.text.keywords import clean_keywords, normalize, parse_keywords
from keyword_extractor.text.metrics import score

PREDICTIONS_FILE = "predictions.tsv"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
CHART_FILE = "f1_chart.png"
DEFAULT_OUTPUT_DIR = Path("artifacts/evaluation")
WORST_SHOWN = 20
# Upper bounds (inclusive) of the question-length buckets, in characters of the normalised question.
LENGTH_BUCKETS = (15, 30, 45)
MAX_KEYWORD_BUCKET = 6  # gold-keyword buckets 1..5 and "6+"
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


def headline_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """One row per system (model, baseline) with the headline scores and latency."""
    rows = []
    for system, metrics, latency in (
        ("model", result.model_metrics, result.latency),
        ("baseline", result.baseline_metrics, result.baseline_latency),
    ):
        if metrics is None:
            continue
        row: dict[str, Any] = {"system": system}
        row.update({key: _rounded(metrics.get(key)) for _, key in _HEADLINE_SCORES})
        row.update({key: _rounded((latency or {}).get(key)) for _, key in _HEADLINE_LATENCY})
        rows.append(row)
    return rows


def headline_text(result: EvaluationResult) -> str:
    """The headline as a plain-text table (metric rows, one column per system) for a terminal."""
    header, body = _headline_grid(result)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line))
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def headline_markdown(result: EvaluationResult) -> str:
    """The headline as a Markdown table."""
    header, body = _headline_grid(result)
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in body]
    return "\n".join(lines)


def _headline_grid(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    systems = [
        (name, metrics, latency or {})
        for name, metrics, latency in (
            ("model", result.model_metrics, result.latency),
            ("baseline", result.baseline_metrics, result.baseline_latency),
        )
        if metrics is not None
    ]
    header = ["metric"] + [name for name, _, _ in systems]
    body = [[label] + [_fmt(metrics.get(key)) for _, metrics, _ in systems] for label, key in _HEADLINE_SCORES]
    body += [
        [label] + [_fmt(latency.get(key), digits=1) for _, _, latency in systems] for label, key in _HEADLINE_LATENCY
    ]
    return header, body


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


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
    if result.precision:
        effective = "fp32" if result.precision["effective"] == "off" else result.precision["effective"]
        lines.append(
            f"- precision: {effective} (requested {result.precision['requested']}): {result.precision['reason']}"
        )
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
    lines += ["", "## Headline", "", headline_markdown(result), ""]
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
        "F1 by domain (customs vs general, told from the question's terms: keyword_extractor.text.domains)",
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
        "precision": result.precision,
        "model": result.model_metrics,
        "baseline": result.baseline_metrics,
        "seq2seq_alone": result.seq2seq_metrics,
        "latency": result.latency,
        "baseline_latency": result.baseline_latency,
        "latency_note": "amortised batch latency per question: batch wall time / batch size",
        "beats_baseline": result.beats_baseline,
    }


def write_outputs(result: EvaluationResult, output_dir: str | Path) -> dict[str, str]:
    """Write the four outputs under output_dir as one set (metrics.json last); return their paths by name."""
    output = Path(output_dir)
    paths = {
        "predictions": output / PREDICTIONS_FILE,
        "metrics": output / METRICS_FILE,
        "report": output / REPORT_FILE,
        "chart": output / CHART_FILE,
    }
    # every output rendered before any is written: a failure while rendering leaves the older set as it was
    payloads = {
        "predictions": _predictions_tsv(result.rows).encode("utf-8"),
        "chart": render_chart(result),
        "report": render_report(result).encode("utf-8"),
        "metrics": (json.dumps(_metrics_json(result), ensure_ascii=False, indent=2) + "\n").encode("utf-8"),
    }
    # metrics.json marks a complete set: the old one goes first, the new one comes last, so a failed write
    # (a full disk) leaves a folder without metrics.json, never new predictions beside old metrics
    paths["metrics"].unlink(missing_ok=True)
    for name in ("predictions", "chart", "report", "metrics"):
        write_atomic(paths[name], payloads[name])
    result.paths = {name: str(path) for name, path in paths.items()}
    return result.paths
