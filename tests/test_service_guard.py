"""The service safe to expose: loopback by default, an optional bearer token, bounded request bodies.

A real `bentoml serve` of the tiny model, started without --host, with KEYWORD_API_TOKEN set and a small
KEYWORD_MAX_BODY_BYTES (and int8 forced by KEYWORD_QUANTIZE); every request goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from app_support import client as service_client
from service_support.local_server import bentoml_env, import_model, launch_bento, start_bento, stop_bento
from service_support.traffic_metrics import OTHER_PATHS
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests"
MAX_BODY_BYTES = 4096
QUESTION = "여행자 휴대품 면세한도는 얼마인가요?"


@pytest.fixture(scope="module")
def guarded(talkative_model_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("bentoml-guarded")
    env = bentoml_env(home)
    tag = import_model(talkative_model_dir, env, {"registered_model": "keyword-extractor"})
    env.update(
        KEYWORD_MODEL_TAG=tag,
        KEYWORD_API_TOKEN=TOKEN,
        KEYWORD_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        KEYWORD_QUANTIZE="int8",
    )
    running = start_bento(".", env, home / "serve.log", host=None)  # no --host: the service's default
    yield running
    stop_bento(running)


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_without_host_it_listens_on_loopback_only(guarded):
    port = httpx.URL(guarded.url).port
    listening = {
        connection.laddr.ip
        for process in guarded.family()
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
    }
    assert listening == {"127.0.0.1"}


def test_model_info_reports_a_precision_forced_by_the_environment(guarded):
    info = httpx.get(f"{guarded.url}/model_info", headers=_auth(), timeout=60).json()
    precision = info["precision"]
    assert precision["requested"] == "int8" and precision["effective"] == "int8"
    assert "forced by KEYWORD_QUANTIZE" in precision["reason"] and precision["calibration"] is None
    assert info["decoding"]["quantize"] == "int8"


def test_every_route_but_the_probes_needs_the_token(guarded):
    body = {"text": QUESTION}
    missing = httpx.post(f"{guarded.url}/extract", json=body, timeout=30)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "KEYWORD_API_TOKEN" in missing.json()["error"]
    assert httpx.post(f"{guarded.url}/extract", json=body, headers=_auth("wrong"), timeout=30).status_code == 401
    assert httpx.get(f"{guarded.url}/model_info", timeout=30).status_code == 401
    assert httpx.get(f"{guarded.url}/docs.json", timeout=30).status_code == 401
    correction = {"query": QUESTION, "model_keywords": [], "model_version": "1", "keywords": ["면세한도"]}
    assert httpx.post(f"{guarded.url}/feedback", json=correction, timeout=30).status_code == 401
    sent = httpx.post(f"{guarded.url}/feedback", json=correction, headers=_auth(), timeout=30)
    assert sent.status_code == 200, sent.text
    answered = httpx.post(f"{guarded.url}/extract", json=body, headers=_auth(), timeout=60)
    assert answered.status_code == 200, answered.text
    for probe in ("/livez", "/readyz", "/metrics"):
        assert httpx.get(f"{guarded.url}{probe}", timeout=30).status_code == 200, probe


def test_the_client_sends_the_token_from_the_environment(guarded, monkeypatch):
    monkeypatch.setenv("KEYWORD_API_TOKEN", TOKEN)
    monkeypatch.setenv("KEYWORD_SERVICE_URL", guarded.url)  # the token goes to the configured service only
    assert service_client.model_info(guarded.url).model.name == "keyword-extractor"
    assert isinstance(service_client.extract(guarded.url, QUESTION).keywords, list)


def test_bodies_over_the_limit_are_refused_before_they_are_read(guarded):
    texts = [QUESTION] * 200  # about 11 KB of JSON
    declared = httpx.post(f"{guarded.url}/extract_batch", json={"texts": texts}, headers=_auth(), timeout=30)
    assert declared.status_code == 413 and "KEYWORD_MAX_BODY_BYTES" in declared.json()["error"]

    payload = json.dumps({"texts": texts}).encode()

    def chunks():  # no Content-Length: sent chunked
        for start in range(0, len(payload), 1024):
            yield payload[start : start + 1024]

    chunked = httpx.post(f"{guarded.url}/extract_batch", content=chunks(), headers=_auth(), timeout=30)
    assert chunked.status_code == 413

    small = json.dumps({"texts": texts[:3]}).encode()
    fits = httpx.post(
        f"{guarded.url}/extract_batch",
        content=iter([small[:20], small[20:]]),
        headers={**_auth(), "Content-Type": "application/json"},
        timeout=60,
    )
    assert fits.status_code == 200, fits.text
    assert len(fits.json()["keywords"]) == 3


def _raw_exchange(url: str, head: bytes, body: bytes) -> bytes:
    """One request written byte for byte on a socket (no client library normalising the headers)."""
    parsed = httpx.URL(url)
    with socket.create_connection((parsed.host, parsed.port), timeout=30) as connection:
        connection.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
            answer += chunk
    return answer


def test_content_length_beside_chunked_framing_is_refused_not_read(guarded):
    """Declared 5 bytes, sent chunked and far over the limit: once read as chunked and answered 200."""
    payload = json.dumps({"texts": [QUESTION] * 400}).encode()  # ~22 KB, over MAX_BODY_BYTES
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:8000], payload[8000:])) + b"0\r\n\r\n"
    head = (
        b"POST /extract_batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    status_line = _raw_exchange(guarded.url, head, chunked).split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"400", status_line


def _endpoint_labels(url: str) -> tuple[set[str], int]:
    """The `endpoint` label values of the public service's /metrics, and the number of lines it has."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return set(re.findall(r'endpoint="([^"]*)"', text)), len(text.splitlines())


