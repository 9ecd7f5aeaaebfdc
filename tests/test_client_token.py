"""The app's token goes to the configured service only, never to a URL someone typed in the sidebar.

A real HTTP server on 127.0.0.1 records the Authorization header of every request it gets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app_support import client

TOKEN = "token-that-must-not-leak"


@pytest.fixture
def collector() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_typed_url_gets_no_token(collector, monkeypatch):
    url, seen = collector
    monkeypatch.setenv("KEYWORD_API_TOKEN", TOKEN)
    monkeypatch.setenv("KEYWORD_SERVICE_URL", "http://127.0.0.1:3000")  # the configured service: elsewhere
    with pytest.raises(client.ServiceError):
        client.model_info(url)  # answers {}: not the service, but the request was made
    client.health(url)
    assert seen and seen == [None] * len(seen)


def test_the_configured_service_gets_the_token(collector, monkeypatch):
    url, seen = collector
    monkeypatch.setenv("KEYWORD_API_TOKEN", TOKEN)
    monkeypatch.setenv("KEYWORD_SERVICE_URL", url + "/")
    client.health(url)
    assert seen == [f"Bearer {TOKEN}"]
