"""`bentoml serve` on a port that is taken: one line saying which port and what to do.

BentoML binds its socket after importing the service, and a taken port ends in a 50-line traceback from
its process manager. The serving command imports `service.py` first, so the check runs there, only in the
`bentoml serve` process itself (the workers it starts import the service too, on sockets it already holds).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PORT = 3000


def _option(argv: Sequence[str], names: tuple[str, ...]) -> str | None:
    for index, argument in enumerate(argv):
        for name in names:
            if argument == name and index + 1 < len(argv):
                return argv[index + 1]
            if argument.startswith(name + "="):
                return argument.split("=", 1)[1]
    return None


def serve_address(argv: Sequence[str], environ: dict[str, str], default_host: str) -> tuple[str, int] | None:
    """(host, port) that `bentoml serve` in `argv` will bind; None when `argv` is not `bentoml serve`."""
    if not argv or Path(argv[0]).name != "bentoml" or "serve" not in argv[1:]:
        return None
    port = _option(argv, ("--port", "-p")) or environ.get("BENTOML_PORT") or str(DEFAULT_PORT)
    host = _option(argv, ("--host",)) or environ.get("BENTOML_HOST") or default_host
    return host, int(port) if port.isdigit() else DEFAULT_PORT


def port_in_use(host: str, port: int) -> bool:
    """Whether binding (host, port) fails as the server's own bind would (SO_REUSEADDR, as it binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def exit_if_port_taken(default_host: str) -> None:
    """In the `bentoml serve` process: stop with one line when its port is taken. Elsewhere: nothing."""
    address = serve_address(sys.argv, dict(os.environ), default_host)
    if address is None or not port_in_use(*address):
        return
    host, port = address
    print(
        f"error: {host}:{port} is already in use (another `bentoml serve`?): stop that server, or serve on "
        f"another port with `bentoml serve --port {port + 1}` (and point the app there: KEYWORD_SERVICE_URL)",
        file=sys.stderr,
    )
    raise SystemExit(2)
