"""Seed an empty store from the consent-state topic before consuming instructions.

Each state record (or batch of them, when the sink seeds in batches or from Avro) is
handed to the sink with retries (destination ``store``); an undecodable one is
dead-lettered. A stop ends the seeding early: the next start seeds again.
"""

from __future__ import annotations

import logging
import threading

from consumers.bootstrap import SeedsFromAvro, SeedsInBatches, bootstrap
from consumers.pipeline.answering import Answering
from consumers.pipeline.retrying import AbandonedError, Retrier
from consumers.protocol import FinishesBootstrap, Sink
from schemas.codec import EventDecoder
from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger(__name__)

STORE = "store"
"""Destination label of retries while bootstrapping (no instruction, the sink's store)."""


def seed(
    sink: Sink,
    settings: KafkaSettings,
    *,
    group_id: str,
    decoder: EventDecoder,
    retrier: Retrier,
    answering: Answering,
    stop: threading.Event,
    timeout: float,
) -> None:
    """Seed ``sink``'s store from the consent state, unless it already holds some."""
    if not retrier(sink.needs_bootstrap, STORE):
        return
    log.info("store is empty: seeding it from %s", settings.topics.state)
    try:
        count = bootstrap(
            settings,
            group_id=group_id,
            decoder=decoder,
            on_state=lambda state: retrier(lambda: sink.bootstrap(state), STORE),
            on_states=(
                (lambda states: retrier(lambda: sink.bootstrap_batch(states), STORE))
                if isinstance(sink, SeedsInBatches)
                else None
            ),
            on_avro=(
                (lambda states: retrier(lambda: sink.seed_avro_batch(states), STORE))
                if isinstance(sink, SeedsFromAvro)
                else None
            ),
            on_invalid=lambda message, exc: answering.dead_letter(message, exc, "bootstrap"),
            stop=stop,
            timeout=timeout,
        )
        answering.flush()
        if stop.is_set():
            log.info("stopped during bootstrap after %d state record(s)", count)
            return
        if isinstance(sink, FinishesBootstrap):
            retrier(sink.bootstrap_finished, STORE)
    except AbandonedError:
        log.info("stopped during bootstrap")
        return
    log.info("bootstrap done: %d state record(s)", count)
