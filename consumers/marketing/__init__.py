"""The marketing sink: a suppression list per channel and purpose in a real database.

It answers "may I contact this person on this channel for this purpose?"
(:meth:`~consumers.marketing.store.MarketingStore.may_contact`, and
``GET /v1/may-contact``), exports suppressions for email service providers, and on
erasure keeps only keyed hashes of the person's addresses so that a re-imported
address stays suppressed. Run it with ``python -m consumers.marketing``.
"""

DESTINATION = "suppression_list"
"""The marketing family's only destination (the agreed routing name)."""
