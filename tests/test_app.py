"""The Streamlit app and the two modules behind it, against real servers.

- `app.py` through Streamlit's AppTest: the chat and batch flows against a real `bentoml serve` of the
  talkative tiny model (see conftest.py), and the service-down path against a closed port.
- `app_support.client`: every error path against a real HTTP peer (the Bento, a closed port, a
  socket that never answers, a plain HTTP server that is not the keyword service).
- `app_support.question_files`: encodings, formats, columns and limits.

The Bento is started once per test session and shared with test_browser.py (`shared_service`).
"""

from __future__ import annotations

import codecs
import csv
import html
import io
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError
from streamlit.testing.v1 import AppTest

from app_support import client
from app_support.client import Options, ServiceError
from app_support.question_files import (
    Question,
    QuestionFileError,
    Questions,
    read_question_file,
    results_csv,
    results_jsonl,
    too_long,
)
from keyword_extractor.data.tsv import load_pairs
from keyword_extractor.text.keywords import is_grounded
from service_support.local_server import ServerProcess, bentoml_env, free_port, import_model, start_bento, stop_bento
from tests.conftest import PROJECT_ROOT, TEST_TSV

APP = str(PROJECT_ROOT / "app.py")
QUESTIONS = load_pairs(TEST_TSV)["query"].tolist()
MAX_TEXT_CHARS, MAX_BATCH_TEXTS = 200, 8  # small, so that a 20-question file takes three chunks
MODEL_LABELS = {"registered_model": "keyword-extractor", "mlflow_version": "7", "mlflow_alias": "champion"}
SERVICE_PLUGIN = "kobart-keywords-app-service"


def shared_service(config: pytest.Config, model_dir: Path, home: Path) -> ServerProcess:
    """One `bentoml serve` of `model_dir` for the whole session, stopped when pytest ends.

    The server is registered under a name with pytest's plugin manager: test_browser.py imports this
    module under another name (tests.test_app), so a module-level cache would not be shared.
    """
    running = config.pluginmanager.get_plugin(SERVICE_PLUGIN)
    if running is not None:
        return running
    env = bentoml_env(home)
    env.update(
        KEYWORD_MODEL_TAG=import_model(model_dir, env, MODEL_LABELS),
        KEYWORD_MAX_TEXT_CHARS=str(MAX_TEXT_CHARS),
        KEYWORD_MAX_BATCH_TEXTS=str(MAX_BATCH_TEXTS),
    )
    server = start_bento(".", env, home / "serve.log")
    config.pluginmanager.register(server, name=SERVICE_PLUGIN)
    config.add_cleanup(lambda: stop_bento(server))
    return server


@pytest.fixture(scope="session")
def service(request, talkative_model_dir, tmp_path_factory) -> ServerProcess:
    return shared_service(request.config, talkative_model_dir, tmp_path_factory.mktemp("app-bentoml"))


@pytest.fixture(scope="session")
def defaults(service) -> Options:
    """The options the app sends when nobody touches the sidebar: the model's own defaults."""
    info = client.model_info(service.url)
    return Options(max_keywords=info.max_keywords, filter_ungrounded=info.filter_ungrounded, num_beams=info.num_beams)


