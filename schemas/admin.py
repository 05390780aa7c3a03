"""Creating Consent Relay's topics on a broker (idempotent)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.errors import ConsentRelayError
from schemas.kafka import KafkaSettings
from schemas.topics import TopicSpec


def ensure_topics(
    settings: KafkaSettings, specs: tuple[TopicSpec, ...] | None = None, timeout: float = 30.0
) -> list[str]:
    """Create whichever of ``specs`` (default: every topic) is missing; names created."""
    specs = settings.topics.all() if specs is None else specs
    admin = AdminClient(settings.admin_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config)
        for s in specs
        if s.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise ConsentRelayError(f"cannot create topic {name}: {exc}") from exc
    return created
