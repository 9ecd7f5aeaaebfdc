"""Step 3, evaluate: outputs, one metric definition, baseline-only mode, CLI and the Prefect task.

Evaluation runs on the first 40 questions of data/test.tsv with the briefly trained tiny model, so
the numbers say nothing about quality; the tests check that they are computed and written right.
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keyword_extractor.common.results import EvaluationResult
from keyword_extractor.data.tsv import DataFileError, load_pairs
from keyword_extractor.evaluation.evaluate import _timed_batches, evaluate, load_test_set
from keyword_extractor.evaluation.report import (
    CHART_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    REPORT_FILE,
    WORST_SHOWN,
    headline_rows,
)
from keyword_extractor.text.keywords import parse_keywords
from keyword_extractor.text.metrics import row_scores, score
from tests.conftest import TEST_TSV, prefect_env, run_module

N_ROWS = 40
TINY_ROWS = 8
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODEL_COLUMNS = [
    "query",
    "gold",
    "predicted",
    "baseline",
    "model_precision",
    "model_recall",
    "model_f1",
    "baseline_precision",
    "baseline_recall",
    "baseline_f1",
    "line",
]


def head_of_test_file(folder: Path, rows: int) -> Path:
    """The header and the first rows of the real test file: real questions, a fraction of the time."""
    path = folder / f"test-{rows}.tsv"
    lines = TEST_TSV.read_text(encoding="utf-8").split("\n")
    path.write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def small_test(tmp_path_factory) -> Path:
    """40 rows: enough for every keyword-count and length bucket and for a worst-20 list."""
    return head_of_test_file(tmp_path_factory.mktemp("data"), N_ROWS)


@pytest.fixture(scope="module")
def tiny_test(tmp_path_factory) -> Path:
    """8 rows, for tests about the CLI and Prefect wiring rather than about the numbers."""
    return head_of_test_file(tmp_path_factory.mktemp("data"), TINY_ROWS)


@pytest.fixture(scope="module")
def evaluation(tiny_model_dir, small_test, tmp_path_factory) -> EvaluationResult:
    return evaluate(small_test, tmp_path_factory.mktemp("evaluation") / "out", tiny_model_dir, batch_size=16)


def read_predictions(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """predictions.tsv as the project reads TSV: split on tabs, no quoting."""
    header, *lines = Path(path).read_text(encoding="utf-8").rstrip("\n").split("\n")
    columns = header.split("\t")
    return columns, [dict(zip(columns, line.split("\t"), strict=True)) for line in lines]


def test_predictions_have_one_row_per_test_question(evaluation, small_test):
    columns, rows = read_predictions(evaluation.paths["predictions"])
    assert columns == MODEL_COLUMNS
    test = load_pairs(small_test)
    assert len(rows) == len(test) == N_ROWS
    assert [row["query"] for row in rows] == test["query"].tolist()
    assert [int(row["line"]) for row in rows] == test["line"].tolist()
    for row in rows:
        for system in ("model", "baseline"):
            assert 0.0 <= float(row[f"{system}_f1"]) <= 1.0


def test_metrics_json_holds_model_baseline_latency_and_test_digest(evaluation, small_test):
    saved = json.loads(Path(evaluation.paths["metrics"]).read_text(encoding="utf-8"))
    assert {"model", "baseline", "latency", "baseline_latency", "test_digest", "n", "beats_baseline"} <= set(saved)
    assert saved["n"] == evaluation.n == N_ROWS
    assert saved["test_digest"] == evaluation.test_digest == hashlib.sha256(small_test.read_bytes()).hexdigest()
    assert saved["model"] == evaluation.model_metrics and saved["baseline"] == evaluation.baseline_metrics
    for key in ("f1", "precision", "recall", "macro_f1", "exact_match", "grounded_rate", "empty_prediction_rate"):
        assert 0.0 <= saved["model"][key] <= 1.0, key
    latency = saved["latency"]
    assert latency["n_questions"] == N_ROWS and 0 < latency["p50_ms"] <= latency["p95_ms"]
    assert latency["throughput_qps"] > 0
    assert saved["beats_baseline"] == (saved["model"]["f1"] > saved["baseline"]["f1"])


def test_model_metrics_equal_score_recomputed_from_predictions(evaluation):
    """One definition, no drift: what metrics.json says is what metrics.score makes of predictions.tsv."""
    _, rows = read_predictions(evaluation.paths["predictions"])
    saved = json.loads(Path(evaluation.paths["metrics"]).read_text(encoding="utf-8"))
    queries = [row["query"] for row in rows]
    golds = [parse_keywords(row["gold"]) for row in rows]
    for system, column in (("model", "predicted"), ("baseline", "baseline")):
        preds = [parse_keywords(row[column]) for row in rows]
        assert score(golds, preds, queries).as_dict() == saved[system], system
        for row, gold, pred in zip(rows, golds, preds, strict=True):
            written = tuple(float(row[f"{system}_{name}"]) for name in ("precision", "recall", "f1"))
            assert written == pytest.approx(row_scores(gold, pred), abs=1e-6)


def test_report_and_metrics_say_which_precision_ran_and_why(evaluation):
    precision = evaluation.precision
    assert precision["requested"] == "auto" and precision["effective"] in ("off", "int8") and precision["reason"]
    report = Path(evaluation.paths["report"]).read_text(encoding="utf-8")
    effective = "fp32" if precision["effective"] == "off" else "int8"
    assert f"- precision: {effective} (requested auto): {precision['reason']}" in report
    assert json.loads(Path(evaluation.paths["metrics"]).read_text())["precision"] == precision


def test_report_has_every_section_and_the_worst_questions(evaluation):
    report = Path(evaluation.paths["report"]).read_text(encoding="utf-8")
    for section in (
        "## Headline",
        "## F1 by number of gold keywords",
        "## F1 by question length (characters)",
        f"## Worst {WORST_SHOWN} questions by model F1",
        f"## Worst {WORST_SHOWN} questions by baseline F1",
        "## F1 by domain (customs vs general",
        "| customs |",
        "| general |",
        f"]({CHART_FILE})",
    ):
        assert section in report, section
    for label in (
        "| F1 |",
        "| macro F1 |",
        "| exact match |",
        "| grounded rate |",
        "| empty rate |",
        "| mean keywords |",
        "| p50 ms/question |",
        "| p95 ms/question |",
        "| throughput q/s |",
    ):
        assert label in report, label
    for bucket in ("| 1 |", "| 2 |", "| 5 |", "| 6+ |", "| ≤15 |", "| 16–30 |", "| 31–45 |", "| >45 |"):
        assert bucket in report, bucket
    for system in ("model", "baseline"):
        section = report.split(f"## Worst {WORST_SHOWN} questions by {system} F1")[1].strip().split("\n\n")[0]
        worst = section.splitlines()[2:]
        assert len(worst) == WORST_SHOWN
        f1s = [float(line.split(" | ")[1]) for line in worst]
        assert f1s == sorted(f1s)


def test_chart_is_a_png(evaluation):
    data = Path(evaluation.paths["chart"]).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000


def test_outputs_are_complete_and_no_temp_files_are_left(evaluation):
    folder = Path(evaluation.paths["report"]).parent
    assert sorted(p.name for p in folder.iterdir()) == sorted([PREDICTIONS_FILE, METRICS_FILE, REPORT_FILE, CHART_FILE])
    assert sorted(evaluation.files) == sorted(
        str(folder / name) for name in (PREDICTIONS_FILE, METRICS_FILE, REPORT_FILE, CHART_FILE)
    )


def test_baseline_only_mode(small_test, evaluation, tmp_path):
    result = evaluate(small_test, tmp_path / "out", None)
    assert result.model_metrics is None and result.latency is None and not result.beats_baseline
    assert result.baseline_metrics == evaluation.baseline_metrics  # deterministic, independent of the model
    columns, rows = read_predictions(result.paths["predictions"])
    assert columns == ["query", "gold", "baseline", "baseline_precision", "baseline_recall", "baseline_f1", "line"]
    assert len(rows) == N_ROWS
    report = Path(result.paths["report"]).read_text(encoding="utf-8")
    assert "model: none (baseline only)" in report and f"## Worst {WORST_SHOWN} questions by baseline F1" in report
    assert Path(result.paths["chart"]).read_bytes().startswith(PNG_MAGIC)
    assert [row["system"] for row in headline_rows(result)] == ["baseline"]


def test_bad_inputs_fail_before_anything_is_loaded(small_test, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a keyword model directory: missing keyword_extractor.json"):
        evaluate(small_test, tmp_path / "out", tmp_path)
    with pytest.raises(DataFileError, match="file not found"):
        evaluate(tmp_path / "missing.tsv", tmp_path / "out")
    (tmp_path / "empty.tsv").write_text("query\tkeyword\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="no data rows"):
        evaluate(tmp_path / "empty.tsv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_timed_batches_keep_input_order_and_count_every_question():
    questions = ["긴 질문입니다 정말로", "짧다", "중간 길이", "가", "조금 더 긴 질문"]
    preds, latency = _timed_batches(questions, 2, lambda chunk: [[q] for q in chunk])
    assert preds == [[q] for q in questions]
    assert latency["n_questions"] == len(questions)


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_prints_the_headline_table(tiny_model_dir, tiny_test, tmp_path):
    done = run_module(
        "keyword_extractor.evaluation",
        "--model-dir",
        str(tiny_model_dir),
        "--test",
        str(tiny_test),
        "--output-dir",
        str(tmp_path / "out"),
        "--batch-size",
        "16",
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split() == ["metric", "model", "baseline"]
    for label in ("F1", "precision", "recall", "macro F1", "exact match", "p50 ms/question", "throughput q/s"):
        assert any(line.startswith(label + " ") for line in lines), label
    assert f"evaluated {TINY_ROWS} questions" in done.stdout
    assert (tmp_path / "out" / METRICS_FILE).is_file()


def test_cli_exits_2_on_a_directory_that_is_not_a_model(small_test, tmp_path):
    done = run_module(
        "keyword_extractor.evaluation",
        "--model-dir",
        str(tmp_path),
        "--test",
        str(small_test),
        "--output-dir",
        str(tmp_path / "out"),
        timeout=120,
    )
    assert done.returncode == 2
    assert f"error: {tmp_path} is not a keyword model directory" in done.stderr
    assert not (tmp_path / "out").exists()


def test_cli_exits_2_on_a_bad_test_file(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("question\tkeywords\n면세한도는?\t면세한도\n", encoding="utf-8")
    done = run_module(
        "keyword_extractor.evaluation",
        "--model-dir",
        str(tiny_model_dir),
        "--test",
        str(bad),
        "--output-dir",
        str(tmp_path / "out"),
        timeout=120,
    )
    assert done.returncode == 2
    assert "missing column 'query'" in done.stderr


def test_cli_help_explains_the_options():
    done = run_module("keyword_extractor.evaluation", "--help", timeout=120)
    assert done.returncode == 0
    for option in ("--model-dir", "--test", "--output-dir", "--baseline-only", "--batch-size"):
        assert option in done.stdout


# --- the Prefect task (real Prefect, temporary local API, own PREFECT_HOME) --------------------------------

TASK_SCRIPT = textwrap.dedent("""
    import json, sys
    from prefect import flow
    from prefect.client.orchestration import get_client
    from tasks.evaluate import evaluate_model

    @flow
    def evaluate_flow(test, model_dir):
        return evaluate_model(test, "out", model_dir, batch_size=16)

    result = evaluate_flow(sys.argv[1], sys.argv[2])
    with get_client(sync_client=True) as client:
        artifacts = {a.key: [a.type, a.data] for a in client.read_artifacts() if a.key}
    print("OUTCOME " + json.dumps({"result": result.model_dump(), "files": result.files, "artifacts": artifacts},
                                  ensure_ascii=False))
