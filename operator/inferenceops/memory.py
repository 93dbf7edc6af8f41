"""The heap of a process whose objects are nearly all long-lived: the cyclic garbage collector,
and the C heap's freed memory.

At 10,000 endpoints the operator holds about a million container objects that live as long as
their resources: specs, statuses, scheduler entries, pooled connections. CPython's collector
re-examines every one of them in each full collection, and steady polling allocates enough to
set one off every few cycles; at 10,000 that was about a tenth of the operator's steady CPU
(docs/performance.md, item 17). `gc.freeze()` takes what exists out of the collector's sight.
Freezing for good would leak any reference cycle among those objects that later becomes garbage,
so every `period` the heap is thawed, collected once and frozen again: one full collection per
period instead of one every few cycles, and nothing is kept that a collection would free.

glibc's malloc keeps memory a program frees for its next allocations, and gives back to the
system only what lies at the very top of its heap. A provider's whole-account listing leaves
megabytes of it: pydantic-core parses a body into a tree of its own (about 8 MB for a 4 MB RunPod
listing of 1,000 endpoints with their workers) before it validates, and frees it at once; so do
the bodies themselves and each LIST page from the API server. That memory stayed in the
operator's RSS, which the kubelet and the cluster's memory accounting count, for nothing.
`malloc_trim(0)` returns every free page; at 10,000 endpoints one replica's RSS went from 231-236
to ~226 MB and each of three members' from 141-148 to ~133 (docs/performance.md, "Member
memory"). It costs well under a millisecond.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import time
from collections.abc import Callable

__all__ = [
    "REFREEZE_SECONDS",
    "RELEASE_SECONDS",
    "keep_frozen",
    "keep_released",
    "refreeze",
    "release_free_memory",
]

log = logging.getLogger(__name__)

#: Seconds between full collections. Each pauses the event loop while it runs: 0.08 s for the
#: scheduler's 10,000 entries with their statuses (153,000 objects, measured in-process); the
#: whole operator's heap at 10,000 is a few times larger.
REFREEZE_SECONDS = 300.0
#: The first freeze waits for start-up: the first polls create the statuses and the connections.
FIRST_FREEZE_SECONDS = 60.0
#: Seconds between returns of freed C-heap memory: a listing's leftovers are gone within one
#: poll interval (5 s by default), for a fraction of a millisecond each time.
RELEASE_SECONDS = 5.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; False where that cannot be done."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def refreeze() -> float:
    """Thaw, collect everything once, freeze what survived; seconds the collection took."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started


async def keep_frozen(
    period: float = REFREEZE_SECONDS, first_after: float = FIRST_FREEZE_SECONDS
) -> None:
    await asyncio.sleep(first_after)
    while True:
        took = refreeze()
        log.debug("full collection in %.3f s; %d objects frozen", took, gc.get_freeze_count())
        await asyncio.sleep(period)


async def keep_released(period: float = RELEASE_SECONDS) -> None:
    """Runs only where `release_free_memory` works (the app checks): a root task never ends."""
    while True:
        await asyncio.sleep(period)
        release_free_memory()
