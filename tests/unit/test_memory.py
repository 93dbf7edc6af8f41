"""memory.py: the long-lived heap is frozen out of full collections, a cycle that became
garbage while frozen is still reclaimed at the next refreeze, and freed C-heap pages go back to
the system."""

from __future__ import annotations

import asyncio
import gc
import os
import weakref

import pytest

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


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(memory._MALLOC_TRIM is None, reason="needs glibc (CI and the image have it)")
def test_release_free_memory_gives_freed_heap_pages_back() -> None:
    # 40 MB in blocks malloc serves from its heap (over pymalloc's 512 bytes, under mmap's
    # threshold), with one block after them that stays: free() alone then keeps the pages.
    blocks = [bytes(1000 + i % 7) for i in range(40_000)]
    pin = bytes(1000)
    del blocks
    before = _rss()
    assert memory.release_free_memory()
    after = _rss()
    assert before - after > 20 * 2**20, f"RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MB"
    del pin


async def test_keep_released_releases_every_period(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    monkeypatch.setattr(memory, "_MALLOC_TRIM", trim)
    task = asyncio.create_task(memory.keep_released(period=5.0))
    try:
        await asyncio.sleep(12.0)
        assert calls == [0, 0], "once per period, all free pages (pad 0)"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
