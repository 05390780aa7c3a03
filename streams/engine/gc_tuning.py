"""Garbage-collector settings for the worker process.

The worker holds several hundred thousand long-lived objects (Faust, aiokafka, the
tables) and allocates and frees a few hundred thousand more a second for each batch.
With CPython's default thresholds (700, 10, 10) a batch's messages, records and
futures outlive two young collections, get promoted, and grow the old generation by a
quarter every few seconds, which triggers a full collection of every tracked object:
17 of them, 2.5-2.8 s of CPU, in one 50,000-event run of ``python -m
deploy.bench.parts.stream_intake`` (a seventh of the worker's CPU, and ~0.15 s pauses). A young
generation of 20,000 lets a batch's garbage die young: the same run did one full
collection and ~1 s of collecting in all, at the same peak memory; a young collection
pauses ~10 ms. Cycles are still collected; only later.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000
"""Net new tracked objects between young collections (CPython's default is 700)."""


def tune() -> None:
    """Collect the young generation less often (the older ones keep their defaults)."""
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def freeze_startup_objects() -> None:
    """Collect once, then leave everything alive so far (modules, Faust's services,
    the app) out of every later collection: they live as long as the process."""
    gc.collect()
    gc.freeze()
