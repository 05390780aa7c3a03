"""The bench's command line: the idle phase among the others."""

from __future__ import annotations

import pytest

from deploy.bench.config import IDLE_RATE, BenchConfigError, Phase, from_args, parse_rates


def test_idle_is_a_phase_named_like_the_others() -> None:
    phases = parse_rates("idle,200,1000/s,max")
    assert [p.name for p in phases] == ["idle", "200/s", "1000/s", "max"]
    assert [p.kind for p in phases] == ["idle", "rate", "rate", "max"]
    assert phases[0] == Phase.idle_phase()
    assert phases[0].rate == IDLE_RATE == 10  # one withdrawal every 100 ms


def test_the_default_run_includes_the_idle_phase() -> None:
    config = from_args([])
    assert [p.name for p in config.phases] == ["idle", "1000/s", "5000/s", "max"]
    assert config.idle_events == 200


@pytest.mark.parametrize("argv", [["--rates", "busy"], ["--idle-events", "0"]])
def test_bad_values_are_refused(argv: list[str]) -> None:
    with pytest.raises(BenchConfigError):
        from_args(argv)
