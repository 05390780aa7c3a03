"""The partner-sharing process started before its broker waits for it, and a stop ends
the wait (a closed local port as the broker: nothing answers, nothing is sent)."""

from __future__ import annotations

import threading
from pathlib import Path

from consumers.partners.config import KnownSubjects, PartnerConfig, PartnersConfig
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PartnerSinkSettings
from schemas.runtime.kafka import KafkaSettings

ABSENT = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:9")


def test_a_partner_process_waits_for_an_absent_broker_until_stopped(tmp_path: Path) -> None:
    partner = PartnerConfig(
        name="criteo",
        url="http://127.0.0.1:9/hook",
        secret=b"s" * 32,
        pseudonym_key=b"k" * 32,
        known_subjects=KnownSubjects.ALL,
    )
    process = PartnerSinkProcess(
        ABSENT,
        PartnerSinkSettings(config=tmp_path / "partners.toml"),
        PartnersConfig(partners=(partner,)),
        metrics_port=0,
    )
    failures: list[BaseException] = []

    def run() -> None:
        try:
            process.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # Longer than a few attempts (0.5 + 1 + 2 s): still waiting, not exited.
    thread.join(4.0)
    assert thread.is_alive(), f"exited instead of waiting: {failures}"
    process.stop()
    # The attempt under way (at most 5 s) ends, then the wait does.
    thread.join(10.0)
    assert not thread.is_alive(), "a stop did not end the wait for the broker"
    assert failures == []
    assert process.http_port is None  # nothing was served: it never got past the wait
