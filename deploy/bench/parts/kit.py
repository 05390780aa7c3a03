"""What the worker benchmarks (``stream_intake``, ``stream_gate``) share: a free port, a
worker that dies with the script, its CPU and peak memory from /proc, its event counter
from /metrics, and removing the run's topics afterwards. Not used by the worker itself.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import time
import urllib.error
import urllib.request

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from schemas.runtime.kafka import KafkaSettings

_PR_SET_PDEATHSIG = 1
GROUP_EMPTY_SECONDS = 60.0
"""How long a run's consumer group may stay non-empty after its processes stopped."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    """In the worker (``preexec_fn``): SIGTERM when the script dies, one libc call."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """Peak resident memory of ``pid`` (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def events_counted(port: int, event_type: str | None = None) -> float:
    """The worker's ``consent_relay_stream_events_total`` (of one event type, or all);
    0 while it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0.0
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "consent_relay_stream_events"
        for s in family.samples
        if s.name.endswith("_total")
        and (event_type is None or s.labels.get("event_type") == event_type)
    )


def delete_run(kafka: KafkaSettings, prefix: str, *, groups: bool = False) -> None:
    """Delete the topics (and, with ``groups``, the consumer groups) named ``prefix*``."""
    admin = AdminClient(kafka.admin_config())
    mine = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    if mine:
        for future in admin.delete_topics(mine, operation_timeout=30).values():
            future.result(60)
    if not groups:
        return
    named = [
        g.group_id
        for g in admin.list_consumer_groups(request_timeout=30).result().valid
        if g.group_id.startswith(prefix)
    ]
    deadline = time.monotonic() + GROUP_EMPTY_SECONDS
    while named:
        futures = admin.delete_consumer_groups(named, request_timeout=30)
        busy = []
        for group, future in futures.items():
            try:
                future.result(60)
            except KafkaException as exc:
                # A member that has just exited may be listed until the broker notices.
                if exc.args[0].code() != KafkaError.NON_EMPTY_GROUP or (
                    time.monotonic() > deadline
                ):
                    raise
                busy.append(group)
        named = busy
        if named:
            time.sleep(1.0)
