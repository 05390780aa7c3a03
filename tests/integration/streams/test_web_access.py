"""The worker's web server as a real process: on its defaults it listens on this machine
only; ``/propagation`` answers only the configured bearer token (401 with a
``WWW-Authenticate: Bearer`` challenge otherwise, and to everyone when no token is
configured); Faust's ``/router/`` and ``/table/`` views are gone; ``/metrics`` stays
open; and workers still answer for each other's partitions, passing the token on."""

from __future__ import annotations

import time
import urllib.error
import uuid
from typing import Any

from schemas.taxonomy import Right
from tests.support.access import API_TOKEN, Answer, get, listening_addresses

INTERNAL_VIEWS = ("/router/", "/table/", "/table/state/", "/graph/", "/stats/", "/assignment/")


def serving(kit: Any, url: str) -> Answer:
    """Wait until the worker's web server answers ``url`` (the open /metrics)."""

    def probe() -> Answer | None:
        try:
            return get(url, token=None)
        except (urllib.error.URLError, ConnectionError):
            return None

    answer: Answer = kit.wait_until(probe)
    return answer


def test_propagation_wants_the_token_and_faust_internals_are_closed(stream_kit: Any) -> None:
    kit = stream_kit
    worker = kit.start_worker()
    assert serving(kit, f"{worker.url}/metrics").status == 200
    assert listening_addresses(worker.port) == {"127.0.0.1"}

    by_event = f"{worker.url}/propagation/{uuid.uuid4()}"
    by_subject = f"{worker.url}/propagation?subject=access-{uuid.uuid4().hex}"
    for url in (by_event, by_subject):
        missing = get(url, token=None)
        assert missing.status == 401, url
        assert missing.headers["WWW-Authenticate"].startswith("Bearer "), url
        assert "propagations" not in missing.json()
        wrong = get(url, token="not-" + API_TOKEN)
        assert wrong.status == 401, url
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"], url
        assert get(url, authorization=f"Basic {API_TOKEN}").status == 401, url

    assert get(by_event).status == 404  # the right token, an unknown event
    subject = kit.wait_until(lambda: (a := get(by_subject)).status == 200 and a)
    assert subject.json() == {"propagations": []}

    for view in INTERNAL_VIEWS:
        for token in (None, API_TOKEN):
            assert get(worker.url + view, token=token).status == 404, view
    assert get(f"{worker.url}/metrics", token=None).status == 200
    assert API_TOKEN not in worker.log_path.read_text()


def test_a_worker_without_a_token_refuses_everyone(stream_kit: Any) -> None:
    kit = stream_kit
    worker = kit.start_worker(STREAMS_API_TOKEN="")
    assert serving(kit, f"{worker.url}/metrics").status == 200
    for token in (None, API_TOKEN, "any-token-at-all-0123456789"):
        for path in (f"/propagation/{uuid.uuid4()}", "/propagation?subject=someone"):
            refused = get(worker.url + path, token=token)
            assert refused.status == 401, (path, token)
            assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    kit.wait_until(lambda: "STREAMS_API_TOKEN is not set" in worker.log_path.read_text())


def test_two_workers_answer_for_each_others_partitions(stream_kit: Any, events: Any) -> None:
    kit = stream_kit
    # No standbys: a worker holds only its own partitions, so an answer about the other
    # worker's subjects can only come from that worker.
    workers = [kit.start_worker(STREAMS_STANDBY_REPLICAS="0") for _ in range(2)]

    def applied(worker: Any) -> float:
        value = kit.metric(
            worker.url,
            "consent_relay_stream_events_total",
            event_type="RightsRequested",
            status="applied",
        )
        return value or 0.0

    # Objections until both workers have applied some (the second may join only after
    # the first has taken every partition): then each holds subjects of its own.
    objections: list[Any] = []

    def both_own_some() -> bool:
        if all(applied(w) > 0 for w in workers):
            return sum(applied(w) for w in workers) >= len(objections)
        more = [events.right(events.subject(), Right.OBJECT_TO_DIRECT_MARKETING) for _ in range(4)]
        kit.publish(*more)
        objections.extend(more)
        time.sleep(1.0)
        return False

    kit.wait_until(both_own_some)
    for worker in workers:
        for objection in objections:
            event = kit.wait_until(
                lambda w=worker, e=objection: (
                    (a := get(f"{w.url}/propagation/{e.event_id}")).status == 200 and a
                )
            )
            assert event.json()["event_id"] == objection.event_id
            subject = get(f"{worker.url}/propagation?subject={objection.subject.id}")
            assert subject.status == 200
            assert [p["event_id"] for p in subject.json()["propagations"]] == [objection.event_id]
            assert (
                get(f"{worker.url}/propagation?subject={objection.subject.id}", None).status == 401
            )
