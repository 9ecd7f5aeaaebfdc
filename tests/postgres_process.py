"""A throwaway PostgreSQL server for tests: `initdb` + `pg_ctl` into a temporary folder, 127.0.0.1 only.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` account that Debian's
package creates (through `runuser`). Trust authentication on loopback: the server lives only as long as
the test and accepts no outside connection.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service_support.local_server import free_port

USER = "keywords"


def server_binaries() -> Path | None:
    """The folder holding `initdb` and `pg_ctl` (Debian keeps them out of PATH), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{USER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        self.sql("postgres", f'CREATE DATABASE "{name}"')

    def sql(self, database: str, statement: str) -> str:
        result = subprocess.run(
            ["psql", "-h", self.host, "-p", str(self.port), "-U", USER, "-d", database, "-tAc", statement],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {result.stderr.strip()}")
        return result.stdout.strip()


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A started server with superuser `keywords`; stopped (fast shutdown) and deleted on exit.

    Its folder is a fresh one directly under the system temp dir: pytest's own temp folders are
    private to root, which the `postgres` account could not enter.
    """
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError("PostgreSQL's initdb was not found: run scripts/install_postgres.sh")
    folder = Path(tempfile.mkdtemp(prefix="keywords-postgres-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-locale"]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True, timeout=120)
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    pg_ctl = str(binaries / "pg_ctl")
    log = folder / "server.log"
    start = [pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]
    subprocess.run(_as_server_user(start), check=True, capture_output=True, timeout=90)
    try:
        server = Postgres("127.0.0.1", port)
        deadline = time.monotonic() + 30
        while True:
            try:
                server.sql("postgres", "SELECT 1")
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield server
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_server_user(stop), capture_output=True, timeout=90)
        shutil.rmtree(folder, ignore_errors=True)
