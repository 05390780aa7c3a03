"""The propagation benchmark: the real relay on the real broker, under a realistic load.

``python -m deploy.bench`` (see ``deploy/bench/README.md``) starts or reuses the broker
and registry, starts the stream worker(s), the three sink families and a local partner
receiver, publishes a consent-event mix at fixed offered rates and at the maximum,
measures throughput, per-destination and full-propagation latency, CPU and memory per
process and lag, reconciles that no withdrawal lost a receipt, compares the stream
worker with a bare consume-decode-route-produce loop, and writes ``results/<run>/``.
It asserts nothing about speed.
"""
