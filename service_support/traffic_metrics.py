"""BentoML's request metrics with a bounded `endpoint` label.

BentoML labels its request counters and histograms with the raw request path, in a middleware that runs
before routing and before the token check: every distinct path anyone sends, answered 401 or 404, became
new time series (memory in the worker, metric files on disk, seconds per scrape) and was listed by the
open `/metrics` route. Here a path the service does not route keeps its own label only if it is one of
the service's routes; every other path is counted under `OTHER_PATHS`. The request itself still reaches
the application with its own path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

OTHER_PATHS = "other"  # the label every path outside the service's routes is counted under
_ORIGINAL_PATH = "keyword_extractor.original_path"  # where the real path waits while metrics see the label
_installed: dict[str, type] = {}


def _with_original_path(app: ASGIApp) -> ASGIApp:
    """`app` called with the request's own path again, after the metrics layer has read the label."""

    async def restored(scope: Scope, receive: Receive, send: Send) -> None:
        original_path = scope.get(_ORIGINAL_PATH)
        if original_path is not None:
            scope = {key: value for key, value in scope.items() if key != _ORIGINAL_PATH}
            scope["path"] = original_path
        await app(scope, receive, send)

    return restored


def bounded_metrics_middleware(base: type, known_paths: Iterable[str]) -> type:
    """A subclass of BentoML's metrics middleware `base` that labels unknown paths `OTHER_PATHS`."""
    known = frozenset(known_paths)

    class BoundedTrafficMetrics(base):
        def __init__(self, app: ASGIApp, **options) -> None:
            super().__init__(_with_original_path(app), **options)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket") and scope["path"] not in known:
                scope = {**scope, "path": OTHER_PATHS, _ORIGINAL_PATH: scope["path"]}
            await super().__call__(scope, receive, send)

    BoundedTrafficMetrics.known_paths = known
    return BoundedTrafficMetrics


def install(known_paths: Iterable[str]) -> bool:
    """Make BentoML build its request metrics with bounded labels; call before the server builds its app.

    BentoML imports the middleware class when it assembles the application, so replacing the class in its
    module is enough. Returns False (and warns) when this BentoML has no such class to replace.
    """
    try:
        from bentoml._internal.server.http import instruments
    except ImportError:
        instruments = None
    base = _installed.get("base") or getattr(instruments, "RunnerTrafficMetricsMiddleware", None)
    if base is None:
        log.warning("this BentoML has no request metrics middleware to bound; /metrics labels are BentoML's own")
        return False
    _installed["base"] = base
    instruments.RunnerTrafficMetricsMiddleware = bounded_metrics_middleware(base, known_paths)
    return True
