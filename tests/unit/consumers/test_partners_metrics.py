"""One set of collectors for every partner pipeline of the process (no merging)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumers.partners.config import KnownSubjects, PartnerConfig, PartnersConfig
from consumers.partners.process import PartnerSinkProcess
from consumers.partners.settings import PartnerSinkSettings
from schemas.runtime.kafka import KafkaSettings

KAFKA = KafkaSettings(bootstrap="127.0.0.1:9", registry_url="http://127.0.0.1:8081")
NAMES = ("criteo", "google", "yahoo")


def process(tmp_path: Path) -> PartnerSinkProcess:
    partners = tuple(
        PartnerConfig(
            name=name,
            url="http://127.0.0.1:9/hook",
            secret=b"s" * 32,
            pseudonym_key=b"k" * 32,
            known_subjects=KnownSubjects.ALL,
        )
        for name in NAMES
    )
    return PartnerSinkProcess(
        KAFKA,
        PartnerSinkSettings(config=tmp_path / "partners.toml"),
        PartnersConfig(partners=partners),
        metrics_port=0,
    )


def test_every_pipeline_and_the_consumer_write_to_the_process_collectors(tmp_path: Path) -> None:
    proc = process(tmp_path)
    assert {id(r.metrics) for r in proc.runners.values()} == {id(proc.metrics)}
    for name, runner in proc.runners.items():
        runner.metrics.instructions.labels("PARTNER_SHARING", name, "APPLIED").inc(2)
        runner.metrics.dead_letters.labels("sink.partner_sharing", "DecodeError").inc()

    text = generate_latest(proc.metrics.registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert text.count("# TYPE consent_relay_sink_instructions_total") == 1

    def value(family: str, name: str, **labels: str) -> float:
        return next(
            s.value for s in families[family].samples if s.name == name and s.labels == labels
        )

    instructions = "consent_relay_sink_instructions"
    for name in NAMES:
        labels = {"sink_family": "PARTNER_SHARING", "destination": name, "outcome": "APPLIED"}
        assert value(instructions, instructions + "_total", **labels) == 2
    dead = "consent_relay_dead_letters"
    assert value(dead, dead + "_total", stage="sink.partner_sharing", reason="DecodeError") == 3


def test_every_partners_breaker_gauge_shows_closed_from_the_start(tmp_path: Path) -> None:
    proc = process(tmp_path)
    text = generate_latest(proc.metrics.registry).decode()
    (family,) = (
        f
        for f in text_string_to_metric_families(text)
        if f.name == "consent_relay_circuit_breaker_open"
    )
    assert {s.labels["destination"]: s.value for s in family.samples} == dict.fromkeys(NAMES, 0)
