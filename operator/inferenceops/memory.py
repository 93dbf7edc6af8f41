"""The cyclic garbage collector, for a process whose heap is nearly all long-lived.

At 10,000 endpoints the operator holds about a million container objects that live as long as
their resources: specs, statuses, scheduler entries, pooled connections. CPython's collector
re-examines every one of them in each full collection, and steady polling allocates enough to
set one off every few cycles; at 10,000 that was about a tenth of the operator's steady CPU
(docs/performance.md, item 17). `gc.freeze()` takes what exists out of the collector's sight.
Freezing for good would leak any reference cycle among those objects that later becomes garbage,
so every `period` the heap is thawed, collected once and frozen again: one full collection per
period instead of one every few cycles, and nothing is kept that a collection would free.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

__all__ = ["REFREEZE_SECONDS", "keep_frozen", "refreeze"]

log = logging.getLogger(__name__)

#: Seconds between full collections. Each pauses the event loop while it runs: 0.08 s for the
#: scheduler's 10,000 entries with their statuses (153,000 objects, measured in-process); the
#: whole operator's heap at 10,000 is a few times larger.
REFREEZE_SECONDS = 300.0
#: The first freeze waits for start-up: the first polls create the statuses and the connections.
FIRST_FREEZE_SECONDS = 60.0


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
