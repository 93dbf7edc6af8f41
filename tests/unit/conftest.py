"""Unit tests run on virtual time and never sleep for real.

Every test here runs with `@pytest.mark.looptime` unless it says `@pytest.mark.looptime(False)`
(one that waits for a real process or thread): the event loop's clock is virtual, so "nothing
happened in 30 s" takes no time and means exactly that. `no_real_sleep` fails a test that still
waits for real for longer than `REAL_SLEEP_LIMIT` (an asyncio sleep or timeout on a real-time loop,
or `time.sleep`): on a slow machine such a test passes without testing anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import Scheduler

from .probe_api import probe_api
from .support import FakeWriter, Provider, VirtualClock, ns_ready, scheduling

#: The longest real wait a unit test may make, in seconds.
REAL_SLEEP_LIMIT = 0.05

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE) and item.get_closest_marker("looptime") is None:
            item.add_marker(pytest.mark.looptime)


class RealSleeps:
    """Records real waits longer than the limit while installed: timers of a real-time event
    loop that fire (asyncio.sleep, a timeout that expires) and `time.sleep`."""

    def __init__(self, limit: float = REAL_SLEEP_LIMIT) -> None:
        self.limit = limit
        self.seen: list[str] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_call_at = asyncio.BaseEventLoop.call_at
        real_sleep = time.sleep
        recorder = self

        def call_at(
            loop: asyncio.BaseEventLoop,
            when: float,
            callback: Callable[..., Any],
            *args: Any,
            **kwargs: Any,
        ) -> asyncio.TimerHandle:
            delay = when - loop.time()
            # looptime's flag: on virtual time a timer costs no real time.
            if delay <= recorder.limit or getattr(loop, "looptime_on", False):
                return real_call_at(loop, when, callback, *args, **kwargs)

            def fired(*args: Any) -> None:
                recorder.seen.append(f"a {delay:.3f} s timer of a real-time event loop")
                callback(*args)

            return real_call_at(loop, when, fired, *args, **kwargs)

        def sleep(seconds: float) -> None:
            if seconds > recorder.limit:
                recorder.seen.append(f"time.sleep({seconds:g})")
            real_sleep(seconds)

        monkeypatch.setattr(asyncio.BaseEventLoop, "call_at", call_at)
        monkeypatch.setattr(time, "sleep", sleep)


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> Iterator[RealSleeps]:
    sleeps = RealSleeps()
    sleeps.install(monkeypatch)
    yield sleeps
    assert not sleeps.seen, (
        f"a unit test waited for real longer than {REAL_SLEEP_LIMIT} s: {', '.join(sleeps.seen)}"
        " (use virtual time: see tests/unit/conftest.py)"
    )


# --- the scheduler and its fakes ------------------------------------------------------------


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def provider() -> Provider:
    return Provider(ns_ready)


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def secrets() -> SecretCache:
    return SecretCache()


@pytest.fixture
async def scheduler(
    provider: Provider, writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> AsyncIterator[Scheduler]:
    """A running scheduler with default settings, polling `provider`, writing to `writer`."""
    async with scheduling(provider, writer, secrets, clock=clock) as sched:
        yield sched


@pytest.fixture(scope="module")
def probe_server() -> Iterator[str]:
    """The providers' APIs for `inferenceops probe` subprocesses (probe_api.py)."""
    with probe_api() as url:
        yield url
