"""Benchmarks of one part at a time, beside the whole relay's (:mod:`deploy.bench`).

Each is ``python -m deploy.bench.parts.<name>`` and prints figures; none asserts a
threshold, and none is collected by the tests.

- ``stream_intake``: the stream worker's intake stage, events/s and CPU per event
  (``--offline`` without a broker);
- ``stream_gate``: a worker and the consent gate on the broker, the gate's data events/s
  and delay;
- ``producers``: the Python client's and the HTTP gateway's publishing rates;
- ``marketing_sink``: the marketing sink under its runner, a backlog's time and a
  trickle's latency;
- ``partner_sink``: the partner sink's CPU per consent event, offline;
- ``kit``: what the worker benchmarks share (free ports, process CPU, clean-up).
"""
