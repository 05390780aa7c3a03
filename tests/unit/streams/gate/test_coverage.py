"""When the gate's state covers a data event (pure): intake has applied what was on the
consent partition, the changelog end holding those effects is known, and read."""

from __future__ import annotations

from streams.gate.coverage import Coverage, Need


def test_a_new_partition_is_rebuilt_before_anything_is_decided() -> None:
    coverage = Coverage()
    assert coverage.need(0) is Need.STATE_END  # asked once, whatever the consent end
    coverage.asked_end(10, applied_when_asked=coverage.applied)
    assert coverage.need(0) is Need.STATE
    coverage.read_to(9)
    assert coverage.need(0) is Need.STATE
    coverage.read_to(10)
    assert coverage.need(0) is Need.INTAKE  # not even the workers' offset known yet
    coverage.intake_reached(0)  # nothing committed: the consent partition starts at 0
    assert coverage.need(0) is Need.STATE_END  # the end asked before did not cover it
    coverage.asked_end(10, applied_when_asked=0)
    assert coverage.need(0) is None


def test_what_the_changelog_is_known_to_hold_is_read_before_intake_is_waited_for() -> None:
    # The loop may stop waiting for intake (GATE_INTAKE_WAIT_SECONDS), never for this.
    coverage = Coverage()
    coverage.asked_end(500, applied_when_asked=-1)
    coverage.read_to(200)
    assert coverage.need(10) is Need.STATE


def covered(applied: int = 5, end: int = 10) -> Coverage:
    coverage = Coverage()
    coverage.intake_reached(applied)
    coverage.asked_end(end, applied_when_asked=applied)
    coverage.read_to(end)
    return coverage


def test_a_withdrawal_published_before_the_data_is_waited_for_then_read() -> None:
    coverage = covered(applied=5)
    # The data was read when consent partition ended at 6: one more event, not applied.
    assert coverage.need(6) is Need.INTAKE
    coverage.intake_reached(6)  # intake's progress record (written after its acks)
    assert coverage.need(6) is Need.STATE_END  # where its state records are: ask
    coverage.asked_end(12, applied_when_asked=6)
    assert coverage.need(6) is Need.STATE
    coverage.read_to(12)
    assert coverage.need(6) is None


def test_an_end_asked_before_the_progress_was_known_does_not_cover_it() -> None:
    coverage = covered(applied=5)
    coverage.asked_end(11, applied_when_asked=5)  # asked, then progress 6 arrived
    coverage.intake_reached(6)
    coverage.read_to(11)
    assert coverage.need(6) is Need.STATE_END


def test_no_question_while_the_last_end_covers_the_data() -> None:
    coverage = covered(applied=6, end=12)
    coverage.intake_reached(9)  # intake moved on; the data needs only what is before 6
    assert coverage.need(6) is None
    assert coverage.need(7) is Need.STATE_END


def test_what_is_known_never_goes_back() -> None:
    coverage = covered(applied=6, end=12)
    coverage.intake_reached(3)
    coverage.asked_end(4, applied_when_asked=2)
    coverage.read_to(1)
    assert (coverage.applied, coverage.state_end, coverage.end_for, coverage.state_read) == (
        6,
        12,
        6,
        12,
    )
