"""kube.informer against a small fake API server (aiohttp.web on 127.0.0.1): paging, watch
events, bookmarks, re-watch from the last version, 410 Gone -> re-list with deletions, long lines.
The real API server path is covered by tests/integration (create, edit, delete)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import kopf
import pytest
from aiohttp import web

from inferenceops.kube.client import ApiSession
from inferenceops.kube.informer import Informer
from inferenceops.metrics import Metrics
from tests.unit.local_http import serving

PATH = "/apis/inferenceops.io/v1alpha1/inferenceendpoints"


def _obj(name: str, version: int, **extra: Any) -> dict[str, Any]:
    meta = {"namespace": "ns", "name": name, "resourceVersion": str(version), **extra}
    return {"metadata": meta, "spec": {}}


class FakeApi:
    """Serves scripted LIST pages and WATCH responses, and records what was asked."""

    def __init__(self) -> None:
        self.lists: list[list[dict[str, Any]]] = []  # one list of objects per LIST
        self.watches: list[list[dict[str, Any]] | int] = []  # events, or an HTTP status
        self.list_params: list[dict[str, str]] = []
        self.watch_params: list[dict[str, str]] = []
        self.listing = 0
        self.closing = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        if params.get("watch") == "true":
            self.watch_params.append(params)
            if not self.watches:
                await self.closing.wait()  # an idle watch, until the test ends
                return web.Response(status=503)
            script = self.watches.pop(0)
            if isinstance(script, int):
                return web.Response(status=script)
            response = web.StreamResponse()
            await response.prepare(request)
            for event in script:
                await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
            return response
        self.list_params.append(params)
        objects = self.lists[min(self.listing, len(self.lists) - 1)]
        # Two objects per page, to exercise `continue`.
        start = int(params.get("continue") or 0)
        page = objects[start : start + 2]
        meta: dict[str, Any] = {"resourceVersion": str(100 * (self.listing + 1))}
        if start + 2 < len(objects):
            meta["continue"] = str(start + 2)
        else:
            self.listing += 1
        return web.json_response({"items": page, "metadata": meta})


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeApi, ApiSession]]:
    api = FakeApi()
    async with serving(api.handle) as url:
        session = ApiSession(kopf.ConnectionInfo(server=url, insecure=True))
        try:
            yield api, session
        finally:
            api.closing.set()
            await session.aclose()


async def _until(condition: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def _events_until_third_watch(
    api: FakeApi, session: ApiSession, **options: Any
) -> list[tuple[str | None, str]]:
    """Run an informer until it opens its third watch; the (type, name) events it handed on."""
    seen: list[tuple[str | None, str]] = []

    def handler(kind: str | None, obj: Mapping[str, Any]) -> None:
        seen.append((kind, obj["metadata"]["name"]))

    task = asyncio.create_task(Informer(session, [PATH], handler, **options).run())
    try:
        await _until(lambda: len(api.watch_params) >= 3)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return seen


async def test_lists_watches_rewatches_and_relists(fake: tuple[FakeApi, ApiSession]) -> None:
    api, session = fake
    big = "x" * 300_000  # beyond aiohttp's 128 KiB line limit
    api.lists = [
        [_obj("a", 1), _obj("b", 2), _obj("c", 3)],
        [_obj("a", 1), _obj("d", 9)],  # after 410: b (deleted by watch) and c are gone
    ]
    api.watches = [
        [
            {"type": "ADDED", "object": _obj("d", 5, annotations={"big": big})},
            {"type": "MODIFIED", "object": _obj("a", 6)},
            {"type": "DELETED", "object": _obj("b", 7)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}},
        ],
        410,
    ]
    seen = await _events_until_third_watch(api, session, page_size=2, backoff_max=0.1)
    assert seen == [
        (None, "a"),
        (None, "b"),
        (None, "c"),
        ("ADDED", "d"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
        # 410 Gone -> listed again: c vanished while no watch could tell.
        (None, "a"),
        (None, "d"),
        ("DELETED", "c"),
    ]
    assert [p.get("continue") for p in api.list_params] == [None, "2", None]
    assert api.list_params[0]["limit"] == "2"
    # The first watch starts at the listing's version, the second at the bookmark's, the third
    # at the version of the listing made after 410.
    assert [p["resourceVersion"] for p in api.watch_params] == ["100", "8", "200"]
    assert all(p["allowWatchBookmarks"] == "true" for p in api.watch_params)


async def test_errors_back_off_and_recover(fake: tuple[FakeApi, ApiSession]) -> None:
    api, session = fake
    api.lists = [[_obj("a", 1)]]
    api.watches = [500, [{"type": "ERROR", "object": {"code": 500, "message": "boom"}}]]
    seen = await _events_until_third_watch(api, session, backoff_max=0.05)
    # A failure resumes the watch from the last version: no re-list of every object (that is for
    # 410 Gone only), and nothing is reported twice.
    assert seen == [(None, "a")]
    assert len(api.list_params) == 1
    assert [w["resourceVersion"] for w in api.watch_params] == ["100", "100", "100"]


async def test_a_silent_watch_is_reopened(fake: tuple[FakeApi, ApiSession]) -> None:
    """A half-open connection sends nothing, not even bookmarks: after the inactivity timeout
    the watch is opened again from the same version, without a re-list."""
    api, session = fake
    api.lists = [[_obj("a", 1)]]
    # No scripted watches: each one hangs without a byte, as a dead connection would.
    seen = await _events_until_third_watch(api, session, inactivity_timeout=0.2, backoff_max=0.05)
    assert seen == [(None, "a")]
    assert len(api.list_params) == 1
    assert [w["resourceVersion"] for w in api.watch_params] == ["100", "100", "100"]


async def test_an_outage_is_logged_when_it_starts_and_when_it_ends(
    fake: tuple[FakeApi, ApiSession], caplog: pytest.LogCaptureFixture
) -> None:
    api, session = fake
    api.lists = [[_obj("a", 1)]]
    api.watches = [503, 503, 503, 503, [{"type": "ADDED", "object": _obj("b", 2)}]]
    caplog.set_level("INFO", logger="inferenceops.kube.informer")
    task = asyncio.create_task(Informer(session, [PATH], lambda *_: None, backoff_max=0.02).run())
    try:
        await _until(lambda: len(api.watch_params) >= 6)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    lines = [r.getMessage() for r in caplog.records if r.levelname != "DEBUG"]
    assert len(lines) == 2, lines
    assert "failed" in lines[0] and "works again after 4 failed attempts" in lines[1]


async def test_list_pages_and_watch_events_stamp_the_resource_time(
    fake: tuple[FakeApi, ApiSession],
) -> None:
    api, session = fake
    api.lists = [[_obj("a", 1)]]
    api.watches = [[{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "8"}}}]]
    metrics = Metrics()
    stamps: list[float | None] = []

    def handler(kind: str | None, obj: Mapping[str, Any]) -> None:
        stamps.append(metrics.registry.get_sample_value(SAMPLE, {"resource": "inferenceendpoints"}))

    informer = Informer(session, [PATH], handler)
    informer.metrics = metrics
    started = time.time()
    task = asyncio.create_task(informer.run())
    try:
        await _until(lambda: len(api.watch_params) >= 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stamps and stamps[0] is not None, "stamped by the list page, before its objects"
    last = metrics.registry.get_sample_value(SAMPLE, {"resource": "inferenceendpoints"})
    assert last is not None and started <= stamps[0] <= last <= time.time()


SAMPLE = "inferenceops_watch_last_event_timestamp_seconds"


async def test_relist_hands_every_object_of_every_page_to_the_given_handler(
    fake: tuple[FakeApi, ApiSession],
) -> None:
    api, session = fake
    api.lists = [[_obj("a", 1), _obj("b", 2), _obj("c", 3)]]
    watched: list[str] = []
    informer = Informer(session, [PATH], lambda kind, obj: watched.append(obj["metadata"]["name"]))
    relisted: list[tuple[str | None, str]] = []
    await informer.relist(lambda kind, obj: relisted.append((kind, obj["metadata"]["name"])))
    assert relisted == [(None, "a"), (None, "b"), (None, "c")]
    assert len(api.list_params) == 2, "paged: two objects per page"
    assert watched == [] and not api.watch_params, "the informer's own handler and watch untouched"
