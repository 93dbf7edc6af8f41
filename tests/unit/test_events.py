"""Events are correlated in the writer (kube/writer.py), as client-go's EventCorrelator does: a
flapping endpoint makes one Event per reason, its `count` raised at most once a minute.

On virtual time (as every unit test) against an in-memory Events API counting POSTs and PATCHes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest

from inferenceops.kube.writer import ApiWriter
from inferenceops.metrics import Metrics
from inferenceops.status import EventSpec


class _Response:
    def __init__(self, status: int, body: Any = None) -> None:
        self.status = status
        self._body = body

    async def json(self, content_type: str | None = None) -> Any:
        return self._body

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


@dataclass
class FakeEventsApi:
    """The core/v1 Events of an API server, in memory: POST creates, PATCH merges, and an
    Event can expire (`expire`) as the API server's TTL does."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def session(self) -> FakeEventsApi:
        return self

    def url(self, path: str) -> str:
        return path

    def post(self, url: str, json: dict[str, Any]) -> _Response:
        name = f"{json['metadata']['generateName']}{len(self.calls)}"
        self.calls.append(("POST", json["reason"]))
        self.events[name] = {**json, "metadata": {**json["metadata"], "name": name}}
        return _Response(201, self.events[name])

    def patch(self, url: str, data: str, headers: dict[str, str]) -> _Response:
        name = url.rsplit("/", 1)[-1]
        event = self.events.get(name)
        self.calls.append(("PATCH", event["reason"] if event else "?"))
        if event is None:
            return _Response(404)
        event.update(json.loads(data))
        return _Response(200)

    def writes(self, reason: str) -> Counter[str]:
        return Counter(verb for verb, r in self.calls if r == reason)

    def of(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e["reason"] == reason]

    def expire(self) -> None:
        self.events.clear()


@dataclass
class Ref:
    namespace: str = "ml"
    name: str = "flappy"
    uid: str = "uid-1"


@pytest.fixture
async def api() -> FakeEventsApi:
    return FakeEventsApi()


def writer_for(api: FakeEventsApi, **options: Any) -> ApiWriter:
    return ApiWriter(api, Metrics(), **options)  # type: ignore[arg-type]


PHASES = ("Running", "Pending")


async def flap(writer: ApiWriter, times: int, every: float) -> None:
    """An endpoint whose phase changes on every poll: a PhaseX Event each time."""
    for i in range(times):
        phase = PHASES[i % 2]
        await writer.emit(Ref(), EventSpec("Normal", f"Phase{phase}", f"flap {i} → {phase}"))
        await asyncio.sleep(every)


async def test_a_flapping_endpoint_makes_one_event_per_reason_counted(
    api: FakeEventsApi,
) -> None:
    writer = writer_for(api)
    await flap(writer, 100, 1.2)  # 100 flaps in 2 minutes
    await asyncio.sleep(120)  # the flusher writes the last window's counts
    for phase in PHASES:
        writes = api.writes(f"Phase{phase}")
        assert writes["POST"] == 1 and sum(writes.values()) <= 3, writes
        (event,) = api.of(f"Phase{phase}")
        assert event["count"] == 50, "every occurrence is counted on the one Event"
    running = api.of("PhaseRunning")[0]
    assert running["message"] == "flap 98 → Running", "the message is the latest one"
    assert running["lastTimestamp"] >= running["firstTimestamp"]
    # Nothing left to tell: the flusher forgot them and stopped; the next is a new Event.
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "inferenceops-events"]
    await writer.emit(Ref(), EventSpec("Normal", "PhaseRunning", "again"))
    assert api.writes("PhaseRunning")["POST"] == 2
    await writer.aclose()


async def test_rare_events_are_each_posted(api: FakeEventsApi) -> None:
    """Transitions minutes apart (the usual case) are separate Events, as before."""
    writer = writer_for(api)
    await flap(writer, 4, 150)
    assert api.calls == [("POST", "PhaseRunning"), ("POST", "PhasePending")] * 2
    await writer.aclose()


