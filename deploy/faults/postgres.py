"""A private PostgreSQL cluster for the marketing sink, which the harness stops and starts.

Made with the server's own ``initdb`` (Debian's ``/usr/lib/postgresql/<version>/bin``,
or whatever is on PATH) in a temp directory, listening on 127.0.0.1 on a free port,
trust authentication for the ``postgres`` role. PostgreSQL refuses to run as root, so as
root the tools run as the ``postgres`` user (which the Debian package creates).

The server runs in the foreground as a child owned by the harness
(``deploy/local.py``'s ``owned_popen``): if the harness dies, however it dies, the
server is told to stop too. Stopping on purpose is ``pg_ctl stop -m fast``: connections
are cut as in an outage, and committed data stays.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

from deploy.bench.relay import free_port
from deploy.bench.stack import _load_local  # deploy/local.py is a script, loaded by path

DATABASE = "marketing"
START_TIMEOUT_S = 60.0


class PostgresError(RuntimeError):
    """The cluster could not be made, started or stopped; the message says why."""


def _tool(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]  # the newest installed version
    on_path = shutil.which(name)
    if on_path is None:
        raise PostgresError(
            f"PostgreSQL's {name} is not installed (make system-deps installs postgresql)"
        )
    return on_path


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    """One cluster under ``root``."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self._server: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, root: Path) -> Postgres:
        """A new, stopped cluster with a fresh data directory."""
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        cluster = cls(root, free_port())
        cluster._run(_tool("initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres")
        return cluster

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.root / "data"

    @property
    def url(self) -> str:
        """The marketing database's URL (the marketing sink's ``DATABASE_URL``)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        """Start the server; returns once it accepts connections."""
        server = [
            _tool("postgres"), "-D", str(self.data), "-p", str(self.port),
            "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
        ]  # fmt: skip
        log = (self.root / "server.log").open("ab")
        try:
            self._server = _load_local().owned_popen(
                _as_owner(server), stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._server.poll() is not None:
                raise PostgresError(f"the server exited: {self._log_tail()}")
            try:
                with psycopg.connect(admin, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresError(f"no connection within {START_TIMEOUT_S:.0f} s") from exc
                time.sleep(0.2)

    def create_database(self) -> None:
        """The marketing database (the sink creates its tables)."""
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        """Stop the server at once (``-m fast``), keeping its data."""
        self._run(_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        if self._server is not None:
            self._server.wait(30)
            self._server = None

    def running(self) -> bool:
        """Whether the server this object started runs."""
        return self._server is not None and self._server.poll() is None

    def _log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            _as_owner(list(argv)), capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise PostgresError(
                f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed ({done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-2000:]}"
            )