def test_metrics_stay_bounded_whatever_paths_are_requested(guarded):
    """Each unknown path once became new series on the open /metrics, listed there for anyone to read."""
    first = httpx.get(f"{guarded.url}/no-such-route", timeout=30)
    assert first.status_code == 401
    _, lines_before = _endpoint_labels(guarded.url)
    probes = [f"/probe-{number}-{'x' * number}" for number in range(40)]
    for path in probes:
        assert httpx.get(f"{guarded.url}{path}", timeout=30).status_code == 401, path
    labels, lines_after = _endpoint_labels(guarded.url)
    assert not any(label.startswith("/probe-") or label == "/no-such-route" for label in labels), labels
    assert OTHER_PATHS in labels and "/extract" in labels  # known routes keep their own label
    assert lines_after == lines_before
    # the path still reaches the application unchanged: with the token, an unknown path is a 404
    assert httpx.get(f"{guarded.url}/no-such-route", headers=_auth(), timeout=30).status_code == 404
    assert httpx.get(f"{guarded.url}/model_info", headers=_auth(), timeout=30).status_code == 200


def test_a_client_error_is_one_info_line_not_an_error_with_a_traceback(guarded):
    """Every 400 was logged as `[ERROR] Exception on /extract` with a 25-line traceback."""
    marker = "x" * 11  # max_keywords 11 is over the limit: pydantic refuses the body
    refused = httpx.post(
        f"{guarded.url}/extract", json={"text": marker, "max_keywords": 11}, headers=_auth(), timeout=30
    )
    assert refused.status_code == 400
    deadline = time.monotonic() + 10
    while "max_keywords: Input should be less than or equal to 10" not in guarded.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, guarded.log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    log = guarded.log.read_text(errors="replace")
    line = next(line for line in log.splitlines() if "max_keywords: Input should be" in line)
    assert "[INFO]" in line and "/extract [POST] refused: 400 (1 validation error(s)" in line, line
    assert "Exception on /extract" not in log and "pydantic_core._pydantic_core.ValidationError" not in log


def test_serve_on_a_taken_port_says_so_in_one_line(talkative_model_dir, tmp_path):
    """It printed two lines and then a 50-line traceback from BentoML's process manager."""
    env = bentoml_env(tmp_path / "bentoml")
    env["KEYWORD_MODEL_TAG"] = import_model(talkative_model_dir, env, {"registered_model": "keyword-extractor"})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [str(Path(sys.executable).with_name("bentoml")), "serve", ".", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [
        f"error: 127.0.0.1:{port} is already in use (another `bentoml serve`?): stop that server, or serve on "
        f"another port with `bentoml serve --port {port + 1}` (and point the app there: KEYWORD_SERVICE_URL)"
    ]


def test_the_port_check_reads_the_serve_command_line_only():
    from service_support.port_check import serve_address

    bentoml = "/venv/bin/bentoml"
    assert serve_address([bentoml, "serve", ".", "--port", "4000"], {}, "127.0.0.1") == ("127.0.0.1", 4000)
    assert serve_address([bentoml, "serve", "-p=4001", "--host", "0.0.0.0"], {}, "127.0.0.1") == ("0.0.0.0", 4001)
    assert serve_address([bentoml, "serve"], {"BENTOML_PORT": "4002"}, "::1") == ("::1", 4002)
    assert serve_address([bentoml, "serve"], {}, "127.0.0.1") == ("127.0.0.1", 3000)
    worker = ["/venv/bin/python", "-m", "_bentoml_impl.worker.service", "."]
    assert serve_address(worker, {}, "127.0.0.1") is None  # the workers it starts never check


def test_readyz_answers_503_while_the_model_service_starts_instead_of_hanging(talkative_model_dir, tmp_path):
    """/readyz polled from the first moment: it hung until the request timeout, then a logged error and a 500.

    That happens when the model service starts more than BentoML's probe wait (5 s) after the public one
    (a loaded machine); test_middleware.py drives the same failure deterministically.
    """
    env = bentoml_env(tmp_path / "bentoml", KEYWORD_TIMEOUT_S="8")  # the hang, before the fix, lasted this long
    env["KEYWORD_MODEL_TAG"] = import_model(talkative_model_dir, env, {"registered_model": "keyword-extractor"})
    log = tmp_path / "serve.log"
    server = launch_bento(".", env, log)
    process = server.process
    answers: list[tuple[int, str]] = []
    try:
        for _ in range(3000):  # bounded: 0.05 s apart, and each answer within the client timeout
            if process.poll() is not None:
                pytest.fail(f"bentoml serve exited with {process.returncode}:\n{server.tail()}")
            try:
                answer = httpx.get(f"{server.url}/readyz", timeout=60)
            except httpx.TransportError:  # not listening yet
                time.sleep(0.05)
                continue
            answers.append((answer.status_code, answer.text))
            if answer.status_code == 200:
                break
            time.sleep(0.05)
    finally:
        stop_bento(server)
    assert answers and answers[-1][0] == 200, server.tail()
    # 503: ours ("not ready yet", the probe raised) or BentoML's ("Runners are not ready", it answered no)
    assert all(code == 503 for code, _ in answers[:-1]), answers
    assert "ASGI callable returned without starting response" not in log.read_text(), server.tail()
