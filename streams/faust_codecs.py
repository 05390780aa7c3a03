"""The table codecs registered with Faust, by name, for the worker's tables.

The format itself is :mod:`streams.table_codecs`, which does not import Faust: the
consent gate reads the state changelog with it in a process of its own that must not
load Faust (one Kafka client library per process, ADR 0001). Only the worker's wiring
(:mod:`streams.app`) imports this module. ``_dumps``/``_loads`` are the hooks Faust
documents for a custom codec.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from streams.table_codecs import (
    decode_done,
    decode_pending,
    decode_state,
    encode_done,
    encode_pending,
    encode_state,
)

STATE_CODEC = "consent_relay_state"
PENDING_CODEC = "consent_relay_pending"
DONE_CODEC = "consent_relay_done"


class _StateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return encode_state(obj)

    def _loads(self, s: bytes) -> Any:
        return decode_state(s)


class _PendingCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return encode_pending(obj)

    def _loads(self, s: bytes) -> Any:
        return decode_pending(s)


class _DoneCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return encode_done(obj)

    def _loads(self, s: bytes) -> Any:
        return decode_done(s)


def register_codecs() -> None:
    """Make the table codecs known to Faust (idempotent)."""
    codecs.register(STATE_CODEC, _StateCodec())
    codecs.register(PENDING_CODEC, _PendingCodec())
    codecs.register(DONE_CODEC, _DoneCodec())
