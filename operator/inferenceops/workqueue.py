"""Keys due at times, earliest first: the heap every poll and deadline of the scheduler sits in.

Modelled on cert-manager's `pkg/scheduler` (a scheduled work queue), without its timer per key:
one heap and one waiter. Re-adding a key moves it; the heap item it leaves behind is skipped when
it surfaces, so moving a key costs O(log n) and nothing is searched.

A key being processed (`begin` .. `done`) is not processed twice at once, as in client-go's
`util/workqueue` (its processing and dirty sets): a key that changes meanwhile is marked dirty, and
`done` says so, so its caller processes it once more rather than trusting the answer in flight.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["ScheduledQueue"]

K = TypeVar("K", bound=Hashable)


class ScheduledQueue(Generic[K]):
    def __init__(self) -> None:
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = 0
        self._wake = asyncio.Event()
        #: When the current `wait` ends, on the keys' clock: a key due no sooner than that is
        #: found then, so adding it wakes nobody (at 10,000 every finished poll re-adds a key).
        self._waiting_until = math.inf
        self._processing: set[K] = set()
        self._dirty: set[K] = set()

    def add(self, key: K, at: float) -> None:
        """Due at `at` (replacing any earlier time of `key`); `inf` means never."""
        if not math.isfinite(at):
            self.forget(key)
            return
        self._due[key] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, key))
        if at < self._waiting_until:
            self.wake()

    def forget(self, key: K) -> None:
        """No longer due (whether it is being processed is `done`'s to say)."""
        self._due.pop(key, None)

    def begin(self, key: K) -> None:
        """`key` is being processed: it leaves the queue until its processing adds it back."""
        self.forget(key)
        self._processing.add(key)

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    def mark_dirty(self, key: K) -> bool:
        """`key` changed: True if it is being processed (the answer in flight is for what it
        was; `done` will say so), False if not (the caller schedules it as usual)."""
        if key not in self._processing:
            return False
        self._dirty.add(key)
        return True

    def is_dirty(self, key: K) -> bool:
        """Changed since its processing began: what that processing finds is out of date."""
        return key in self._dirty

    def done(self, key: K) -> bool:
        """Processing of `key` ended; True if it changed meanwhile (process it once more)."""
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            return True
        return False

    def due_at(self, key: K) -> float | None:
        return self._due.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    def pop(self, now: float) -> tuple[K, float] | None:
        """The earliest key due by `now` and when it was due; it leaves the queue. One at a time:
        what the caller does with it may take others out (the scheduler's coalescing)."""
        while self._heap and self._heap[0][0] <= now:
            at, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == at:
                del self._due[key]
                return key, at
        return None

    def next_at(self) -> float | None:
        """When the earliest key is due (skipping moved and forgotten keys' leftovers)."""
        while self._heap:
            at, _, key = self._heap[0]
            if self._due.get(key) == at:
                return at
            heapq.heappop(self._heap)
        return None

    def wake(self) -> None:
        """End the current `wait` now."""
        self._wake.set()

    async def wait(self, seconds: float, *, until: float = math.inf) -> None:
        """Sleep up to `seconds`, less if a key due before `until` (the end of this sleep on the
        keys' clock; by default any key) is added meanwhile."""
        self._wake.clear()
        self._waiting_until = until
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._wake.wait()
        except TimeoutError:
            pass
        finally:
            self._waiting_until = math.inf
