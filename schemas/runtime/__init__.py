"""What every process of the relay runs on, written once: settings from the environment,
the config files' validation, Kafka client configuration and authentication, topic
creation and broker waits, the one confirming producer, retry backoff, group membership,
logging and bearer tokens.

:mod:`schemas` proper is the contract (what is on a topic and how it is named, keyed,
encoded and deduplicated); this subpackage is the plumbing the producers, the stream
worker, the gate and the sinks share, so none of them writes its own.
"""
