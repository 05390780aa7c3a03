"""Keeping the relay's processes running, as an orchestrator would, and counting exits.

Every process the harness did not kill itself and that exits anyway is an unexpected
exit: it is recorded (name, exit code, time, log tail) and the process is started
again after a pause, as a container orchestrator would restart it, so the run goes on
and measures what follows. The harness's own kills and restarts go through
:meth:`Supervisor.kill_and_restart`, under the same lock, so the two never race.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass

from deploy.bench.relay import Relay, RelayError
from deploy.faults.say import say

POLL_S = 0.5
RESTART_PAUSE_S = 3.0
"""Before restarting a process that exited on its own (a crash loop stays bounded)."""


@dataclass(frozen=True, slots=True)
class Exit:
    """A process that exited without being told to."""

    name: str
    code: int
    at: float
    log_tail: str


class Supervisor(threading.Thread):
    """Watches the relay's processes until :meth:`stop`."""

    def __init__(self, relay: Relay, startup_timeout: float) -> None:
        super().__init__(name="faults-supervisor", daemon=True)
        self.relay = relay
        self.exits: list[Exit] = []
        self.restart_failures: list[str] = []
        self._timeout = startup_timeout
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        """Restart whatever exited on its own."""
        while not self._halt.wait(POLL_S):
            with self._lock:
                dead = [c for c in self.relay.children if c.popen.poll() is not None]
                for child in dead:
                    code = child.popen.returncode
                    self.exits.append(Exit(child.name, code, time.time(), child.tail(20)))
                    say(f"{child.name} exited on its own with {code}; restarting it")
            for child in dead:
                if self._halt.wait(RESTART_PAUSE_S):
                    return
                self._restart(child.name)

    def _restart(self, name: str) -> None:
        with self._lock:
            [child] = [c for c in self.relay.children if c.name == name]
            if child.popen.poll() is None:
                return  # the harness restarted it meanwhile
            try:
                self.relay.restart(name, self._timeout)
            except RelayError as exc:
                # The new process died too: the next poll sees it and counts it.
                self.restart_failures.append(f"{name}: {str(exc)[:300]}")

    def kill_and_restart(self, name: str) -> tuple[float, float]:
        """SIGKILL ``name``, start it again at once; (killed at, restarted at) wall times."""
        with self._lock:
            [child] = [c for c in self.relay.children if c.name == name]
            killed = time.time()
            child.popen.send_signal(signal.SIGKILL)
            child.popen.wait(30)
            restarted = time.time()
            try:
                self.relay.restart(name, self._timeout)
            except RelayError as exc:
                self.restart_failures.append(f"{name}: {str(exc)[:300]}")
            return killed, restarted

    def stop(self) -> None:
        """Stop watching (before the relay is stopped on purpose)."""
        self._halt.set()
        self.join(30)
        # Taking the lock once means no restart is half done when the relay is stopped.
        with self._lock:
            return
