"""RequestGuard on its own, driven as ASGI: the body limit counts the bytes that arrive, not the headers.

A real `bentoml serve` covers the same rules over sockets in test_service_guard.py; here the framing can
be anything at all (a server in front would refuse some of it before the guard ever saw it).
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import Message, Receive, Scope, Send

from service_support.middleware import RequestGuard, readable_error_body

LIMIT = 1000


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the guard: answers 200 with how many body bytes it was given."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"received": size}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def _call(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, dict]:
    scope = {"type": "http", "method": "POST", "path": "/other", "headers": headers, "query_string": b""}
    pending = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(RequestGuard(_echo_length, api_token="", max_body_bytes=LIMIT)(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_the_bytes_that_arrive_are_counted_whatever_content_length_declared():
    status, answer = _call([(b"content-length", b"5")], [b"x" * 600, b"x" * 600])
    assert status == 413 and "KEYWORD_MAX_BODY_BYTES" in answer["error"]


def test_ambiguous_framing_is_refused_with_400():
    both = [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    status, answer = _call(both, [b"{}"])
    assert status == 400 and "both Content-Length and Transfer-Encoding" in answer["error"]
    status, answer = _call([(b"Content-Length", b"2"), (b"content-length", b"2")], [b"{}"])
    assert status == 400 and "more than one Content-Length" in answer["error"]


def test_a_body_within_the_limit_reaches_the_app_whole():
    assert _call([], [b"x" * 400, b"x" * 400]) == (200, {"received": 800})
    assert _call([(b"content-length", b"1000")], [b"x" * 1000]) == (200, {"received": 1000})


def test_error_bodies_are_one_readable_object():
    """BentoML wraps an API's own 4xx in a one-item list and hides pydantic's errors under `detail`."""
    wrapped = readable_error_body(b'[{"error": "correction refused: x"}]')
    assert json.loads(wrapped) == {"error": "correction refused: x"}
    missing = {"loc": ["text"], "msg": "Field required", "type": "missing"}
    pydantic = json.dumps({"error": "1 validation error", "detail": [missing]}).encode()
    assert json.loads(readable_error_body(pydantic))["error"] == "invalid request: text: Field required"
    assert readable_error_body(b"not json") == b"not json"


def _probe_through_bentoml_timeout(app, path: str = "/readyz", timeout_s: float = 0.5) -> list[Message]:
    """What a client is sent when `app` answers `path` under BentoML's own request-timeout middleware."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(TimeoutMiddleware(app, timeout=timeout_s)(scope, receive, send))
    return sent


async def _probe_that_cannot_reach_the_model_service(scope: Scope, receive: Receive, send: Send) -> None:
    raise TimeoutError  # BentoML's dependency probe, while the model service is still starting


def test_a_failing_readiness_probe_is_answered_503_not_dropped():
    from service_support.readiness import ReadinessProbeGuard

    # the failure BentoML's probe had during start: its timeout middleware loses the exception and answers nothing
    assert _probe_through_bentoml_timeout(_probe_that_cannot_reach_the_model_service) == []
    sent = _probe_through_bentoml_timeout(ReadinessProbeGuard(_probe_that_cannot_reach_the_model_service))
    assert sent[0]["status"] == 503
    reason = "not ready yet: a service it depends on is still starting (TimeoutError)"
    assert json.loads(sent[1]["body"]) == {"error": reason}


def test_the_readiness_guard_leaves_other_paths_and_answered_probes_alone():
    import pytest

    from service_support.readiness import ReadinessProbeGuard

    with pytest.raises(TimeoutError):  # not a probe: the server's own error handling decides
        asyncio.run(
            ReadinessProbeGuard(_probe_that_cannot_reach_the_model_service)(
                {"type": "http", "method": "GET", "path": "/extract", "headers": []}, None, None
            )
        )
    ready = _probe_through_bentoml_timeout(ReadinessProbeGuard(_echo_length))
    assert ready[0]["status"] == 200
