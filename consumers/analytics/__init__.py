"""The analytics sink: keeps the analytics store's opt-out list, erasures and restrictions
in step with consent, and answers "may I process this person?" for the analytics side.

The store is a SQLite database (:mod:`consumers.analytics.store`) holding the analytics
events themselves, the opt-out list (account and device ids), the restriction list and
the ids of instructions already applied. Analytics jobs read ``processable_events``, a
view that leaves out opted-out and restricted people; they call
:func:`consumers.analytics.store.AnalyticsStore.may_process` (or ``GET /may-process``
on port 8092) before processing anyone new. Run with ``python -m consumers.analytics``.
"""
