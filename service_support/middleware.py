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


def readable_error_body(body: bytes) -> bytes:
    """A 4xx body as {"error": "..."}: pydantic's error list made readable, BentoML's list wrapper removed.

    BentoML answers a validation error with "1 validation error for X" and the list under `detail`, and
    answers a 4xx raised by an API (e.g. the 422 of /feedback) as `[{"error": "..."}]`, a one-item list.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if isinstance(parsed, list) and len(parsed) == 1 and isinstance(parsed[0], dict) and "error" in parsed[0]:
        return json.dumps(parsed[0], ensure_ascii=False).encode()
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    if isinstance(detail, list):
        errors = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in detail if isinstance(e, dict)]
        return json.dumps({"error": f"invalid request: {readable_errors(errors)}", "errors": errors}).encode()
    return body


def _authorized(header: bytes, api_token: str) -> bool:
    """Whether an Authorization header carries the API token (compared in constant time)."""
    scheme, _, token = header.decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_token.encode())


def _unauthorized() -> JSONResponse:
    error = "missing or wrong API token: send 'Authorization: Bearer <KEYWORD_API_TOKEN>'"
    return JSONResponse({"error": error}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def framing_problem(raw_headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why a request's body framing is ambiguous, or None.

    A Content-Length beside a Transfer-Encoding (or two Content-Lengths) lets the server and anything in
    front of it disagree on where the body ends: request smuggling, and a body limit judged on a length
    that is not the one read. RFC 9112 §6.1 allows refusing such a request, and it is refused.
    """
    names = [name.lower() for name, _ in raw_headers]
    if names.count(b"content-length") > 1:
        return "more than one Content-Length header"
    if b"content-length" in names and b"transfer-encoding" in names:
        return "both Content-Length and Transfer-Encoding: send one of them"
    return None


async def _buffered_body(receive: Receive, limit: int) -> list[Message] | None:
    """The body as received, read up to `limit` bytes; None as soon as more than that arrived."""
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
    - A body over KEYWORD_MAX_BODY_BYTES is answered 413: at once by its Content-Length, else as soon as
      the bytes received pass the limit (they are counted whatever the headers declare). A request
      with both Content-Length and Transfer-Encoding, or two Content-Lengths, is answered 400.

    - BentoML parses form and multipart bodies itself and answers a malformed one with 500 (it turns
      Starlette's 400 into 500): a body that is not JSON is refused here with 415.
    - BentoML's 400 says only "1 validation error for ExtractRequest" and puts pydantic's list under
      `detail`, while its OpenAPI page documents `detail` as a string. The 400 is rewritten to
      {"error": "invalid request: text: String should have at least 1 character", "errors": [...]}, and
      a 4xx an API raises (BentoML sends `[{"error": ...}]`) to {"error": ...}.
    """

    ACCEPTED = (b"", b"application/json")
    REWRITTEN = (400, 422)  # the answers whose bodies BentoML shapes unhelpfully

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
        refusal, receive = await self._admit(scope, headers, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope["path"] in self.paths and scope["method"] != "POST":  # Starlette's 405 is plain text
            message = f"method {scope['method']} not allowed on {scope['path']}: use POST with a JSON body"
            await JSONResponse({"error": message}, status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
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
            if message["type"] == "http.response.start" and message["status"] in self.REWRITTEN:
                held["start"] = message  # hold the 4xx until its body is known
                return
            if "start" not in held or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = readable_error_body(b"".join(chunks))
            headers = [(k, v) for k, v in held["start"]["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**held["start"], "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, send_readable)

    async def _admit(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> tuple[JSONResponse | None, Receive]:
        """The answer that refuses the request (token, framing, size), or None and a `receive` to read it from."""
        if self.api_token and scope["path"] not in OPEN_PATHS:
            if not _authorized(headers.get(b"authorization", b""), self.api_token):
                return _unauthorized(), receive
        if problem := framing_problem(scope["headers"]):
            return JSONResponse({"error": f"ambiguous request framing: {problem}"}, status_code=400), receive
        bounded = await self._bounded_body(headers, receive)
        if bounded is None:
            limit = f"{self.max_body_bytes:,} bytes (KEYWORD_MAX_BODY_BYTES)"
            return JSONResponse({"error": f"request body larger than {limit}: send fewer texts"}, 413), receive
        return None, bounded

    async def _bounded_body(self, headers: dict[bytes, bytes], receive: Receive) -> Receive | None:
        """`receive` for a body within the limit; None for one over it.

        A declared Content-Length over the limit is refused before reading; otherwise the bytes that
        actually arrive are counted, whatever the headers said.
        """
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.max_body_bytes):
            return None
        messages = await _buffered_body(receive, self.max_body_bytes)
        return None if messages is None else _replay(messages, receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the buffered messages first, then whatever comes (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
