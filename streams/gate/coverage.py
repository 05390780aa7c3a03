"""When the gate's consent state covers a data event: the waiting rule. Pure.

A data event on partition *p* is decided only once the gate's state for *p* holds the
effect of every consent event that was on consent partition *p* when the gate read the
data event, so a withdrawal published before the data cannot be missed however far
behind the stream is (its event time then decides, see :mod:`streams.gate.rules`).
Three things must hold (:meth:`Coverage.need` names what is still missing):

1. **Intake has applied them.** ``applied`` is the next consent offset whose effects
   intake has published: its progress records (:mod:`streams.intake.progress`), or the
   workers' committed consent offset (intake commits only after publishing), whichever
   is further. It must reach ``consent_end``, the consent partition's end offset asked
   of the broker after the data was read.
2. **The gate knows where those effects are.** Intake writes its progress only after
   the batch's changelog records are acknowledged, so the changelog's end offset, asked
   of the broker *after* ``applied`` was learnt, bounds them. That end is asked again
   only when a batch needs a newer ``applied`` than the last end was asked for.
3. **The gate has read that far.** ``state_read`` (the next changelog offset read)
   reaches that end.

Before any of that, a newly assigned partition's state is rebuilt: the changelog's end
is asked the first time the partition is checked, and read to, before anything on that
partition is decided; and whatever end is known is always read to first. So the one
wait the gate's loop may cut short (``GATE_INTAKE_WAIT_SECONDS``) is the wait for intake,
never the reading of what the changelog already holds: a partly read state could let
through the data of a subject whose restriction or opt-out was not read yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Need(StrEnum):
    """What a partition still waits for (also how a wait is logged)."""

    INTAKE = "intake to apply the consent events already published"
    STATE_END = "the state changelog's end offset"
    STATE = "the state changelog to be read to that end"


@dataclass(slots=True)
class Coverage:
    """What the gate knows about one assigned partition's consent state."""

    applied: int = -1
    """Next consent offset whose effects intake has published (-1: nothing known)."""
    state_read: int = 0
    """Next state-changelog offset the gate has read."""
    state_end: int = -1
    """A changelog end offset holding the effects of consent before :attr:`end_for`
    (-1: not asked since the partition was assigned)."""
    end_for: int = -1
    """:attr:`applied` as it was when :attr:`state_end` was asked."""

    def intake_reached(self, offset: int) -> None:
        """Intake has published the effects of every consent event before ``offset``."""
        self.applied = max(self.applied, offset)

    def read_to(self, offset: int) -> None:
        """The gate has read the changelog up to (not including) ``offset``."""
        self.state_read = max(self.state_read, offset)

    def asked_end(self, end: int, applied_when_asked: int) -> None:
        """The changelog ended at ``end`` when asked, with :attr:`applied` then
        ``applied_when_asked`` (read before the question was sent)."""
        self.state_end = max(self.state_end, end)
        self.end_for = max(self.end_for, applied_when_asked)

    def need(self, consent_end: int) -> Need | None:
        """What is missing before data read when the consent partition ended at
        ``consent_end`` may be decided; None when nothing is."""
        if self.state_end < 0:
            return Need.STATE_END
        if self.state_read < self.state_end:
            return Need.STATE
        if self.applied < consent_end:
            return Need.INTAKE
        if self.end_for < consent_end:
            return Need.STATE_END
        return None
