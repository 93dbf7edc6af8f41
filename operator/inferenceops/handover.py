"""The scheduler's side of a membership change (membership.py): giving up the endpoints this
member no longer owns before it acks a view, and taking up the ones it newly owns once every
member acked it.

Giving up: the endpoint is forgotten (nothing polls or writes it from then on: a write checks
that its endpoint is still tracked, under the endpoint's write lock), its in-flight status write
is waited for (bounded), its in-flight poll cancelled, and only its identity is kept
(`remote.Others`). Taking up: one paged listing of the endpoints hands back the full objects of
the keys taken over, each then polled when its freshness needs it (`due_after_takeover`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from .endpoints import Endpoint, Endpoints, Key, key_of
from .membership import Owns
from .metrics import Metrics
from .provider_status import AccountOutcomes
from .providers import Phase
from .recorder import Recorder
from .remote import Others
from .timestamps import parse_timestamp
from .timing import PollPolicy

__all__ = ["Handover", "Relist", "due_after_takeover"]

#: Lists every endpoint again, handing each to the handler (`kube.informer.Informer.relist`).
Relist = Callable[[Callable[[str | None, Mapping[str, Any]], None]], Awaitable[None]]


def due_after_takeover(policy: PollPolicy, entry: Endpoint, now: datetime) -> float:
    """Seconds until an endpoint taken over is due: its previous owner kept it fresh, so at its
    normal time after the last poll its status shows; at once if that is past or unknown."""
    last = parse_timestamp(entry.status.get("lastPollTime"))
    if last is None:
        return 0.0
    try:
        phase = Phase(str(entry.status.get("phase"))) if entry.status.get("phase") else None
    except ValueError:
        phase = None
    interval = policy.interval_in(phase, entry.interval)
    return min(max(0.0, interval - (now - last).total_seconds()), interval)


class Intake(Protocol):
    """The scheduler, as the hand-over uses it."""

    settings: Any
    #: Told when a provider object's endpoints (or their Ready) changed: its status counts them.
    provider_status: AccountOutcomes

    def forget(self, namespace: str, name: str) -> None: ...

    def upsert(
        self, body: Mapping[str, Any], *, initial: bool = False, taken: bool = False
    ) -> None: ...


class Handover:
    def __init__(
        self,
        intake: Intake,
        endpoints: Endpoints,
        recorder: Recorder,
        metrics: Metrics,
        owns: Owns,
    ) -> None:
        self._intake = intake
        #: Whether this member owns a key (membership.Membership.owns).
        self._owns_key = owns
        self._endpoints = endpoints
        self._recorder = recorder
        #: What other members poll, by identity, and every account's endpoints (budgets).
        self.others = self._others = Others(changed=lambda: intake.provider_status.changed())
        self._metrics = metrics
        #: The longest a release waits for in-flight status writes.
        self._release_timeout: float = intake.settings.release_timeout
        self.relist: Relist | None = None
        #: The poll task each endpoint is in, while it runs.
        self._poll_tasks: dict[Key, asyncio.Task[None]] = {}
        self._taking: set[Key] = set()

    def polling(self, entries: list[Endpoint], task: asyncio.Task[None]) -> None:
        for entry in entries:
            self._poll_tasks[entry.key] = task

    def polled(self, entries: list[Endpoint]) -> None:
        for entry in entries:
            if self._poll_tasks.get(entry.key) is asyncio.current_task():
                del self._poll_tasks[entry.key]

    def _owns(self, key: Key) -> bool:
        return self._owns_key(f"{key[0]}/{key[1]}")

    def accepts(self, body: Mapping[str, Any]) -> bool:
        """Whether this member polls the endpoint listed, added or modified; one another member
        polls is remembered by identity only (and forgotten here if it was tracked)."""
        key = key_of(body)
        if self._owns(key):
            self._others.forget(key)
            return True
        if self._endpoints.get(key) is not None:
            self._intake.forget(*key)
        self._others.remember(key, body)
        return False

    def due(self, entry: Endpoint, now: datetime) -> float:
        return due_after_takeover(self._intake.settings.policy, entry, now)

    async def release(self) -> int:
        """Give up every tracked endpoint this member no longer owns; how many."""
        released = [e for e in self._endpoints.entries() if not self._owns(e.key)]
        for entry in released:
            self._intake.forget(*entry.key)
            self._others.remember_entry(entry)
        if not released:
            return 0
        keys = [entry.key for entry in released]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._release_timeout):
                await self._recorder.settle(keys)
        for task in {t for k in keys if (t := self._poll_tasks.get(k)) is not None}:
            task.cancel()  # the batch's endpoints still owned are polled again at once
        self._metrics.handovers.labels("lost").inc(len(released))
        return len(released)

    async def acquire(self) -> int:
        """Take up every endpoint this member newly owns; how many."""
        wanted = {k for k in self._others.remote_keys() if self._owns(k)}
        if not wanted or self.relist is None:
            return 0
        self._taking = wanted
        try:
            await self.relist(self._take)
        finally:
            self._taking = set()
        taken = sum(1 for k in wanted if self._endpoints.get(k) is not None)
        if taken:
            self._metrics.handovers.labels("gained").inc(taken)
        return taken

    def _take(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        key = key_of(body)
        uid = str((body.get("metadata") or {}).get("uid"))
        # Only what is still remembered as listed: a newer watch event may have come meanwhile.
        if key in self._taking and self._others.same_object(key, uid):
            self._intake.upsert(body, taken=True)
