"""The table codecs registered with Faust, by name, for the worker's tables.

The formats themselves do not import Faust: the state table's changelog is the
contract's state topic, read by :mod:`streams.intake.state_topic` (which the consent gate, a
process that must not load Faust, reads it with too); the other tables' changelogs are
:mod:`streams.engine.table_codecs`. Only the worker's wiring (:mod:`streams.app`) imports this
module. ``_dumps``/``_loads`` are the hooks Faust documents for a custom codec.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas.errors import ConsentRelayError
from streams.engine.table_codecs import decode_done, decode_pending, encode_done, encode_pending
from streams.intake.state_topic import StateReader

STATE_CODEC = "consent_relay_state"
PENDING_CODEC = "consent_relay_pending"
DONE_CODEC = "consent_relay_done"


class _StateCodec(codecs.Codec):
    """Reads the state topic's records into the table on recovery and on standbys."""

    def __init__(self, reader: StateReader) -> None:
        super().__init__()
        self.reader = reader

    def _dumps(self, obj: Any) -> bytes:
        # A state record names its subject and its time, which a table value does not
        # carry: intake publishes them with its batch (IntakeBatch.finish).
        raise ConsentRelayError("the state table is written by intake's batches, not by Faust")

    def _loads(self, s: bytes) -> Any:
        return self.reader.read(s)


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


def register_codecs(state: StateReader) -> None:
    """Make the table codecs known to Faust (the last registration wins)."""
    codecs.register(STATE_CODEC, _StateCodec(state))
    codecs.register(PENDING_CODEC, _PendingCodec())
    codecs.register(DONE_CODEC, _DoneCodec())
