"""A private PostgreSQL cluster for the marketing sink, which the harness stops and starts.

Made with the server's own ``initdb`` and ``pg_ctl`` (Debian's
``/usr/lib/postgresql/<version>/bin``, or whatever is on PATH) in the run's state
directory, listening on 127.0.0.1 on a free port, trust authentication for the
``postgres`` role. PostgreSQL refuses to run as root, so as root the tools run as the
``postgres`` user (which the Debian package creates). Stopping is ``pg_ctl stop -m
fast``: connections are cut as in an outage, and committed data stays.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from deploy.bench.relay import free_port

DATABASE = "marketing"


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


@dataclass(frozen=True, slots=True)
class Postgres:
    """One cluster under ``root``."""

    root: Path
    port: int

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
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run(
            _tool("pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "start",
        )  # fmt: skip

    def create_database(self) -> None:
        """The marketing database (the sink creates its tables)."""
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        """Stop the server at once (``-m fast``), keeping its data."""
        self._run(_tool("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        """Whether the server runs (``pg_ctl status``)."""
        return self._run(_tool("pg_ctl"), "-D", str(self.data), "status", check=False) == 0

    def _run(self, *argv: str, check: bool = True) -> int:
        command = list(argv)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if check and done.returncode != 0:
            raise PostgresError(
                f"{Path(argv[0]).name} {' '.join(argv[1:3])} failed ({done.returncode}): "
                f"{(done.stdout + done.stderr).strip()[-2000:]}"
            )
        return done.returncode
