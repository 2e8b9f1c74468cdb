"""A real PostgreSQL server for the tests: `initdb` into a temp dir, `postgres` on a free loopback port, stopped by
its process id. It never touches a system cluster: its own data dir, its own socket dir, its own port.

The server binaries come from Debian's `postgresql` package (`.ci/run` installs it). As root (CI), the server runs
as the `postgres` user the package creates, because PostgreSQL refuses to run as root. When `CI` is set, a missing
PostgreSQL fails the test (tests/tiers.py); elsewhere it skips.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests.tiers import unavailable

USER = "safeguard"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    host: str
    port: int
    password: str
    pid: int
    process: subprocess.Popen[bytes]
    root: Path

    def url(self, database: str = "postgres") -> str:
        """A URL without the password (the password goes apart, as the settings keep it)."""
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh database for one test; returns its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), password=self.password, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of this server's postmaster, by its pid."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def _missing(why: str) -> NoReturn:
    unavailable(f"no PostgreSQL: {why} (.ci/run installs Debian's postgresql package)")


@contextlib.contextmanager
def postgres_server(base: Path | None = None) -> Iterator[PostgresServer]:
    initdb, postgres = _bin("initdb"), _bin("postgres")
    if initdb is None or postgres is None:
        _missing("initdb/postgres not found")
    root = Path(tempfile.mkdtemp(prefix="safeguard-pg-", dir=base))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    password = uuid.uuid4().hex
    pwfile = root / "pw"
    pwfile.write_text(password)
    run_as: str | None = None
    if os.geteuid() == 0:  # PostgreSQL refuses root: run it as the package's postgres user
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            _missing("running as root and there is no postgres user")
        run_as = "postgres"
        os.chmod(root, 0o700)
        for path in (root, sockets, pwfile):
            os.chown(path, account.pw_uid, account.pw_gid)
    subprocess.run(
        [initdb, "-D", str(data), "-U", USER, "--pwfile", str(pwfile), "--auth=scram-sha-256", "--no-locale",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, user=run_as,
    )  # fmt: skip
    port = _free_port()
    log = open(root / "postgres.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [postgres, "-D", str(data), "-p", str(port), "-k", str(sockets), "-c", "listen_addresses=127.0.0.1",
         "-c", "fsync=off", "-c", "max_connections=200"],
        stdout=log, stderr=subprocess.STDOUT, user=run_as,
    )  # fmt: skip
    server = PostgresServer("127.0.0.1", port, password, process.pid, process, root)
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout_s: float = 60.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited: {(server.root / 'postgres.log').read_text()[-2000:]}")
        try:
            with psycopg.connect(server.url(), password=server.password, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
