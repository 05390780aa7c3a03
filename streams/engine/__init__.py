"""The stream engine over Faust's public API: batches taken from a stream
(``taking.py``), staged table writes (``staging.py``) published with the batch's output
(``outbox.py``, ``sending.py``) and retried until delivered (``batch.py``), the wire
codecs and table codecs, and resuming after a rebalance (``offsets.py``)."""
