"""Static member names: stable across a restart, never shared by two live consumers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schemas.runtime.membership import Membership, claim

HOST = socket.gethostname()


@pytest.fixture
def claims(tmp_path: Path) -> Iterator[Callable[[str], Membership]]:
    """``claim(group)`` under ``tmp_path``; every claim released at the end."""
    held: list[Membership] = []

    def claim_in(group: str) -> Membership:
        held.append(claim(group, lock_dir=tmp_path))
        return held[-1]

    yield claim_in
    for membership in held:
        membership.release()


def test_a_configured_name_is_used_as_it_is(tmp_path: Path) -> None:
    assert claim("g", "pod-3", lock_dir=tmp_path).name == "pod-3"


def test_live_members_of_a_group_get_different_names(
    claims: Callable[[str], Membership],
) -> None:
    first, second, other_group = claims("g"), claims("g"), claims("h")
    assert (first.name, second.name, other_group.name) == (f"{HOST}#0", f"{HOST}#1", f"{HOST}#0")


def test_a_released_name_is_taken_again(claims: Callable[[str], Membership]) -> None:
    first = claims("g")
    claims("g")
    first.release()
    assert claims("g").name == f"{HOST}#0"


def test_a_killed_process_leaves_its_name_to_its_restart(
    tmp_path: Path, claims: Callable[[str], Membership]
) -> None:
    code = (
        "import sys, time; from pathlib import Path; from schemas.runtime.membership import claim; "
        f"m = claim('g', lock_dir=Path({str(tmp_path)!r})); print(m.name, flush=True); "
        "time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == f"{HOST}#0"
        alive = claims("g")
        assert alive.name == f"{HOST}#1"  # the child is alive: its name is not shared
        alive.release()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert claims("g").name == f"{HOST}#0"


def test_group_names_are_made_safe_for_file_names(
    tmp_path: Path, claims: Callable[[str], Membership]
) -> None:
    claims("consent-relay.sink/../marketing")
    assert [p.name for p in tmp_path.iterdir()] == ["consent-relay.sink_.._marketing.0.lock"]
