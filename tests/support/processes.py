"""Start relay processes (``python -m <module>``) and private broker + registry stacks for a
test, and stop them afterwards.

A process that dies or never answers fails the test with its log tail, so a broken
entrypoint reads as what it is.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from tests.support.access import API_TOKEN

ROOT = Path(__file__).resolve().parents[2]
LOCAL_PY = ROOT / "deploy" / "local.py"
_LOCAL_MODULE = "consent_relay_deploy_local"
T = TypeVar("T")


def load_local_stack() -> ModuleType:
    """Import ``deploy/local.py`` by path (it is a script, not part of a package), once."""
    loaded = sys.modules.get(_LOCAL_MODULE)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(_LOCAL_MODULE, LOCAL_PY)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {LOCAL_PY}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_LOCAL_MODULE] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def start_private_stack(state_dir: Path, log: Callable[[str], None]) -> Any:
    """A broker + registry of this process alone, on free ports, state under ``state_dir``;
    returns deploy/local.py's ``Endpoints``. Raises its ``StackError`` when it cannot start.

    Owned by this process: they stop when it dies, also when it is killed before its
    fixtures are torn down."""
    local = load_local_stack()
    kafka_port, controller_port, registry_port = local.pick_free_ports(3)
    return local.start(state_dir, kafka_port, controller_port, registry_port, owned=True, log=log)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` of a log file."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def relay_process(
    module: str,
    env: Mapping[str, str],
    log: Path,
    *,
    ready_url: str | None = None,
    bound: float = 90.0,
    args: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m module``; wait for ``ready_url``; SIGTERM (then SIGKILL) at exit.

    The process also gets SIGTERM when the test process dies without this exit."""
    with log.open("wb") as out:
        child: subprocess.Popen[bytes] = load_local_stack().owned_popen(
            [sys.executable, "-m", module, *args],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        try:
            if ready_url is not None:
                wait_http(ready_url, child, log, bound)
            yield child
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(10)


def wait_http(url: str, child: subprocess.Popen[bytes], log: Path, bound: float) -> None:
    """Wait until ``url`` answers 2xx; fail with the log tail if the process dies first."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if child.poll() is not None:
            pytest.fail(f"{url}: process exited with {child.returncode}:\n{log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {bound:g} s:\n{log_tail(log)}")


def wait_for(what: str, probe: Callable[[], T | None], bound: float = 90.0) -> T:
    """Poll ``probe`` until it returns something other than None/False; fail after ``bound``."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        value = probe()
        if value is not None and value is not False:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {bound:g} s waiting for {what}")


def http_text(url: str) -> str:
    """GET ``url`` and return the body as text."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


@contextmanager
def stream_and_marketing_sink(
    relay_env: Mapping[str, str], tmp_path: Path, name: str, group: str
) -> Iterator[tuple[str, str]]:
    """A stream worker and a marketing sink (SQLite under ``tmp_path``) on the relay of
    ``relay_env``, both answering /metrics, their APIs wanting
    :data:`~tests.support.access.API_TOKEN`; yields their base URLs (stream, sink)."""
    stream_port, sink_port = free_port(), free_port()
    stream_env = {
        **relay_env,
        "STREAMS_APP_ID": f"{name}-{group}",
        "STREAMS_WEB_PORT": str(stream_port),
        "STREAMS_DATA_DIR": str(tmp_path / "streams"),
        "STREAMS_API_TOKEN": API_TOKEN,
    }
    sink_env = {
        **relay_env,
        "MARKETING_SINK_DATABASE_URL": f"sqlite:///{tmp_path / 'marketing.sqlite'}",
        "MARKETING_SINK_HASH_KEY": f"{name}-test-hash-key",
        "MARKETING_SINK_HTTP_PORT": str(sink_port),
        "MARKETING_SINK_GROUP_ID": f"{group}-marketing",
        "MARKETING_SINK_API_TOKEN": API_TOKEN,
    }
    stream_url = f"http://127.0.0.1:{stream_port}"
    sink_url = f"http://127.0.0.1:{sink_port}"
    with (
        relay_process(
            "streams", stream_env, tmp_path / "streams.log", ready_url=f"{stream_url}/metrics"
        ),
        relay_process(
            "consumers.marketing",
            sink_env,
            tmp_path / "marketing.log",
            ready_url=f"{sink_url}/metrics",
        ),
    ):
        yield stream_url, sink_url