""")


@pytest.mark.slow  # starts a temporary Prefect API: ~30-60 s; deselect with -m "not slow"
def test_prefect_task_publishes_the_report_and_headline(tiny_model_dir, tiny_test, tmp_path):
    (tmp_path / "run_task.py").write_text(TASK_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "run_task.py", str(tiny_test), str(tiny_model_dir)],
        cwd=tmp_path,
        env=prefect_env(tmp_path / "prefect-home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("OUTCOME ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    outcome = json.loads(lines[-1].removeprefix("OUTCOME "))
    result = outcome["result"]
    saved = json.loads((tmp_path / "out" / METRICS_FILE).read_text(encoding="utf-8"))
    assert result["f1"] == saved["model"]["f1"] and result["baseline_f1"] == saved["baseline"]["f1"]
    assert result["test_digest"] == saved["test_digest"] and result["n"] == TINY_ROWS
    assert sorted(Path(f).name for f in outcome["files"]) == sorted(
        [PREDICTIONS_FILE, METRICS_FILE, REPORT_FILE, CHART_FILE]
    )
    kind, report = outcome["artifacts"]["evaluation-report"]
    assert kind == "markdown" and report.startswith("# Evaluation") and "## Headline" in report
    kind, table = outcome["artifacts"]["evaluation-headline"]
    rows = json.loads(table) if isinstance(table, str) else table
    assert kind == "table" and [row["system"] for row in rows] == ["model", "baseline"]
    assert rows[0]["f1"] == round(result["f1"], 4)
    assert "model F1" in done.stdout + done.stderr


def test_predictions_tsv_never_carries_a_spreadsheet_formula():
    from keyword_extractor.evaluation.report import _predictions_tsv

    rows = [{"query": '=HYPERLINK("http://x.example") 면세?', "gold": "@SUM(A1)", "predicted": "-2+3", "line": 2}]
    header, line = _predictions_tsv(rows).splitlines()
    assert line.split("\t") == ['\'=HYPERLINK("http://x.example") 면세?', "'@SUM(A1)", "'-2+3", "2"]


def test_a_model_with_a_span_selector_reports_what_each_stage_adds(selected_model_dir, small_test, tmp_path):
    from keyword_extractor.inference.extractor import KeywordExtractor

    result = evaluate(small_test, tmp_path, selected_model_dir)
    queries, golds, _, _ = load_test_set(small_test)
    alone = KeywordExtractor(selected_model_dir).extract(queries, select_spans=False)
    assert result.seq2seq_metrics["f1"] == pytest.approx(score(golds, alone, queries).f1)
    assert json.loads((tmp_path / METRICS_FILE).read_text())["seq2seq_alone"] == result.seq2seq_metrics
    added = result.model_metrics["f1"] - result.seq2seq_metrics["f1"]
    assert f"the span selector adds {added:+.4f}" in (tmp_path / REPORT_FILE).read_text()


def test_outputs_are_written_as_a_set_metrics_last(evaluation, tmp_path, monkeypatch):
    """A failed write left a new predictions.tsv beside the old metrics.json, which looked like one set."""
    from keyword_extractor.evaluation import report

    out = tmp_path / "out"
    report.write_outputs(copy.copy(evaluation), out)
    old = {path.name: path.read_bytes() for path in out.iterdir()}

    def broken_chart(result):
        raise RuntimeError("chart renderer failed")

    monkeypatch.setattr(report, "render_chart", broken_chart)
    with pytest.raises(RuntimeError):
        report.write_outputs(copy.copy(evaluation), out)
    assert {path.name: path.read_bytes() for path in out.iterdir()} == old  # nothing rendered: nothing touched
    monkeypatch.undo()

    real_write = report.write_atomic

    def disk_full_at_the_report(path, data):
        if Path(path).name == report.REPORT_FILE:
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(report, "write_atomic", disk_full_at_the_report)
    with pytest.raises(OSError):
        report.write_outputs(copy.copy(evaluation), out)
    assert not (out / report.METRICS_FILE).exists()  # the set is visibly incomplete, not old metrics beside new rows
