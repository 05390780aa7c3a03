"""A broker and registry of the run's own, which it may stop and start again.

Started with ``deploy/local.py`` on free ports under the run's state directory, never
the shared development stack: stopping the broker would break everyone else's tests.
The broker is stopped with SIGTERM (a clean shutdown) and started again from the same
state directory, so it comes back with its data, on the same ports, while the registry
keeps running. Both are owned by the harness: if it dies, however it dies, they stop.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from deploy.bench.stack import _load_local  # deploy/local.py is a script, loaded by path
from deploy.faults.say import say

STOP_TIMEOUT_S = 60.0


class ClusterError(RuntimeError):
    """The private broker or registry did not start or stop."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """A running private broker + registry."""

    local: ModuleType
    state_dir: Path
    bootstrap: str
    registry_url: str

    @classmethod
    def start(cls, state_dir: Path) -> Cluster:
        """Broker and registry on free ports, state under ``state_dir``."""
        local = _load_local()
        state_dir.mkdir(parents=True, exist_ok=True)
        ports = local.pick_free_ports(3)
        say(f"starting a private broker and registry in {state_dir}")
        try:
            # Owned: a harness killed mid-run leaves no broker or registry behind.
            ends = local.start(state_dir, *ports, owned=True, log=_quiet)
        except local.StackError as exc:
            raise ClusterError(str(exc)) from exc
        return cls(local, state_dir, ends.bootstrap, ends.registry_url)

    def broker_pid(self) -> int | None:
        """The broker's pid while it runs."""
        for component in self.local.status(self.state_dir):
            if component.name == self.local.KAFKA and component.running:
                pid: int = component.pid
                return pid
        return None

    def stop_broker(self) -> None:
        """SIGTERM the broker and wait until it has gone (its data stays)."""
        pid = self.broker_pid()
        if pid is None:
            raise ClusterError("the broker is not running")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self.broker_pid() is not None:
            if time.monotonic() > deadline:
                raise ClusterError(f"the broker did not stop within {STOP_TIMEOUT_S:.0f} s")
            time.sleep(0.2)

    def start_broker(self) -> None:
        """Start the broker again from its state directory; returns once it answers."""
        try:
            self.local.start(self.state_dir, owned=True, log=_quiet)
        except self.local.StackError as exc:
            raise ClusterError(str(exc)) from exc

    def stop(self) -> None:
        """Stop broker and registry."""
        self.local.stop(self.state_dir, log=_quiet)


def _quiet(_message: Any) -> None:
    """deploy/local.py's progress lines would drown the harness's own."""
