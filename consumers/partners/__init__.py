"""The partner-sharing sink: tells each partner (sellers, business partners, advertising
platforms...) by signed HTTP webhook that a person withdrew, objected or asked erasure.

Each partner is its own destination with its own pipeline, position in the partners'
topic, webhook client and circuit breaker, fed by the process's one consumer
(:mod:`consumers.partners.fanout`), so a dead or slow partner never delays the others.
Their receipts leave through one producer, joined per receipts partition
(:mod:`consumers.joined_receipts`).
Partners only ever see a pseudonymous id keyed per partner
(:mod:`consumers.partners.pseudonym`), never the internal subject id. Run with
``python -m consumers.partners``.
"""
