"""memory.py: the long-lived heap is frozen out of full collections, and a cycle that became
garbage while frozen is still reclaimed at the next refreeze."""

from __future__ import annotations

import asyncio
import gc
import weakref

from inferenceops import memory


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_refreeze_freezes_survivors_and_reclaims_frozen_cycles() -> None:
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a reference cycle: only the collector can free it
        gone = weakref.ref(a)
        memory.refreeze()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert gone() is not None, "frozen: ordinary collections do not look at it"
        memory.refreeze()
        assert gone() is None, "the refreeze thawed, collected and reclaimed the cycle"
    finally:
        gc.unfreeze()


async def test_keep_frozen_refreezes_every_period() -> None:
    gc.unfreeze()
    task = asyncio.create_task(memory.keep_frozen(period=0.05, first_after=0.01))
    try:
        assert gc.get_freeze_count() == 0
        await asyncio.sleep(0.03)
        assert gc.get_freeze_count() > 0, "frozen once start-up is over"
        gc.unfreeze()
        await asyncio.sleep(0.1)
        assert gc.get_freeze_count() > 0, "and again every period"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gc.unfreeze()
