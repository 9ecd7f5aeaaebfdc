"""`/readyz` answers 503 while the model service is not ready yet, instead of hanging and then a 500.

While `bentoml serve` starts, the public service is up a few seconds before the model service. BentoML's
probe asks the model service and catches only httpx's timeouts; what it raised while the model service
was still loading was an asyncio `TimeoutError`. Its timeout middleware, which sits above, runs the app as
a separate task and never sees that exception: the poll hung for the whole request timeout
(`KEYWORD_TIMEOUT_S`, 60 s) and ended as `[ERROR] ASGI callable returned without starting response` and a
500. Here the probe's exception becomes the answer it meant, as soon as the probe gives up (its own wait,
about 5 s): not ready yet, with the reason, logged as one INFO line.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

READINESS_PATHS = ("/readyz",)


class ReadinessProbeGuard:
    """ASGI middleware: an exception under a readiness probe, before any answer, becomes a 503."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = READINESS_PATHS) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        answered = False

        async def noting_send(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        except Exception as error:  # the probe's own failure: whatever it is, the service is not ready
            if answered:
                raise
            reason = f"not ready yet: a service it depends on is still starting ({_described(error)})"
            log.info("%s: %s", scope["path"], reason)
            await JSONResponse({"error": reason}, status_code=503)(scope, receive, send)


def _described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