async def test_repeats_are_written_once_a_window(api: FakeEventsApi) -> None:
    writer = writer_for(api)
    event = EventSpec("Warning", "Unreachable", "down")
    await writer.emit(Ref(), event)
    await asyncio.sleep(10)
    await writer.emit(Ref(), event)  # counted only
    assert api.calls == [("POST", "Unreachable")]
    await asyncio.sleep(51)  # the window passed: the count was written (PATCH)
    assert api.calls == [("POST", "Unreachable"), ("PATCH", "Unreachable")]
    await writer.emit(Ref(), EventSpec("Warning", "Unreachable", "still down"))
    assert len(api.calls) == 2, "within the window of that PATCH: counted only"
    await asyncio.sleep(60)
    assert api.calls == [("POST", "Unreachable")] + [("PATCH", "Unreachable")] * 2
    (posted,) = api.of("Unreachable")
    assert posted["count"] == 3 and posted["message"] == "still down"
    await writer.aclose()


async def test_an_expired_event_is_posted_again_with_its_count(api: FakeEventsApi) -> None:
    writer = writer_for(api)
    event = EventSpec("Warning", "Unreachable", "down")
    await writer.emit(Ref(), event)
    await writer.emit(Ref(), event)
    api.expire()  # the API server's Event TTL
    await asyncio.sleep(61)
    assert api.calls == [("POST", "Unreachable"), ("PATCH", "?"), ("POST", "Unreachable")]
    (posted,) = api.of("Unreachable")
    assert posted["count"] == 2
    await writer.emit(Ref(), event)
    await writer.aclose()
    assert posted["count"] == 3, "the new Event is the one counted on"


async def test_objects_types_and_reasons_are_counted_apart(api: FakeEventsApi) -> None:
    writer = writer_for(api)
    await writer.emit(Ref(name="a"), EventSpec("Warning", "Unreachable", "x"))
    await writer.emit(Ref(name="b"), EventSpec("Warning", "Unreachable", "x"))
    await writer.emit(Ref(name="a"), EventSpec("Warning", "Timeout", "x"))
    await writer.emit(Ref(name="a"), EventSpec("Normal", "Unreachable", "x"))
    # A provider object's Events go through the same correlation.
    for _ in range(3):
        await writer.emit_for_provider(
            ("InferenceProvider", "ml", "acct"), "uid-p", EventSpec("Warning", "Unauthorized", "x")
        )
    assert [verb for verb, _ in api.calls] == ["POST"] * 5
    await writer.aclose()
    (unauthorized,) = api.of("Unauthorized")
    assert unauthorized["count"] == 3, "aclose writes what was only counted"
    assert unauthorized["involvedObject"]["kind"] == "InferenceProvider"


async def test_memory_is_bounded(api: FakeEventsApi) -> None:
    writer = writer_for(api, max_events=10)
    event = EventSpec("Warning", "Unreachable", "x")
    for i in range(25):
        await writer.emit(Ref(name=f"ep{i}"), event)
        await writer.emit(Ref(name=f"ep{i}"), event)
    # The evicted Events' repeats were written before they were forgotten.
    assert all(e["count"] == 2 for e in api.events.values() if e["involvedObject"]["name"] < "ep15")
    await writer.aclose()
    assert all(e["count"] == 2 for e in api.events.values())
    # The last ten are remembered (a repeat is only counted), the others forgotten (a repeat is
    # a new Event).
    api = FakeEventsApi()
    writer = writer_for(api, max_events=10)
    for i in range(25):
        await writer.emit(Ref(name=f"ep{i}"), event)
    for i in reversed(range(15, 25)):
        await writer.emit(Ref(name=f"ep{i}"), event)
    assert len(api.calls) == 25
    await writer.emit(Ref(name="ep14"), event)
    # A new Event, after writing the count of the oldest remembered one (ep15), evicted for it.
    assert api.calls[25:] == [("PATCH", "Unreachable"), ("POST", "Unreachable")]
    await writer.aclose()


async def test_a_failed_post_is_retried_by_the_next_occurrence(
    api: FakeEventsApi, caplog: pytest.LogCaptureFixture
) -> None:
    writer = writer_for(api)
    post = api.post
    api.post = lambda url, json: _Response(500)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        await writer.emit(Ref(), EventSpec("Warning", "Unreachable", "x"))
    assert "not posted: HTTP 500" in caplog.text
    api.post = post  # type: ignore[method-assign]
    await writer.emit(Ref(), EventSpec("Warning", "Unreachable", "x"))
    assert api.calls == [("POST", "Unreachable")]
    await writer.aclose()
