"""Static consumer-group membership: a name a restarted process gets back.

A sink or a gate killed and started again rejoins its group under its old name
(``group.instance.id``) and takes its partitions back at once; under a new name the
group would wait for the dead member's session to run out first. Configured names
(``<SINK>_SINK_GROUP_INSTANCE_ID``, ``GATE_GROUP_INSTANCE_ID``, e.g. a StatefulSet pod's
name) are used as they are. Otherwise :func:`claim` makes one: this host's name and a
slot number, the lowest not held by a live process of the same group on this host. A
slot is an advisory lock on a file (:data:`LOCK_DIR`) that the kernel drops when its
holder dies however it dies, so the restarted process finds its predecessor's slot free,
and two live members of one group on one host never share a name (the broker would
fence one of them off). It lives in ``schemas`` because sinks and the gate (``streams``)
both use it, and neither may import the other.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

from schemas.errors import ConsentRelayError

LOCK_DIR: Final = Path(tempfile.gettempdir()) / f"consent-relay-members-{os.getuid()}"
"""Where slot locks live: per user, and per machine (or container)."""

MAX_SLOTS: Final = 1024
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


class NoFreeSlotError(ConsentRelayError):
    """Every slot of a group on this host is held (more processes than ever expected)."""


@dataclass
class Membership:
    """A static member name, and the lock that keeps it ours until :meth:`release`."""

    name: str
    _lock: IO[bytes] | None = field(default=None, repr=False)

    def release(self) -> None:
        """Give the slot up (a dead process gives it up anyway)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def claim(group: str, configured: str = "", *, lock_dir: Path = LOCK_DIR) -> Membership:
    """The member name for one consumer of ``group``: ``configured`` if set, else
    ``<host>#<slot>`` with the lowest slot free on this host."""
    if configured:
        return Membership(configured)
    host = socket.gethostname()
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = _UNSAFE.sub("_", group)
    for slot in range(MAX_SLOTS):
        handle = (lock_dir / f"{stem}.{slot}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return Membership(f"{host}#{slot}", handle)
    raise NoFreeSlotError(f"all {MAX_SLOTS} member slots of {group} on {host} are held")
