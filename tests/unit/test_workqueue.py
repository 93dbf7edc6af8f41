"""workqueue.ScheduledQueue: earliest first, moving and forgetting keys, waking its waiter."""

from __future__ import annotations

import asyncio
import math

import pytest

from inferenceops.workqueue import ScheduledQueue


def drain(queue: ScheduledQueue[str], now: float) -> list[tuple[str, float]]:
    out = []
    while (item := queue.pop(now)) is not None:
        out.append(item)
    return out


def test_earliest_first_and_only_what_is_due() -> None:
    queue: ScheduledQueue[str] = ScheduledQueue()
    queue.add("b", 2.0)
    queue.add("a", 1.0)
    queue.add("c", 9.0)
    assert queue.next_at() == 1.0
    assert drain(queue, 5.0) == [("a", 1.0), ("b", 2.0)]
    assert len(queue) == 1 and "c" in queue and queue.next_at() == 9.0


def test_re_adding_moves_a_key_and_forget_removes_it() -> None:
    queue: ScheduledQueue[str] = ScheduledQueue()
    queue.add("a", 1.0)
    queue.add("a", 4.0)
    queue.add("b", 2.0)
    queue.forget("b")
    assert queue.next_at() == 4.0, "the leftovers of moved and forgotten keys are skipped"
    assert drain(queue, 3.0) == []
    assert drain(queue, 4.0) == [("a", 4.0)]
    queue.add("x", math.inf)
    assert "x" not in queue and queue.next_at() is None


async def test_adding_wakes_a_waiter() -> None:
    loop = asyncio.get_running_loop()
    queue: ScheduledQueue[str] = ScheduledQueue()
    started = loop.time()
    waiter = asyncio.create_task(queue.wait(30.0))
    await asyncio.sleep(5)
    queue.add("a", 0.0)
    await waiter
    assert loop.time() - started == pytest.approx(5), "woken when the key was added, not after 30 s"


async def test_a_key_due_after_the_sleep_ends_does_not_wake_the_waiter() -> None:
    """Every finished poll re-adds its key an interval later; waking the scheduler's loop for
    each (it would find nothing due) was a wake-up per poll at 10,000."""
    loop = asyncio.get_running_loop()
    queue: ScheduledQueue[str] = ScheduledQueue()
    started = loop.time()
    waiter = asyncio.create_task(queue.wait(30.0, until=100.0))
    await asyncio.sleep(5)
    queue.add("later", 130.0)
    await asyncio.sleep(5)
    assert not waiter.done(), "a key due after the sleep must not end it"
    queue.add("sooner", 99.0)
    await waiter
    assert loop.time() - started == pytest.approx(10), "a key due before the sleep ends wakes it"


def test_a_key_changed_while_processed_is_processed_once_more() -> None:
    queue: ScheduledQueue[str] = ScheduledQueue()
    queue.add("a", 1.0)
    assert queue.pop(1.0) == ("a", 1.0)
    assert not queue.mark_dirty("a")  # not being processed: the caller schedules it itself
    queue.begin("a")
    assert queue.is_processing("a") and not queue.is_dirty("a")
    assert queue.mark_dirty("a") and queue.mark_dirty("a")  # twice while processed: once after
    assert queue.is_dirty("a")
    assert queue.done("a")
    assert not queue.is_processing("a") and not queue.is_dirty("a")
    queue.begin("a")
    assert not queue.done("a")  # the second run saw no change


def test_begin_takes_a_key_out_of_the_queue_until_it_is_added_back() -> None:
    queue: ScheduledQueue[str] = ScheduledQueue()
    queue.add("a", 1.0)
    queue.add("b", 2.0)
    queue.begin("b")
    assert "b" not in queue and drain(queue, 5.0) == [("a", 1.0)]
    queue.add("b", 3.0)  # its next time, set while it is processed
    assert not queue.done("b")
    assert drain(queue, 5.0) == [("b", 3.0)]
