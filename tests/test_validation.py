"""Tests of step 1, validate-data: every malformed file is reported where it must be fixed."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.data.validation import validate
from keyword_extractor.data.validation_report import DataValidationError, ValidationReport

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
GOOD_TEST = "query\tkeyword\n세종대왕이 훈민정음을 반포한 해는 언제인가?\t세종대왕, 훈민정음, 반포\n"
GOOD_TRAIN_ROW = "여행자 휴대품 면세한도는 얼마인가요?\t여행자 휴대품, 면세한도\n"


def write(folder: Path, name: str, content: str | bytes) -> Path:
    """Write exactly these bytes (str is UTF-8, no newline translation)."""
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def run(tmp_path: Path, train: str | bytes, test: str | bytes = GOOD_TEST, **limits: int) -> ValidationReport:
    train_path = write(tmp_path, "train.tsv", train)
    test_path = write(tmp_path, "test.tsv", test)
    return validate(train_path, test_path, tmp_path / "report", **limits)


def only_error(report: ValidationReport):
    assert len(report.errors) == 1, [str(p) for p in report.errors]
    return report.errors[0]


# --- one malformed file, one precise error -------------------------------------------------------------

LONG_QUERY = "가" * 300 + "?"
MALFORMED = {
    "missing-keyword-column": (
        "query\tkw\n질문\t답\n",
        1,
        "keyword",
        "missing column 'keyword' in the header (found 'query', 'kw')",
    ),
    "missing-query-column": ("question\tkeyword\n질문\t답\n", 1, "query", "missing column 'query' in the header"),
    "duplicate-header-column": (
        "query\tkeyword\tquery\n질문\t답\t질문\n",
        1,
        "query",
        "column 'query' appears more than once in the header",
    ),
    "empty-query-cell": (
        "query\tkeyword\n" + GOOD_TRAIN_ROW + "\t면세\n",
        3,
        "query",
        "the query cell is empty or only whitespace",
    ),
    "whitespace-query-cell": (
        "query\tkeyword\n" + GOOD_TRAIN_ROW + "  \u3000 \t면세\n",
        3,
        "query",
        "the query cell is empty or only whitespace",
    ),
    "empty-keyword-cell": (
        "query\tkeyword\n" + GOOD_TRAIN_ROW + "면세한도는?\t\n",
        3,
        "keyword",
        "the keyword cell is empty or only whitespace; write 1 to 6 keywords",
    ),
    "whitespace-keyword-cell": (
        "query\tkeyword\n면세한도는?\t   \n" + GOOD_TRAIN_ROW,
        2,
        "keyword",
        "the keyword cell is empty or only whitespace",
    ),
    "too-many-fields": (
        "query\tkeyword\n" + GOOD_TRAIN_ROW + "면세한도는?\t면세\t한도\n",
        3,
        None,
        "expected 2 tab-separated fields, found 3",
    ),
    "too-few-fields": (
        "query\tkeyword\n" + GOOD_TRAIN_ROW + "면세한도는? 면세\n",
        3,
        None,
        "expected 2 tab-separated fields, found 1",
    ),
    "query-too-long": (
        "query\tkeyword\n" + GOOD_TRAIN_ROW + LONG_QUERY + "\t가\n",
        3,
        "query",
        "the query has 301 characters; at most 300 are allowed",
    ),
    "keyword-list-only-commas": (
        "query\tkeyword\n면세한도는?\t, ,\n",
        2,
        "keyword",
        "the keyword list ', ,' has no keywords",
    ),
    "empty-keyword-item": (
        "query\tkeyword\n면세한도와 관세는?\t면세한도, , 관세\n",
        2,
        "keyword",
        ("the keyword list '면세한도, , 관세' has an empty item (position 2): remove the doubled or trailing comma"),
    ),
    "trailing-comma": (
        "query\tkeyword\n면세한도와 관세는?\t면세한도, 관세,\n",
        2,
        "keyword",
        "has an empty item (position 3)",
    ),
    "too-many-keywords": (
        "query\tkeyword\n가 나 다 라 마 바 사?\t가, 나, 다, 라, 마, 바, 사\n",
        2,
        "keyword",
        "the row has 7 keywords; at most 6 are allowed",
    ),
    "duplicate-query": (
        "query\tkeyword\n" + GOOD_TRAIN_ROW + "다른 질문?\t질문\n" + GOOD_TRAIN_ROW.replace(" ", "  ", 1),
        4,
        "query",
        "duplicate query: the same question is on line 2",
    ),
    "header-only": ("query\tkeyword\n", None, None, "the file has a header but no data rows"),
    "empty-file": (b"", 1, None, "the file is empty; expected a header 'query<TAB>keyword'"),
    "blank-first-line": ("\nquery\tkeyword\n" + GOOD_TRAIN_ROW, 1, None, "the first line is blank"),
    "cp949-encoding": (
        "query\tkeyword\n면세한도는?\t면세한도\n".encode("cp949"),
        2,
        None,
        "not valid UTF-8 (byte offset 14). It decodes as CP949 (EUC-KR)",
    ),
    "utf-16": (
        "query\tkeyword\n면세한도는?\t면세한도\n".encode("utf-16"),
        1,
        None,
        "the file is UTF-16 (it starts with a UTF-16 byte-order mark), not UTF-8",
    ),
    "utf-32": (
        "query\tkeyword\n면세한도는?\t면세한도\n".encode("utf-32"),
        1,
        None,
        "the file is UTF-32 (it starts with a UTF-32 byte-order mark), not UTF-8: re-save it as UTF-8",
    ),
    "comma-separated": (
        'query,keyword\n면세한도는?,"면세한도, 관세"\n',
        1,
        None,
        "the header is 'query,keyword': the file looks comma-separated; this project reads tab-separated files",
    ),
    "semicolon-separated": ("query;keyword\n면세한도는?;면세한도\n", 1, None, "the file looks semicolon-separated"),
    "cr-only-line-endings": (
        "query\tkeyword\r면세한도는?\t면세한도\r",
        1,
        None,
        "the lines end in CR only (old Mac line endings), so the file reads as one line",
    ),
    "unknown-encoding": (
        b"query\tkeyword\n\xff\xff\tx\n",
        2,
        None,
        "not valid UTF-8 (byte offset 14). Re-save the file as UTF-8.",
    ),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_train_file_is_reported_at_its_line(tmp_path: Path, name: str) -> None:
    content, line, column, message = MALFORMED[name]
    report = run(tmp_path, content)
    problem = only_error(report)
    assert problem.file == str(tmp_path / "train.tsv")
    assert (problem.line, problem.column) == (line, column)
    assert message in problem.message
    assert not report.ok


def test_cp949_message_names_the_file_and_the_fix(tmp_path: Path) -> None:
    report = run(tmp_path, "query\tkeyword\n면세한도는?\t면세한도\n".encode("cp949"))
    text = str(only_error(report))
    assert text.startswith(f"{tmp_path / 'train.tsv'}, line 2: ")
    assert "CSV UTF-8" in text and "iconv -f cp949 -t utf-8" in text


def test_missing_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "test.tsv", GOOD_TEST)
    report = validate(tmp_path / "nope.tsv", tmp_path / "test.tsv", tmp_path / "report")
    problem = only_error(report)
    assert (problem.file, problem.line, problem.message) == (str(tmp_path / "nope.tsv"), None, "file not found")
    assert report.file_digests["train"] is None


def test_a_directory_given_as_a_data_file_is_named_as_such(tmp_path: Path) -> None:
    """It was reported as "file not found", which it is not."""
    write(tmp_path, "test.tsv", GOOD_TEST)
    (tmp_path / "data").mkdir()
    problem = only_error(validate(tmp_path / "data", tmp_path / "test.tsv", tmp_path / "report"))
    assert problem.message == "a directory, not a data file (give a 'query<TAB>keyword' .tsv)"


def test_leakage_names_both_files_and_lines(tmp_path: Path) -> None:
    train = "query\tkeyword\n다른 질문?\t질문\n" + GOOD_TRAIN_ROW
    test = "query\tkeyword\n" + GOOD_TRAIN_ROW
    report = run(tmp_path, train, test)
    problem = only_error(report)
    assert (problem.file, problem.line, problem.column) == (str(tmp_path / "test.tsv"), 2, "query")
    assert problem.message.startswith(f"train/test leakage: this query is also in {tmp_path / 'train.tsv'} line 3")


def test_leakage_is_found_after_normalising_spaces(tmp_path: Path) -> None:
    report = run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW, "query\tkeyword\n" + GOOD_TRAIN_ROW.replace(" ", "   "))
    assert "train/test leakage" in only_error(report).message


HIDDEN = {"ZWSP": "\u200b", "ZWJ": "\u200d", "WJ": "\u2060", "BOM": "\ufeff", "SHY": "\u00ad", "fullwidth?": "？"}


@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
def test_leakage_hidden_by_invisible_or_full_width_characters_is_found(tmp_path: Path, hidden: str) -> None:
    query, keyword = GOOD_TRAIN_ROW.rstrip("\n").split("\t")
    disguised = query[:2] + hidden + query[2:] if hidden != "？" else query.replace("?", "？")
    assert disguised != query
    report = run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW, f"query\tkeyword\n{disguised}\t{keyword}\n")
    assert "train/test leakage" in only_error(report).message


@pytest.mark.parametrize(
    ("cell", "named"), [("\x00", "U+0000"), ("관세\x1b[31m환급", "U+001B"), ("관세\u202e환급", "U+202E")]
)
def test_control_characters_are_refused_at_their_line_and_column(tmp_path: Path, cell: str, named: str) -> None:
    report = run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW + f"{cell} 기한은?\t관세\n")
    problem = next(p for p in report.errors if "control characters" in p.message)
    assert (problem.line, problem.column) == (3, "query") and named in problem.message


def test_line_of_tabs_is_a_row_of_empty_cells(tmp_path: Path) -> None:
    report = run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW + " \t \n")
    assert [(p.line, p.column) for p in report.errors] == [(3, "query"), (3, "keyword")]


def test_every_problem_is_reported_in_file_order(tmp_path: Path) -> None:
    train = (
        "query\tkeyword\n"
        "\t면세\n"  # line 2: empty query
        "한 줄\t둘\t셋\n"  # line 3: three fields
        + GOOD_TRAIN_ROW  # line 4
        + "질문?\t가, , 나\n"  # line 5: empty item
        + GOOD_TRAIN_ROW
    )  # line 6: duplicate of line 4
    report = run(tmp_path, train)
    assert [(p.line, p.column) for p in report.errors] == [(2, "query"), (3, None), (5, "keyword"), (6, "query")]


def test_limits_are_configurable(tmp_path: Path) -> None:
    row = "query\tkeyword\n면세한도와 관세와 세금은?\t면세한도, 관세, 세금\n"
    short = "query\tkeyword\n짧은 질문\t질문\n"
    assert "at most 2 are allowed" in only_error(run(tmp_path, row, short, max_keywords=2)).message
    assert "at most 10 are allowed" in only_error(run(tmp_path, row, short, max_query_chars=10)).message


# --- accepted variants ------------------------------------------------------------------------------------


def test_bundled_data_validates_without_errors(tmp_path: Path) -> None:
    report = validate(DATA / "train.tsv", DATA / "test.tsv", tmp_path / "report")
    assert report.ok, report.summary()
    assert report.stats["train"]["rows"] == 2698 and report.stats["test"]["rows"] == 297


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    content = "\ufeffquery\tkeyword\r\n" + GOOD_TRAIN_ROW.replace("\n", "\r\n") + "면세한도는?\t\r\n"
    report = run(tmp_path, content)
    assert (only_error(report).line, only_error(report).column) == (3, "keyword")
    rows = load_pairs(tmp_path / "train.tsv")
    assert list(rows.columns) == ["query", "keyword", "line"]
    assert rows["keyword"].iloc[0] == "여행자 휴대품, 면세한도"


def test_double_quote_is_an_ordinary_character(tmp_path: Path) -> None:
    train = 'query\tkeyword\n"면세한도"가 뭐예요?\t면세한도\n따옴표 " 하나만 열린 질문?\t따옴표\n' + GOOD_TRAIN_ROW
    report = run(tmp_path, train)
    assert report.ok, report.summary()
    assert report.stats["train"]["rows"] == 3
    assert load_pairs(tmp_path / "train.tsv")["query"].iloc[0] == '"면세한도"가 뭐예요?'


def test_unicode_line_separators_do_not_shift_line_numbers(tmp_path: Path) -> None:
    report = run(tmp_path, "query\tkeyword\n면세\u2028한도\x85는?\t면세\n질문?\t\n")
    # U+0085 is also a control character (refused on its own line); neither it nor U+2028 starts a line
    assert [(p.line, p.column) for p in report.errors] == [(2, "query"), (3, "keyword")]
    assert "U+0085" in report.errors[0].message and "U+2028" not in report.errors[0].message


def test_thousands_separator_stays_inside_a_keyword(tmp_path: Path) -> None:
    row = "1,200달러 가방 세금은?\t1,200달러, 가방, 세금\n"
    report = run(tmp_path, "query\tkeyword\n" + row, max_keywords=3)
    assert report.ok, report.summary()
    assert report.stats["train"]["keywords"] == 3


def test_ungrounded_keywords_are_a_warning_with_examples(tmp_path: Path) -> None:
    report = run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW + "면세한도는?\t관세\n")
    assert report.ok
    assert len(report.warnings) == 1
    assert "1 of 3 keywords (33.3%) do not occur verbatim" in report.warnings[0]
    assert "line 3: '관세' not in '면세한도는?'" in report.warnings[0]
    assert report.stats["train"]["ungrounded_share"] == pytest.approx(0.3333)


def test_statistics_per_file(tmp_path: Path) -> None:
    train = "query\tkeyword\n가나다\t가나다\n" + "가나다라마바사아자차?\t가나다, 라마, 바사, 아자\n"
    stats = run(tmp_path, train).stats["train"]
    assert stats["rows"] == 2
    assert stats["keywords_per_row"] == {"mean": 2.5, "min": 1, "max": 4}
    assert stats["query_chars"]["p50"] == pytest.approx(7.0)
    assert set(stats["query_chars"]) == {"p50", "p90", "p99"}


# --- side effects, reports and the error ----------------------------------------------------------------


def test_input_files_are_not_modified(tmp_path: Path) -> None:
    content = "\ufeffquery\tkeyword\r\n" + '"따옴표"\t\r\n'
    before = content.encode()
    report = run(tmp_path, content)
    assert not report.ok
    assert (tmp_path / "train.tsv").read_bytes() == before
    assert (tmp_path / "test.tsv").read_bytes() == GOOD_TEST.encode()


def test_reports_are_written_and_match_the_digests(tmp_path: Path) -> None:
    report = run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW + "면세한도는?\t\n")
    folder = tmp_path / "report"
    assert sorted(p.name for p in folder.iterdir()) == ["validation.json", "validation.md"]  # no temp files left
    saved = json.loads((folder / "validation.json").read_text(encoding="utf-8"))
    assert saved["ok"] is False and saved["error_count"] == 1
    assert saved["errors"][0] == {
        "file": str(tmp_path / "train.tsv"),
        "line": 3,
        "column": "keyword",
        "message": report.errors[0].message,
    }
    train_sha = hashlib.sha256((tmp_path / "train.tsv").read_bytes()).hexdigest()
    assert saved["file_digests"]["train"] == report.file_digests["train"] == train_sha
    assert saved["data_digest"] == report.data_digest
    markdown = (folder / "validation.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Data validation failed: 1 error(s)")
    assert "| file | rows | errors |" in markdown and "| 3 | keyword |" in markdown
    assert report.report_paths == {"json": str(folder / "validation.json"), "markdown": str(folder / "validation.md")}


def test_data_digest_changes_with_any_byte(tmp_path: Path) -> None:
    first = run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW).data_digest
    assert run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW).data_digest == first
    assert run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW.replace("\n", "\r\n")).data_digest != first


def test_raise_for_errors_lists_the_first_twenty(tmp_path: Path) -> None:
    rows = "".join(f"질문 {n}?\t\n" for n in range(25))
    report = run(tmp_path, "query\tkeyword\n" + rows)
    with pytest.raises(DataValidationError) as caught:
        report.raise_for_errors()
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith("data validation failed: 25 error(s) in train.tsv:")
    assert "line 21, column 'keyword': the keyword cell is empty" in message
    assert "line 22," not in message and "… and 5 more" in message
    assert message.endswith("Fix these rows and re-run.")
    assert len(caught.value.problems) == 25
    copy = pickle.loads(pickle.dumps(caught.value))  # Prefect may pickle the failure
    assert str(copy) == message and copy.problems == caught.value.problems


def test_raise_for_errors_is_silent_on_clean_data(tmp_path: Path) -> None:
    run(tmp_path, "query\tkeyword\n" + GOOD_TRAIN_ROW).raise_for_errors()


# --- the command line -------------------------------------------------------------------------------------


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keyword_extractor.data.validation", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_exits_1_on_a_bad_file(tmp_path: Path) -> None:
    train = write(tmp_path, "train.tsv", "query\tkeyword\n면세한도는?\t\n")
    test = write(tmp_path, "test.tsv", GOOD_TEST)
    done = cli("--train", train, "--test", test, "--report-dir", tmp_path / "out")
    assert done.returncode == 1, done.stderr
    assert "FAILED with 1 error(s)" in done.stdout
    assert f"{train}, line 2, column 'keyword'" in done.stdout
    assert (tmp_path / "out" / "validation.md").is_file()


def test_cli_exits_0_on_bundled_data(tmp_path: Path) -> None:
    done = cli(
        "--train",
        DATA / "train.tsv",
        "--test",
        DATA / "test.tsv",
        "--report-dir",
        tmp_path / "out",
        "--max-query-chars",
        "300",
        "--max-keywords",
        "6",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data validation OK" in done.stdout


def test_cli_help_explains_every_option() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for option in ("--train", "--test", "--report-dir", "--max-query-chars", "--max-keywords"):
        assert option in done.stdout


# --- the Prefect task inside a flow (real Prefect, temporary local server) ---------------------------------

FLOW_SCRIPT = textwrap.dedent("""
    import json
    from prefect import flow
    from prefect.client.orchestration import get_client
    from tasks.validate import validate_data

    @flow
    def validate_flow(train, test):
        state = validate_data(train, test, "report", return_state=True)
        return {"state": state.name, "result": vars(state.result())}  # result() re-raises a failure

    outcome = {}
    try:
        validate_flow("bad.tsv", "test.tsv")
    except Exception as error:
        outcome["bad"] = f"{type(error).__name__}: {error}"
    outcome["first"] = validate_flow("good.tsv", "test.tsv")
    outcome["second"] = validate_flow("good.tsv", "test.tsv")
    with get_client(sync_client=True) as client:
        reports = [a for a in client.read_artifacts() if a.key == "validation-report"]
        outcome["artifacts"] = sorted([a.type, a.data.splitlines()[0]] for a in reports)
    print("OUTCOME " + json.dumps(outcome, ensure_ascii=False))
