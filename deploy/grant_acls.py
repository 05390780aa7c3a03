"""``python -m deploy.grant_acls``: create every role's ACLs (:mod:`deploy.acls`) on the
cluster the ``KAFKA_*`` settings name, as the principal they authenticate as (the
operator, a super user), for the topics under ``CONSENT_RELAY_TOPIC_PREFIX``.

The local stack grants them itself (``deploy/local.py up --sasl``); a cluster it did not
start needs this once per topic prefix: ``deploy/compose.yaml``'s setup service runs it,
and on Kubernetes the operator runs it from a checkout (deploy/k8s/kafka-users.yaml).
Repeating it changes nothing. The image does not ship ``deploy/``; compose mounts the two
files it needs.
"""

from __future__ import annotations

import logging
import sys

from confluent_kafka import KafkaException

from deploy import acls
from schemas.errors import ConfigError
from schemas.runtime.kafka import KafkaSettings

log = logging.getLogger("consent_relay.grant_acls")


def main() -> int:
    """Grant; 0 on success, 1 (with the reason logged) when the settings or the cluster
    refuse."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = KafkaSettings.from_env()
        if not settings.auth.sasl:
            raise ConfigError(
                "KAFKA_SECURITY_PROTOCOL", "is PLAINTEXT: a cluster without SASL has no ACLs"
            )
        count = acls.apply(settings.admin_config(), acls.grants(settings.topics))
    except (ConfigError, KafkaException) as exc:
        log.error("granting the relay's ACLs failed: %s", exc)
        return 1
    log.info(
        "%d ACL bindings for topic prefix %r granted as %s",
        count,
        settings.topic_prefix,
        settings.auth.username,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
