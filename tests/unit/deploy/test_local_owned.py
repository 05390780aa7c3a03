"""deploy/local.py's owned children: they stop when the process that started them dies,
however it dies; detached ones (``up``, a developer's stack) run on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from tests.support.processes import ROOT, load_local_stack

# Starts ``sleep`` the way the first argument says, prints its pid, waits to be killed.
_OWNER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.support.processes import load_local_stack
    local = load_local_stack()
    if sys.argv[1] == "owned":
        child = local.owned_popen(["sleep", "600"])
    else:
        state = Path(sys.argv[2])
        child = local._spawn("sleeper", ["sleep", "600"], state, state, owned=False)
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def _gone_within(pid: int, bound: float) -> bool:
    deadline = time.monotonic() + bound
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_owner_of_sleep(*args: str) -> int:
    """Run :data:`_OWNER` with ``args``, SIGKILL it once its child runs; the child's pid."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, *args], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        pid = int(owner.stdout.readline())
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()
    return pid


def test_an_owned_child_stops_when_its_owner_is_killed() -> None:
    pid = _kill_owner_of_sleep("owned")
    assert _gone_within(pid, 5), f"sleep (pid {pid}) outlived its SIGKILLed owner"


def test_a_detached_stack_process_outlives_its_owner(tmp_path: Path) -> None:
    pid = _kill_owner_of_sleep("detached", str(tmp_path))
    try:
        assert not _gone_within(pid, 1), "a detached process (as `up` starts) died with its owner"
    finally:
        os.kill(pid, signal.SIGKILL)  # an orphan now: its new parent reaps it


def test_an_owned_child_outlives_the_thread_that_started_it() -> None:
    # Linux's parent-death signal follows the forking *thread*; a fixture or fault injector
    # may start a stack from a thread that ends long before the process does.
    local = load_local_stack()
    started: list[subprocess.Popen[bytes]] = []
    thread = threading.Thread(target=lambda: started.append(local.owned_popen(["sleep", "600"])))
    thread.start()
    thread.join()
    child = started[0]
    try:
        assert not _gone_within(child.pid, 1), "the owned child died with the starting thread"
    finally:
        child.kill()
        child.wait(5)
