"""What every process of the relay runs on, written once: settings from the environment,
the config files' validation, Kafka client configuration and authentication, topic
creation and broker waits, the one confirming producer, retry backoff, group membership,
logging, bearer tokens, the one HTTP client (:mod:`~schemas.runtime.http_client`, httpx)
and the one small HTTP server of the confluent-kafka processes
(:mod:`~schemas.runtime.http_server`).

:mod:`schemas` proper is the contract (what is on a topic and how it is named, keyed,
encoded and deduplicated); this subpackage is the plumbing the producers, the stream
worker, the gate and the sinks share, so none of them writes its own.
"""
