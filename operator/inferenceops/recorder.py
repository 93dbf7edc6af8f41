"""What a poll's result does: the endpoint's status written if it changed, its next poll time,
and its staleness deadline (as kopf's `processing.py` to the scheduler's `queueing.py`).

The scheduler decides when to poll and hands each result here; `timing.PollPolicy` says how long
to wait, `poller.Poller` computes and writes the status. Writes of one endpoint are serialised, so
a staleness deadline and a poll's result never patch from the same old status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from . import status as st
from .clock import Clock
from .endpoints import Endpoint, Endpoints, Key
from .gates import WhileUsed
from .metrics import Metrics
from .poller import Poller, Written
from .providers import Observation
from .timing import PollPolicy, stale_after
from .workqueue import ScheduledQueue

__all__ = ["Recorder", "Timing"]

#: (clock reading, jitter factor): one of each per batch, so its members stay due together.
Timing = tuple[float, float]


class Recorder:
    def __init__(
        self,
        poller: Poller,
        endpoints: Endpoints,
        polls: ScheduledQueue[Key],
        policy: PollPolicy,
        clock: Clock,
        metrics: Metrics,
        *,
        refresh_poll_time: bool,
        gone: Callable[[Endpoint], None],
        ready_changed: Callable[[], None],
    ) -> None:
        self._poller = poller
        self._endpoints = endpoints
        self._polls = polls
        #: When each endpoint's status may have gone stale (`fresh_since` + timing.stale_after).
        #: A deadline that finds a later success is pushed back then, so a steady poll costs no
        #: heap push. Adding one does not wake the loop (half the wake-ups at 10,000): it is
        #: three intervals away, and the endpoint's next poll, which does wake it, comes first.
        self._deadlines: ScheduledQueue[Key] = ScheduledQueue()
        self._policy = policy
        self._clock = clock.monotonic
        self._wallclock = clock.now
        self._metrics = metrics
        #: lastPollTime is written on its own now and then: a steady answer is never "unchanged".
        self._refresh_poll_time = refresh_poll_time
        #: The resource is gone from the API server: stop tracking it.
        self._gone = gone
        #: A provider object's endpoint changed status (its Ready count may have moved).
        self._ready_changed = ready_changed
        #: One per endpoint being written: 10,000 idle locks would be memory for nothing.
        self._locks: WhileUsed[Key, asyncio.Lock] = WhileUsed(asyncio.Lock)
        self._phase_counts: dict[str, int] = {}
        #: Labelled children looked up once, not per poll.
        self._poll_counters: dict[tuple[str, str], Any] = {}

    def timing(self) -> Timing:
        return (self._clock(), self._policy.jitter_factor())

    def track(self, entry: Endpoint) -> None:
        """`entry` is new: its status is taken as fresh now, and goes stale unless polled."""
        entry.fresh_since = self._clock()
        self._deadlines.add(entry.key, entry.fresh_since + stale_after(entry.interval))

    def forget(self, key: Key) -> None:
        self._deadlines.forget(key)

    async def settle(self, keys: list[Key]) -> None:
        """Wait until no status write of these keys is in flight (a forgotten key starts none)."""
        for key in keys:
            async with self._locks.held(key):
                pass

    def gone_stale(self, now: float) -> list[Endpoint]:
        """The endpoints whose staleness deadline passed by `now` with no success since; one
        that succeeded meanwhile has its deadline pushed back now (not at each success)."""
        stale = []
        while (deadline := self._deadlines.pop(now)) is not None:
            entry = self._endpoints.get(deadline[0])
            if entry is None:
                continue
            stale_at = entry.fresh_since + stale_after(entry.interval)
            if stale_at > now:  # polled successfully since the deadline was set
                self._deadlines.add(entry.key, stale_at)
            else:
                stale.append(entry)
        return stale

    def next_deadline(self) -> float | None:
        return self._deadlines.next_at()

    def unchanged(self, entry: Endpoint, result: Observation, timing: Timing) -> bool:
        """Schedule the next poll and return True when `result` is what the status already
        shows: the steady-state case, done without a coroutine (a Task each in a listing of
        thousands showed in the profile)."""
        if self._polls.is_dirty(entry.key) or self._refresh_poll_time:
            return False
        if (result, entry.generation, entry.reconcile_token) != entry.status_source:
            return False
        base, factor = timing
        self._succeeded(entry, base)
        delay = self._policy.after_success(result.phase, entry.interval) * factor
        self._polls.add(entry.key, base + delay)
        return True

    async def record(
        self,
        entry: Endpoint,
        result: Observation | st.Failure,
        *,
        timing: Timing | None = None,
        at: float | None = None,
    ) -> None:
        """Turn one poll result into status, write it if it changed, and schedule the next poll
        at `timing` = (base clock, jitter factor), shared by a batch, or at `at`."""
        base, factor = timing or self.timing()
        if self._polls.is_dirty(entry.key):
            return  # answered for a spec that has changed since; the re-poll will write
        policy = self._policy
        if isinstance(result, Observation):
            if self.unchanged(entry, result, (base, factor)):
                return
            self._succeeded(entry, base)
            source: tuple[Observation, int, str | None] | None = (
                result,
                entry.generation,
                entry.reconcile_token,
            )
            delay = policy.after_success(result.phase, entry.interval) * factor
        else:
            source = None
            entry.failures += 1
            self._count_poll(entry.parsed.provider.name if entry.parsed else "-", result.reason)
            if result.reason in st.UNPOLLABLE_REASONS:
                # Nothing to poll until the spec or its provider object changes.
                delay = float("inf")
            else:
                delay = factor * policy.after_failure(
                    result.reason, entry.failures, entry.interval, result.retry_after
                )
        current = await self._write(entry, result)
        entry.status_source = source if current else None
        if self._endpoints.get(entry.key) is not entry:
            return
        self._polls.add(entry.key, base + delay if at is None else at)

    async def mark_stale(self, entry: Endpoint) -> None:
        """The staleness deadline passed with no successful poll, whatever held polls up."""
        await self._write(entry, None)

    def count_phase(self, old: str | None, new: str | None) -> None:
        if old == new:
            return
        for phase, delta in ((old, -1), (new, 1)):
            if phase:
                self._phase_counts[phase] = self._phase_counts.get(phase, 0) + delta
                self._metrics.endpoints.labels(phase).set(self._phase_counts[phase])

    def _succeeded(self, entry: Endpoint, base: float) -> None:
        entry.failures = 0
        entry.last_success = self._wallclock()
        entry.fresh_since = base
        if entry.key not in self._deadlines:  # none since it last went stale
            self._deadlines.add(entry.key, base + stale_after(entry.interval))
        parsed = entry.parsed
        self._count_poll(parsed.provider.name if parsed else "-", "ok")

    async def _write(self, entry: Endpoint, result: Observation | st.Failure | None) -> bool:
        """Compute the status after `result` (None: a staleness deadline) and write what changed;
        True when `entry.status` now matches it."""
        async with self._locks.held(entry.key):
            if self._endpoints.get(entry.key) is not entry:
                return False  # deleted while we polled
            now = self._wallclock()
            if result is None:
                new = st.after_deadline(entry.status, self._poller.resource_of(entry, now))
            else:
                new = self._poller.status_after(entry, result, now)
            old = entry.status
            written = await self._poller.write(entry, new, now)
            if written is Written.GONE:
                self._gone(entry)
                return False
            if written is Written.FAILED:
                return False
            if written is Written.UNCHANGED:
                return True
            entry.status = new
            if entry.provider_object is not None:
                self._ready_changed()
        self.count_phase(old.get("phase"), new.get("phase"))
        changed_at = result.changed_at if isinstance(result, Observation) else None
        if changed_at is not None and old.get("phase") != new.get("phase") and old:
            self._metrics.change_to_write.labels(new.get("provider", "-")).observe(
                max(0.0, (self._wallclock() - changed_at).total_seconds())
            )
        return True

    def _count_poll(self, provider: str, outcome: str) -> None:
        counter = self._poll_counters.get((provider, outcome))
        if counter is None:
            counter = self._poll_counters[(provider, outcome)] = self._metrics.polls.labels(
                provider, outcome
            )
        counter.inc()