def start_app(url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("KEYWORD_SERVICE_URL", url)
    app = AppTest.from_file(APP, default_timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def plain(markdown: str) -> str:
    """Undo the app's Markdown escaping, to compare with the client's message."""
    return re.sub(r"\\(.)", r"\1", markdown)


def html_of(elements) -> str:
    return "\n".join(element.value for element in elements)


# --- the app against the real service ----------------------------------------------------------------------


@pytest.mark.slow
def test_sidebar_shows_health_model_and_the_models_decoding_defaults(service, defaults, monkeypatch):
    app = start_app(service.url, monkeypatch)
    sidebar = html_of(app.sidebar.html)
    assert 'class="kw-health ok"' in sidebar and "Service ready" in sidebar
    for fact in ("<th>Name</th><td>keyword-extractor</td>", "<th>Version</th><td>7</td>", "<td>champion</td>"):
        assert fact in sidebar
    assert f"{MAX_TEXT_CHARS:,} chars · {MAX_BATCH_TEXTS:,} per batch" in sidebar
    assert app.slider(key="max_keywords").value == defaults.max_keywords
    assert app.toggle(key="filter_ungrounded").value == defaults.filter_ungrounded
    assert app.slider(key="num_beams").value == defaults.num_beams
    assert not app.error


@pytest.mark.slow
def test_chat_shows_keyword_chips_time_and_model_and_keeps_the_conversation(service, defaults, monkeypatch):
    first, second = QUESTIONS[0], QUESTIONS[1]
    expected = client.extract(service.url, first, defaults).keywords
    assert expected and all(is_grounded(keyword, first) for keyword in expected)
    app = start_app(service.url, monkeypatch)
    examples = [button.label for button in app.button if (button.key or "").startswith("example_")]
    assert len(examples) == 3 and all(re.search("[가-힣]", label) for label in examples)  # offered while empty

    app.chat_input(key="question").set_value(first).run()
    assert not app.exception
    assert not [button for button in app.button if (button.key or "").startswith("example_")]
    assert not app.button(key="clear_chat").disabled
    turn = app.session_state.chat[-1]
    assert turn["error"] is None and turn["keywords"] == expected
    assert turn["model"] == {"name": "keyword-extractor", "version": "7", "alias": "champion"}
    answer = html_of(app.main.html)
    chips = re.findall(r'<span class="kw-chip">(.*?)</span>', answer)
    assert chips == [html.escape(keyword) for keyword in expected]
    assert re.search(r"answered in (\d+ ms|\d+\.\d\d s)", answer), answer
    assert 'keyword-extractor v7<span class="kw-alias">champion</span>' in answer

    app.chat_input(key="question").set_value(second).run()
    assert [turn["question"] for turn in app.session_state.chat] == [first, second]
    assert [message.name for message in app.chat_message] == ["user", "assistant", "user", "assistant"]
    assert [app.chat_message[i].text[0].value for i in (0, 2)] == [first, second]
    assert len(re.findall('class="kw-chips"|class="kw-none"', html_of(app.main.html))) == 2

    app.button(key="clear_chat").click().run()
    assert app.session_state.chat == [] and not app.chat_message and app.button(key="clear_chat").disabled
    app.button(key="example_0").click().run()  # an example is asked like a typed question
    assert [turn["question"] for turn in app.session_state.chat] == [examples[0]]
    assert app.session_state.chat[0]["model"] is not None and app.chat_message[0].text[0].value == examples[0]


@pytest.mark.slow
def test_chat_sends_the_sidebar_options(service, defaults, monkeypatch):
    # A question answered with several keywords under these options: "max keywords = 1" must cut it to one.
    many = Options(max_keywords=defaults.max_keywords, filter_ungrounded=not defaults.filter_ungrounded, num_beams=2)
    answers = client.extract_batch(service.url, QUESTIONS[:32], many, chunk_size=MAX_BATCH_TEXTS).keywords
    question = next(q for q, found in zip(QUESTIONS, answers) if len(found) >= 2)
    one = Options(max_keywords=1, filter_ungrounded=many.filter_ungrounded, num_beams=many.num_beams)
    expected = client.extract(service.url, question, one)
    assert len(expected.keywords) == 1
    app = start_app(service.url, monkeypatch)
    app.slider(key="max_keywords").set_value(1)
    app.toggle(key="filter_ungrounded").set_value(many.filter_ungrounded)
    app.slider(key="num_beams").set_value(many.num_beams).run()
    app.chat_input(key="question").set_value(question).run()
    assert app.session_state.chat[-1]["keywords"] == expected.keywords


@pytest.mark.slow
def test_chat_shows_empty_input_and_the_services_4xx_message(service, monkeypatch):
    app = start_app(service.url, monkeypatch)
    app.chat_input(key="question").set_value("  \n ").run()
    assert [w.value for w in app.warning] == ["The question is empty: type a question first."]
    assert app.session_state.chat == []

    # U+FEFF is not space to Python's str.strip, so the app sends it; the service calls it blank and answers 400.
    app.chat_input(key="question").set_value("\ufeff").run()
    assert not app.exception
    error = app.session_state.chat[-1]["error"]
    assert error == (
        "The service refused the request (HTTP 400): invalid request: "
        "text: text is blank: it must contain at least one non-space character"
    )
    assert plain(app.chat_message[-1].error[0].value) == error


def csv_upload(questions: list[str]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["id", "질문"])
    writer.writerows([number, question] for number, question in enumerate(questions, start=1))
    return buffer.getvalue().encode("utf-8-sig")  # as Excel's "CSV UTF-8" writes it


@pytest.mark.slow
def test_batch_csv_runs_in_chunks_and_shows_a_table_and_downloads(service, defaults, monkeypatch):
    questions = QUESTIONS[:20] + ["관세, 부가세 환급은 어떻게 받나요?"]  # a quoted comma
    expected = client.extract_batch(service.url, questions, defaults, chunk_size=MAX_BATCH_TEXTS).keywords
    app = start_app(service.url, monkeypatch)
    app.file_uploader(key="batch_file").set_value(("questions.csv", csv_upload(questions), "text/csv")).run()
    assert not app.exception and not app.error
    assert app.selectbox[0].value == "질문" and app.selectbox[0].options == ["id", "질문"]
    assert f"{len(questions)} questions · UTF-8 with BOM" in [c.value for c in app.caption]

    app.button(key="run_batch").click().run()  # more than max_batch_texts: only chunking gets a 200
    assert not app.exception and not app.error, [e.value for e in app.error]
    progress = app.get("progress")[0]
    assert progress.value == 100 and progress.text.startswith(f"Done: {len(questions)} questions in ")
    table = app.dataframe[0].value
    assert table["question"].tolist() == questions and table["line"].tolist() == list(range(2, 23))
    assert [list(found) for found in table["keywords"]] == expected
    assert [metric.value for metric in app.metric][:2] == [str(len(questions)), str(sum(map(bool, expected)))]
    assert [button.label for button in app.get("download_button")] == ["Download CSV", "Download JSONL"]

    app.slider(key="max_keywords").set_value(1).run()  # stale results are flagged, not silently kept as current
    assert "The decoding options changed since this run" in app.info[0].value
    assert app.dataframe[0].value["question"].tolist() == questions


@pytest.mark.slow
def test_batch_refuses_questions_longer_than_the_service_accepts(service, monkeypatch):
    app = start_app(service.url, monkeypatch)
    content = f"관세 환급\n{'가' * (MAX_TEXT_CHARS + 1)}\n".encode()
    app.file_uploader(key="batch_file").set_value(("long.txt", content, "text/plain")).run()
    assert [e.value for e in app.error] == [
        f"1 question(s) are longer than the {MAX_TEXT_CHARS} characters the service accepts (line 2). "
        "Shorten or remove them and upload the file again."
    ]
    assert "run_batch" not in [button.key for button in app.button]


def test_batch_names_a_cp949_file_and_a_blank_column(monkeypatch):
    app = start_app(f"http://127.0.0.1:{free_port()}", monkeypatch)
    app.file_uploader(key="batch_file").set_value(("질문.csv", "질문\n관세 환급\n".encode("cp949"), "text/csv")).run()
    assert not app.exception
    assert any("looks like CP949/EUC-KR" in plain(e.value) and "save it as UTF-8" in plain(e.value) for e in app.error)

    app.file_uploader(key="batch_file").set_value(("empty.csv", "질문,메모\n,\n".encode(), "text/csv")).run()
    assert any("empty.csv has no questions in column '질문': every row is blank." == plain(e.value) for e in app.error)


def test_an_invalid_url_is_a_message(monkeypatch):
    app = start_app("http://127.0.0.1:99999", monkeypatch)
    assert 'class="kw-health down"' in html_of(app.sidebar.html) and "invalid URL" in html_of(app.sidebar.html)
    assert [plain(error.value) for error in app.error] == [
        "'http://127.0.0.1:99999' is not a valid address: port 99999 is not in 1–65535."
    ]


def test_service_down_is_a_readable_error_not_an_exception(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = start_app(url, monkeypatch)
    assert 'class="kw-health down"' in html_of(app.sidebar.html)
    messages = [plain(error.value) for error in app.error]
    assert any(m.startswith(f"Cannot reach the keyword service at {url}: is it running?") for m in messages), messages

    app.chat_input(key="question").set_value("여행자 휴대품 면세한도는 얼마인가요?").run()
    assert not app.exception
    turn = app.session_state.chat[-1]
    assert turn["keywords"] == [] and turn["error"].startswith(f"Cannot reach the keyword service at {url}")
    assert plain(app.chat_message[-1].error[0].value) == turn["error"]

    app.file_uploader(key="batch_file").set_value(("q.txt", "관세 환급\n".encode(), "text/plain")).run()
    assert not app.exception and "run_batch" not in [button.key for button in app.button]
    assert app.warning[0].value.startswith("The keyword service is not answering")


def test_model_output_is_escaped_never_rendered_as_html(monkeypatch):
    app = AppTest.from_file(APP, default_timeout=60)
    monkeypatch.setenv("KEYWORD_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    model = {"name": "<i>m</i>", "version": "1", "alias": "<script>x</script>"}
    turn = {"question": "<b>q</b>", "keywords": ["<img src=x onerror=alert(1)>", "a&b"], "elapsed_s": 0.01}
    app.session_state.chat = [{**turn, "model": model, "error": None}]
    app.run()
    answer = html_of(app.main.html)
    assert '<span class="kw-chip">&lt;img src=x onerror=alert(1)&gt;</span>' in answer
    assert '<span class="kw-chip">a&amp;b</span>' in answer
    assert "&lt;i&gt;m&lt;/i&gt; v1" in answer and "&lt;script&gt;x&lt;/script&gt;" in answer
    assert "<img" not in answer and "<script" not in answer and "<i>" not in answer
    assert app.chat_message[0].text[0].value == "<b>q</b>"  # st.text: shown as typed


# --- client: error paths against real peers ------------------------------------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: what a hung service looks like."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


class _NotTheService(BaseHTTPRequestHandler):
    """Plain HTTP answers: a 404 site, a busy server with a JSON error, and a 400 without JSON."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(404, b"<html>not here</html>", "text/html")

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/extract":
            self._answer(503, json.dumps({"error": "queue full"}).encode(), "application/json")
        else:
            self._answer(400, b"bad things", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotTheService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_client_names_an_unreachable_service():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceError) as caught:
        client.extract(url, "관세 환급")
    assert caught.value.kind == "unreachable" and caught.value.status_code is None
    assert caught.value.message.startswith(f"Cannot reach the keyword service at {url}: is it running?")
    assert client.health(url) == client.Health(False, "unreachable (ConnectError)")


def test_client_turns_a_hang_into_a_timeout_message(silent_port):
    url = f"http://127.0.0.1:{silent_port}"
    with pytest.raises(ServiceError) as caught:
        client.extract(url, "관세 환급", timeout_s=0.5)
    assert caught.value.kind == "timeout"
    assert caught.value.message.startswith(f"The keyword service did not answer within 0.5 s ({url}/extract).")
    assert client.health(url, timeout_s=0.5) == client.Health(
        False, "no answer within 0.5 s: the model may still be loading"
    )


def test_client_recognises_a_server_that_is_not_the_keyword_service(other_http_server):
    url = other_http_server
    with pytest.raises(ServiceError) as caught:
        client.model_info(url)
    assert (caught.value.kind, caught.value.status_code) == ("protocol", 404)
    assert (
        caught.value.message
        == f"{url}/model_info answered 404 Not Found: this URL does not look like the keyword service."
    )
    with pytest.raises(ServiceError) as caught:
        client.extract(url, "관세")
    assert (
        caught.value.message == "The service is busy or still starting (HTTP 503): queue full. Try again in a moment."
    )
    with pytest.raises(ServiceError) as caught:
        client.extract_batch(url, ["관세"])
    assert caught.value.message == "questions 1–1: The service refused the request (HTTP 400): bad things"
    assert client.health(url) == client.Health(False, "not ready (HTTP 404)")


def test_client_refuses_bad_urls_and_empty_questions_before_sending():
    assert client.normalize_url(" 127.0.0.1:3000/ ") == "http://127.0.0.1:3000"
    assert client.normalize_url("https://kw.example.org/api/") == "https://kw.example.org/api"
    for bad, message in (
        ("", "The service URL is empty"),
        ("ftp://host", "'ftp://host' is not an http://"),
        ("http://127.0.0.1:99999", "'http://127.0.0.1:99999' is not a valid address: port 99999 is not in 1–65535."),
        ("http://a:b:c", "'http://a:b:c' is not a valid address: Invalid port: 'b:c'."),
    ):
        with pytest.raises(ServiceError, match=re.escape(message)) as caught:
            client.normalize_url(bad)
        assert caught.value.kind == "invalid_url"
    with pytest.raises(ServiceError, match="The question is empty") as caught:
        client.extract("http://127.0.0.1:9", " \t")
    assert caught.value.kind == "input"
    assert Options(max_keywords=2).as_json() == {"max_keywords": 2}  # the service refuses explicit nulls


@pytest.mark.slow
def test_client_against_the_service_chunks_reports_progress_and_passes_4xx_text(service, defaults):
    texts = QUESTIONS[:20]
    seen: list[tuple[int, int]] = []
    result = client.extract_batch(
        service.url, texts, defaults, chunk_size=MAX_BATCH_TEXTS, on_progress=lambda *a: seen.append(a)
    )
    assert seen == [(8, 20), (16, 20), (20, 20)]
    served = client.ModelRef(name="keyword-extractor", version="7", alias="champion")
    assert result.model == served and len(result.keywords) == 20
    assert result.keywords[:3] == [client.extract(service.url, text, defaults).keywords for text in texts[:3]]

    with pytest.raises(ServiceError) as caught:
        client.extract_batch(service.url, texts, chunk_size=MAX_BATCH_TEXTS + 1)
    assert (caught.value.kind, caught.value.status_code) == ("rejected", 400)
    assert caught.value.message == (
        "questions 1–9: The service refused the request (HTTP 400): invalid request: "
        f"texts: List should have at most {MAX_BATCH_TEXTS} items after validation, not 9"
    )
    with pytest.raises(ServiceError, match=r"HTTP 400\): invalid request: text: String should have at most"):
        client.extract(service.url, "관" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(ValidationError, match="max_keywords"):  # the service's own type: refused before sending
        Options(max_keywords=11)
    info = client.model_info(service.url)
    assert (info.max_text_chars, info.max_batch_texts, info.model.label) == (
        MAX_TEXT_CHARS,
        MAX_BATCH_TEXTS,
        "keyword-extractor v7 (champion)",
    )
    assert client.health(service.url) == client.Health(True, "ready")


# --- question files ----------------------------------------------------------------------------------------


def texts_of(name: str, raw: bytes, column: str | None = None) -> list[tuple[int, str]]:
    return [(q.line, q.text) for q in read_question_file(name, raw).questions(column).items]


def test_txt_utf8_with_and_without_bom_and_crlf():
    body = "여행자 면세한도는?\r\n\r\n  관세 환급 절차  \r\n"
    assert texts_of("q.txt", body.encode()) == [(1, "여행자 면세한도는?"), (3, "관세 환급 절차")]
    parsed = read_question_file("q.txt", codecs.BOM_UTF8 + body.encode())
    assert parsed.encoding == "UTF-8 with BOM" and parsed.columns == []
    assert parsed.questions().texts == ["여행자 면세한도는?", "관세 환급 절차"] and parsed.questions().blank == 1
    assert read_question_file("q.txt", body.encode("utf-16")).encoding == "UTF-16"  # Excel's "Unicode Text"


def test_csv_with_bom_header_quotes_and_line_breaks():
    raw = '질문,메모\n"관세, 부가세 환급은?",a\n"두 줄\n질문",b\n"""따옴표""가 든 질문",c\n'.encode("utf-8-sig")
    parsed = read_question_file("q.csv", raw)
    assert parsed.columns == ["질문", "메모"] and parsed.default_column() == "질문"  # the BOM is not in the name
    assert texts_of("q.csv", raw) == [(2, "관세, 부가세 환급은?"), (3, "두 줄\n질문"), (5, '"따옴표"가 든 질문')]
    assert texts_of("q.csv", raw, "메모") == [(2, "a"), (3, "b"), (5, "c")]


def test_tsv_reads_the_projects_data_files_without_quote_processing():
    parsed = read_question_file("test.tsv", TEST_TSV.read_bytes())
    assert parsed.columns == ["query", "keyword"] and parsed.default_column() == "query"
    assert parsed.questions().texts == QUESTIONS
    assert texts_of("q.tsv", 'query\tkeyword\n"관세"란?\t관세\n'.encode()) == [(2, '"관세"란?')]


def test_cp949_file_is_named_as_such():
    with pytest.raises(QuestionFileError) as caught:
        read_question_file("질문.csv", "질문,메모\n여행자 면세한도는?,x\n".encode("cp949"))
    assert caught.value.message.startswith("질문.csv looks like CP949/EUC-KR (the Korean Windows and Excel default)")
    assert "save it as UTF-8" in caught.value.message
    with pytest.raises(QuestionFileError, match=r"is not UTF-8 text \(invalid byte at line 2, byte offset 5\)"):
        read_question_file("q.txt", b"abc\nd\xff\n")  # not Korean either: no guess, just where


def test_missing_column_lists_the_columns_there_are():
    parsed = read_question_file("q.tsv", "query\tkeyword\n관세 환급\t관세\n".encode())
    with pytest.raises(QuestionFileError) as caught:
        parsed.questions("question")
    assert caught.value.message == "q.tsv has no column 'question'; its columns are 'query', 'keyword'."


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("q.xlsx", b"PK\x03\x04", "q.xlsx: upload a .txt, .csv or .tsv file (this one has .xlsx)."),
        ("q.csv", b"PK\x03\x04rest", "q.csv is an Excel workbook, not a text file: in Excel use Save As"),
        ("q.txt", b"a\x00b", "q.txt looks like a binary file, not text"),
        ("q.txt", b" \n\n", "q.txt is empty."),
        ("q.csv", b"\nq\n", "The first line of q.csv is empty: it must be the header row naming the columns."),
        ("q.csv", "질문,메모\n관세,환급,?\n".encode(), "q.csv: 1 row(s) do not have the header's 2 field(s) (line 2)."),
        ("q.csv", 'q\n"관세\n'.encode(), "q.csv, line 2: not valid CSV: unexpected end of data"),
    ],
)
def test_unusable_files_are_refused_with_a_reason(name, raw, message):
    with pytest.raises(QuestionFileError) as caught:
        read_question_file(name, raw)
    assert caught.value.message.startswith(message), caught.value.message


def test_file_size_limit():
    assert read_question_file("q.txt", "관세\n".encode() * 256, max_bytes=2048).questions().texts == ["관세"] * 256
    with pytest.raises(QuestionFileError) as caught:
        read_question_file("q.txt", b"x\n" * 1536, max_bytes=2048)
    assert caught.value.message == "q.txt is 3.0 KB; the limit is 2.0 KB. Split it into smaller files."


def test_question_count_and_length_limits():
    parsed = read_question_file("q.txt", "\n".join(f"질문 {i}" for i in range(6)).encode())
    assert len(parsed.questions(max_questions=6).items) == 6
    with pytest.raises(QuestionFileError, match=r"^q.txt has 6 questions; at most 5 can be sent at once"):
        parsed.questions(max_questions=5)
    questions = Questions([Question(1, "짧다"), Question(4, "가" * 11), Question(9, "나" * 12)])
    assert too_long(questions, 12) is None
    assert too_long(questions, 10) == (
        "2 question(s) are longer than the 10 characters the service accepts (line 4, 9). "
        "Shorten or remove them and upload the file again."
    )


def test_csv_download_keeps_the_uploads_columns_and_never_carries_a_formula():
    upload = (
        "id,category,question,keywords\r\n"
        '7,관세,"=HYPERLINK(""http://x.example"",""면세"")",old\r\n'
        "8,여행,@SUM(1+1) 면세한도는?,\r\n"
        "9,일반,+82 번호로 관세 문의,\r\n"
    ).encode()
    questions = read_question_file("upload.csv", upload).questions("question")
    keywords = [["=cmd|' /C calc'!A0"], ["-1+1", "면세한도"], ["관세"]]
    rows = list(csv.reader(io.StringIO(results_csv(questions, keywords).decode("utf-8-sig"), newline="")))
    assert rows[0] == ["line", "id", "category", "question", "keywords", "extracted keywords"]
    assert rows[1] == [
        "2",
        "7",
        "관세",
        '\'=HYPERLINK("http://x.example","면세")',
        "old",
        "'=cmd|' /C calc'!A0",
    ]
    assert rows[2][3] == "'@SUM(1+1) 면세한도는?" and rows[2][5] == "'-1+1, 면세한도"
    assert rows[3][1:] == ["9", "일반", "'+82 번호로 관세 문의", "", "관세"]
    for row in rows:  # nothing a spreadsheet would evaluate
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), row


def test_results_as_csv_for_excel_and_as_jsonl():
    questions = Questions([Question(2, "관세, 환급?"), Question(5, "면세")])
    keywords = [["관세", "환급"], []]
    raw = results_csv(questions, keywords)
    assert raw.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows == [["line", "question", "keywords"], ["2", "관세, 환급?", "관세, 환급"], ["5", "면세", ""]]
    lines = results_jsonl(questions, keywords).decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"line": 2, "question": "관세, 환급?", "keywords": ["관세", "환급"]},
        {"line": 5, "question": "면세", "keywords": []},
    ]
    assert "관세" in lines[0]  # Hangul as is, not \\uXXXX


