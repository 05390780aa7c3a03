"""The broker and the schema registry the benchmark runs against.

``KAFKA_BOOTSTRAP`` and ``SCHEMA_REGISTRY_URL`` when both are set (their processes are
found by port, for the CPU table, when they run on this machine); otherwise
``deploy/local.py`` starts a local pair in ``var/local`` and the run stops it at the end.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from urllib.parse import urlparse

from deploy.bench import procfs
from deploy.bench.config import ROOT
from deploy.bench.say import say


@dataclass(frozen=True, slots=True)
class Stack:
    """Where the broker and registry are, and whether this run started them."""

    bootstrap: str
    registry_url: str
    reused: bool
    pids: dict[str, int]
    stop: Callable[[], None] | None = None


def _load_local() -> ModuleType:
    # deploy/local.py is a script, imported by path as the demo and the tests do.
    spec = importlib.util.spec_from_file_location("bench_local_stack", ROOT / "deploy" / "local.py")
    if spec is None or spec.loader is None:
        raise ImportError("deploy/local.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_local_stack"] = module
    spec.loader.exec_module(module)
    return module


def stack() -> Stack:
    """The environment's broker and registry, or a local pair started now."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "").strip()
    registry = os.environ.get("SCHEMA_REGISTRY_URL", "").strip().rstrip("/")
    if bootstrap and registry:
        pids = {}
        for name, port in (
            ("kafka broker", int(bootstrap.split(",")[0].rsplit(":", 1)[1])),
            ("schema registry", urlparse(registry).port or 80),
        ):
            pid = procfs.listening_pid(port)
            if pid is not None:
                pids[name] = pid
        return Stack(bootstrap, registry, True, pids)
    local = _load_local()
    state = ROOT / "var" / "local"
    say("starting the local Kafka broker and schema registry (deploy/local.py)")
    # Owned: stops with this run, also when the run is killed before it can stop it.
    ends = local.start(state_dir=state, owned=True, log=lambda m: say(f"local.py: {m}"))
    stop = None if ends.reused else (lambda: local.stop(state, log=lambda m: say(f"local.py: {m}")))
    return Stack(
        ends.bootstrap,
        ends.registry_url,
        ends.reused,
        {"kafka broker": ends.kafka_pid, "schema registry": ends.registry_pid},
        stop,
    )
