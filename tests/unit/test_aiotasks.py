"""aiotasks.Detached: tasks nobody awaits are kept until they end, drained or cancelled together."""

from __future__ import annotations

import asyncio

from inferenceops.aiotasks import Detached


async def test_drain_waits_for_tasks_started_while_draining() -> None:
    tasks = Detached()
    ended: list[str] = []

    async def second() -> None:
        await asyncio.sleep(2)
        ended.append("second")

    async def first() -> None:
        await asyncio.sleep(1)
        tasks.start(second())
        ended.append("first")

    tasks.start(first())
    assert len(tasks) == 1
    await tasks.drain()
    assert ended == ["first", "second"] and len(tasks) == 0


async def test_cancel_ends_every_task_and_waits_for_it() -> None:
    tasks = Detached()
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    tasks.start(forever())
    await asyncio.sleep(0)
    await tasks.cancel()
    assert cancelled.is_set() and len(tasks) == 0
