"""ASGI middleware of the public service: API token, body size, JSON only, readable validation errors."""

from __future__ import annotations

import hmac
import json

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_support.settings import OPEN_PATHS


def readable_errors(detail: list[dict]) -> str:
    """'text: String should have at least 1 character; num_beams: ...' from pydantic's error list."""
    parts = []
    for error in detail:
        where = ".".join(str(part) for part in error.get("loc", ())) or "body"
        parts.append(f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _authorized(header: bytes, api_token: str) -> bool:
    """Whether an Authorization header carries the API token (compared in constant time)."""
    scheme, _, token = header.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_token.encode())


def _unauthorized() -> JSONResponse:
    error = "missing or wrong API token: send 'Authorization: Bearer <KEYWORD_API_TOKEN>'"
    return JSONResponse({"error": error}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _buffered_body(receive: Receive, limit: int) -> list[Message] | None:
    """A body sent without Content-Length, read up to `limit` bytes; None as soon as it is longer."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body"):
            return messages


class RequestGuard:
    """ASGI middleware: the API token, the body size limit, JSON bodies only, readable validation errors.

    - With KEYWORD_API_TOKEN set, a request to any route but the health and metrics probes without the
      token is answered 401 before anything else happens.
    - A body over KEYWORD_MAX_BODY_BYTES is answered 413 without being read: by its Content-Length, or,
      for a chunked body, as soon as the bytes received pass the limit.

    - BentoML parses form and multipart bodies itself and answers a malformed one with 500 (it turns
      Starlette's 400 into 500): a body that is not JSON is refused here with 415.
    - BentoML's 400 says only "1 validation error for ExtractRequest" and puts pydantic's list under
      `detail`, while its OpenAPI page documents `detail` as a string. The 400 is rewritten to
      {"error": "invalid request: text: String should have at least 1 character", "errors": [...]}.
    """

    ACCEPTED = (b"", b"application/json")

    def __init__(
        self,
        app: ASGIApp,
        api_token: str,
        max_body_bytes: int,
        paths: tuple[str, ...] = ("/extract", "/extract_batch"),
    ) -> None:
        """`api_token` ('' for none) and `max_body_bytes`: the service's settings (`ServiceSettings`)."""
        self.app = app
        self.api_token = api_token
        self.max_body_bytes = max_body_bytes
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.api_token and scope["path"] not in OPEN_PATHS:
            if not _authorized(headers.get(b"authorization", b""), self.api_token):
                await _unauthorized()(scope, receive, send)
                return
        bounded = await self._bounded_body(scope, headers, receive)
        if bounded is None:
            limit = f"{self.max_body_bytes:,} bytes (KEYWORD_MAX_BODY_BYTES)"
            too_large = {"error": f"request body larger than {limit}: send fewer texts"}
            await JSONResponse(too_large, status_code=413)(scope, receive, send)
            return
        receive = bounded
        if scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type not in self.ACCEPTED:
            message = f"unsupported Content-Type {content_type.decode('latin-1')!r}: send JSON (application/json)"
            await JSONResponse({"error": message}, status_code=415)(scope, receive, send)
            return
        held: dict[str, Message] = {}
        chunks: list[bytes] = []

        async def send_readable(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held["start"] = message  # hold the 400 until its body is known
                return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            await send_error(b"".join(chunks))

        async def send_error(body: bytes) -> None:
            try:
                detail = json.loads(body).get("detail")
            except (ValueError, AttributeError):
                detail = None
            if isinstance(detail, list):
                errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in detail if isinstance(e, dict)]
                body = json.dumps({"error": f"invalid request: {readable_errors(errors)}", "errors": errors}).encode()
            headers = [(k, v) for k, v in held["start"]["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**held["start"], "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_readable)

    async def _bounded_body(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive) -> Receive | None:
        """`receive` for a body within the limit; None for one over it (by its Content-Length, or as read)."""
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_body_bytes):
            return None
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            messages = await _buffered_body(receive, self.max_body_bytes)
            return None if messages is None else _replay(messages, receive)
        return receive


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the buffered messages first, then whatever comes (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