""")


@pytest.fixture(scope="module")
def flow_outcome(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the flow once in a subprocess with its own PREFECT_HOME, so no real Prefect set-up is touched."""
    folder = tmp_path_factory.mktemp("prefect")
    write(folder, "bad.tsv", "query\tkeyword\n" + GOOD_TRAIN_ROW + "면세한도는?\t면세, , 한도\n")
    write(folder, "good.tsv", "query\tkeyword\n" + GOOD_TRAIN_ROW)
    write(folder, "test.tsv", GOOD_TEST)
    write(folder, "run_flow.py", FLOW_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(folder / "prefect-home"),
        PYTHONPATH=str(REPO),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
    )
    done = subprocess.run(
        [sys.executable, "run_flow.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("OUTCOME ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[-1].removeprefix("OUTCOME "))


def test_flow_fails_with_the_row_level_message(flow_outcome: dict) -> None:
    message = flow_outcome["bad"]
    assert message.startswith("DataValidationError: data validation failed: 1 error(s) in bad.tsv")
    assert "bad.tsv, line 3, column 'keyword': the keyword list '면세, , 한도' has an empty item" in message
    assert "Fix these rows and re-run." in message


def test_flow_returns_a_typed_result_and_caches_on_content(flow_outcome: dict) -> None:
    first, second = flow_outcome["first"], flow_outcome["second"]
    assert (first["state"], second["state"]) == ("Completed", "Cached")
    assert second["result"] == first["result"]
    result = first["result"]
    assert result["ok"] is True and result["rows"] == {"train": 1, "test": 1}
    assert result["json_report"].endswith("validation.json") and len(result["data_digest"]) == 64


def test_flow_publishes_the_markdown_report_as_an_artifact(flow_outcome: dict) -> None:
    # one per run that did the work: the failed run and the first good run; the cached run publishes nothing
    assert flow_outcome["artifacts"] == [
        ["markdown", "# Data validation failed: 1 error(s)"],
        ["markdown", "# Data validation passed"],
    ]
