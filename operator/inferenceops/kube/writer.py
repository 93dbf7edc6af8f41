"""The only place that writes to the API server: status patches and Events."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from ..api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from ..api.provider_kinds import CLUSTER_PLURAL, NAMESPACED_PLURAL
from ..clock import SYSTEM_CLOCK, Clock
from ..metrics import Metrics
from ..status import EventSpec
from ..timestamps import format_timestamp
from .client import ApiSession
from .errors import ApiError, ApiNotFound, check

__all__ = ["ApiWriter", "ObjectRef", "StatusSink", "WriteError"]

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
#: Repeats of an Event (same object, type and reason) within this many seconds are counted on the
#: Event already written: at most one write per window (docs/operations.md).
EVENT_WINDOW_SECONDS = 60.0
#: Events remembered for counting; past this the oldest are written and forgotten.
MAX_RECENT_EVENTS = 4096

log = logging.getLogger(__name__)


class ObjectRef(Protocol):
    namespace: str
    name: str
    uid: str


class StatusSink(Protocol):
    """What the scheduler needs from a writer; tests substitute an in-memory one."""

    async def patch_status(self, ref: ObjectRef, patch: Mapping[str, Any]) -> bool: ...

    async def emit(self, ref: ObjectRef, event: EventSpec) -> None: ...


class ApiWriter:
    """Writes through the API session; bounded concurrency so a burst of changes cannot flood
    the API server."""

    def __init__(
        self,
        api: ApiSession,
        metrics: Metrics,
        *,
        concurrency: int = 16,
        component: str = "inferenceops",
        event_window: float = EVENT_WINDOW_SECONDS,
        max_events: int = MAX_RECENT_EVENTS,
        clock: Clock = SYSTEM_CLOCK,
        may_write: Callable[[], bool] = lambda: True,
        write_timeout: float | None = None,
    ) -> None:
        self._api = api
        #: False while this member does not hold its Lease (membership.py): nothing is written.
        self._may_write = may_write
        #: A status write sent just before the Lease was lost must end before another member
        #: may take over (membership.py: a third of the lease duration later).
        self._write_timeout = (
            aiohttp.ClientTimeout(total=write_timeout) if write_timeout is not None else None
        )
        self._metrics = metrics
        self._gate = asyncio.Semaphore(concurrency)
        self._component = component
        self._instance = socket.gethostname()
        self._written = {r: metrics.status_writes.labels(r) for r in ("ok", "gone", "error")}
        self._event_window = event_window
        self._max_events = max_events
        self._clock = clock
        #: Events written within the window, by what they count; the oldest write first.
        self._recent: OrderedDict[EventKey, _Recent] = OrderedDict()
        self._flusher: asyncio.Task[None] | None = None

    async def patch_status(self, ref: ObjectRef, patch: Mapping[str, Any]) -> bool:
        """Merge-patch `.status`; False when the object is gone (deleted meanwhile)."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/{PLURAL}/{ref.name}/status"
        return await self._patch(path, f"status patch of {ref.namespace}/{ref.name}", patch)

    async def patch_provider_status(
        self, key: tuple[str, str, str], patch: Mapping[str, Any]
    ) -> bool:
        """The same for an InferenceProvider or ClusterInferenceProvider (provider_status.py)."""
        kind, namespace, name = key
        if namespace:
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{NAMESPACED_PLURAL}/{name}"
        else:
            path = f"/apis/{GROUP}/{VERSION}/{CLUSTER_PLURAL}/{name}"
        try:
            return await self._patch(f"{path}/status", f"status patch of {kind} {name}", patch)
        except WriteError as err:
            log.warning("%s", err)
            return False

    async def _patch(self, path: str, what: str, patch: Mapping[str, Any]) -> bool:
        body = json.dumps({"status": patch}, separators=(",", ":"))
        async with self._gate:
            if not self._may_write():
                raise WriteError(f"{what} skipped: this member does not hold its Lease")
            try:
                async with self._api.session.patch(
                    self._api.url(path), data=body, headers=MERGE_PATCH, timeout=self._write_timeout
                ) as response:
                    await check(response, what)
            except ApiNotFound:
                self._written["gone"].inc()
                return False
            except ApiError as err:
                self._written["error"].inc()
                raise WriteError(str(err)) from None
            except (aiohttp.ClientError, TimeoutError) as err:
                self._written["error"].inc()
                raise WriteError(f"{what} failed: {type(err).__name__}") from None
        self._written["ok"].inc()
        return True

    async def emit(self, ref: ObjectRef, event: EventSpec) -> None:
        await self._emit(KIND, ref.namespace, ref.name, ref.uid, event)

    async def emit_for_provider(
        self, key: tuple[str, str, str], uid: str, event: EventSpec
    ) -> None:
        kind, namespace, name = key
        await self._emit(kind, namespace, name, uid, event)

    # --- Events, correlated as client-go's EventCorrelator does ---------------------------
    #
    # The first Event of an (object, type, reason) is POSTed; its repeats within the window are
    # only counted here; the next write after the window (a repeat, or the flusher) PATCHes that
    # Event's count, lastTimestamp and message. A flapping endpoint costs one write per reason
    # per window, not one per poll.

    async def _emit(self, kind: str, namespace: str, name: str, uid: str, event: EventSpec) -> None:
        self._metrics.events.labels(event.type).inc()
        key: EventKey = (kind, namespace, name, uid, event.type, event.reason)
        now, stamp = self._clock.monotonic(), format_timestamp(self._clock.now())
        message = event.message[:1024]
        seen = self._recent.get(key)
        if seen is not None and seen.count == seen.written and self._expired(seen, now):
            seen = None  # told in full a window ago: a new Event, as if forgotten already
        if seen is None:
            seen = self._recent[key] = _Recent(None, stamp, 1, 0, message, stamp, now)
            if len(self._recent) > self._max_events:
                await self._evict_oldest()
            await self._write_event(key, seen)
            return
        seen.count += 1
        seen.message, seen.last = message, stamp
        if seen.name is not None and self._expired(seen, now):
            await self._write_event(key, seen)

    def _expired(self, seen: _Recent, now: float) -> bool:
        return now - seen.written_at >= self._event_window

    async def _write_event(self, key: EventKey, seen: _Recent) -> None:
        """Tell the API server what `seen` counts: PATCH its Event, or POST one (the first
        occurrence, or its Event expired meanwhile: Events live an hour by default)."""
        seen.written_at = self._clock.monotonic()
        self._recent.move_to_end(key)
        count = seen.count
        if seen.name is not None:
            patched = await self._patch_event(key, seen, count)
            if patched is not False:
                if patched:
                    seen.written = count
                return  # a failure is logged; the count stays pending for the next write
            seen.name = None  # gone: posted again, with the whole count
        name = await self._post_event(key, seen, count)
        if not name:
            # Not posted: the next occurrence posts again rather than counting on nothing.
            self._recent.pop(key, None)
            return
        seen.name, seen.written = name, count
        self._start_flusher()

    async def _post_event(self, key: EventKey, seen: _Recent, count: int) -> str | None:
        """POST a new Event; its name, or None when it was not created (logged)."""
        kind, namespace, name, uid, type_, reason = key
        involved = {"apiVersion": API_VERSION, "kind": kind, "name": name, "uid": uid}
        if namespace:
            involved["namespace"] = namespace
        where = _events_namespace(namespace)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": where},
            "involvedObject": involved,
            "reason": reason,
            "message": seen.message,
            "type": type_,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
            "firstTimestamp": seen.first,
            "lastTimestamp": seen.last,
            "count": count,
        }
        path = f"/api/v1/namespaces/{where}/events"
        async with self._gate:
            try:
                async with self._api.session.post(self._api.url(path), json=body) as response:
                    if response.status >= 400:
                        log.warning(
                            "event for %s/%s not posted: HTTP %s", where, name, response.status
                        )
                        return None
                    created = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as err:
                log.warning("event for %s/%s not posted: %s", where, name, type(err).__name__)
                return None
        metadata = created.get("metadata") if isinstance(created, dict) else None
        created_name = metadata.get("name") if isinstance(metadata, dict) else None
        return str(created_name) if created_name else None

    async def _patch_event(self, key: EventKey, seen: _Recent, count: int) -> bool | None:
        """PATCH an Event's count: True when done, False when the Event is gone (404), None
        when it failed otherwise (logged)."""
        namespace, name = key[1], key[2]
        where = _events_namespace(namespace)
        body = json.dumps(
            {"count": count, "lastTimestamp": seen.last, "message": seen.message},
            separators=(",", ":"),
        )
        path = f"/api/v1/namespaces/{where}/events/{seen.name}"
        async with self._gate:
            try:
                async with self._api.session.patch(
                    self._api.url(path), data=body, headers=MERGE_PATCH
                ) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as err:
                log.warning("event for %s/%s not updated: %s", where, name, type(err).__name__)
                return None
        if status == 404:
            return False
        if status >= 400:
            log.warning("event for %s/%s not updated: HTTP %s", where, name, status)
            return None
        return True

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="inferenceops-events")

    async def _flush_loop(self) -> None:
        """While any Event is remembered: every quarter window, write the counts that are due
        and forget the Events that have nothing left to tell."""
        while self._recent:
            await asyncio.sleep(self._event_window / 4)
            try:
                await self.flush_events()
            except Exception:
                # A bug here must not stop Events; it is loud, and the next tick retries.
                log.exception("writing Event counts failed")

    async def flush_events(self, *, everything: bool = False) -> None:
        """Write the counts not yet on their Events whose window has passed (every count, at
        shut-down, with `everything`); forget the Events that have nothing left to tell."""
        now = self._clock.monotonic()
        due = []
        for key, seen in self._recent.items():  # oldest write first
            if not everything and not self._expired(seen, now):
                break
            due.append((key, seen))
        for key, seen in due:
            if seen.name is None:
                continue  # its POST is in flight
            if seen.count > seen.written:
                await self._write_event(key, seen)
            elif self._expired(seen, now):
                self._recent.pop(key, None)

    async def _evict_oldest(self) -> None:
        """Make room: the Event written longest ago is forgotten, its count written first."""
        key, seen = next(iter(self._recent.items()))
        if seen.name is not None and seen.count > seen.written:
            await self._write_event(key, seen)
        self._recent.pop(key, None)

    async def aclose(self) -> None:
        """Stop the flusher and write every count still only kept here."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush_events(everything=True)


#: (kind, namespace, name, uid, type, reason): what one Event counts.
EventKey = tuple[str, str, str, str, str, str]


@dataclass(slots=True)
class _Recent:
    """An Event written within the window, and what it does not say yet."""

    #: The Event object's name; None while its POST is in flight.
    name: str | None
    first: str
    #: Occurrences so far: what the Event should say.
    count: int
    #: What it says.
    written: int
    #: The latest occurrence's message and time.
    message: str
    last: str
    #: When it was last written (the writer's clock).
    written_at: float


def _events_namespace(namespace: str) -> str:
    # Events about a cluster-scoped object live in "default", as kubectl describe expects.
    return namespace or "default"


class WriteError(RuntimeError):
    pass
