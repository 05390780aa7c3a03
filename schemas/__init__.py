"""The Consent Relay contract: the one package producers, streams and consumers share.

It holds the Avro schemas (``avro/``), the typed event records (:mod:`schemas.events`),
the policy taxonomy (:mod:`schemas.taxonomy`), their validation, the codecs that turn
records into bytes and back, topic names, and the Kafka settings every process uses.
"""