def _another_span(question: str, answer: list[str]) -> str:
    """A word of the question (its final ? dropped) that the answer does not already hold."""
    return next(word for word in (w.rstrip("?") for w in question.split()) if word and word not in answer)


# --- corrections and review -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_chat_answer_corrected_in_place_is_saved_and_only_a_reviewer_can_accept_it(service, defaults, monkeypatch):
    from keyword_extractor.feedback.store import FeedbackStore

    feedback_url = f"sqlite:///{service.log.parent}/feedback.db"  # the service fixture's own store
    monkeypatch.setenv("KEYWORD_FEEDBACK_URL", feedback_url)
    monkeypatch.delenv("KEYWORD_REVIEWER", raising=False)
    answers = client.extract_batch(service.url, QUESTIONS[:16], defaults, chunk_size=MAX_BATCH_TEXTS).keywords
    question, answer = next((q, found) for q, found in zip(QUESTIONS, answers) if found)
    span = _another_span(question, answer)
    app = start_app(service.url, monkeypatch)
    # no reviewer named: no Review tab
    assert [tab.label for tab in app.tabs] == [":material/chat: Chat", ":material/table: Batch"]
    app.chat_input(key="question").set_value(question).run()
    app.multiselect(key="correct_0_keywords").set_value([span]).run()  # the tags removed, a span typed in
    app.button(key="correct_0_send").click().run()
    assert not app.exception and app.success[0].value.startswith("Saved as correction #"), app.error
    saved = next(s for s in FeedbackStore(feedback_url).corrections("pending") if s.correction.query == question)
    assert (saved.correction.keywords, saved.correction.model_keywords) == ([span], answer)

    app.multiselect(key="correct_0_keywords").set_value([]).run()  # no keywords at all: the rules refuse it
    app.button(key="correct_0_send").click().run()
    assert "the keyword cell is empty" in plain(app.error[0].value)

    monkeypatch.setenv("KEYWORD_REVIEWER", "kim")
    review = start_app(service.url, monkeypatch)
    assert [tab.label for tab in review.tabs][-1] == ":material/rate_review: Review"
    review.multiselect(key="review_accept").set_value([saved.id]).run()
    review.button(key="apply_review").click().run()
    assert "1 accepted, 0 rejected" in review.success[0].value
    accepted = {s.id: s for s in FeedbackStore(feedback_url).corrections("accepted")}
    assert accepted[saved.id].reviewer == "kim"


@pytest.mark.slow
def test_batch_sends_only_the_edited_rows_and_says_why_one_was_refused(service, defaults):
    from app_support.corrections import send_edited_rows

    questions = QUESTIONS[20:23]
    answered = client.extract_batch(service.url, questions, defaults, chunk_size=MAX_BATCH_TEXTS).keywords
    edited = [[_another_span(questions[0], answered[0])], list(answered[1]), ["세관에 없는 말"]]  # row 2 untouched
    changed, saved, refused = send_edited_rows(service.url, questions, answered, edited, "7")
    assert (changed, saved) == (2, 1)
    assert len(refused) == 1 and refused[0].startswith("row 3:") and "does not occur in the question" in refused[0]
