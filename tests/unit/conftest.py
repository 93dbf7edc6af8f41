"""Unit tests run on virtual time, and share their fixtures here.

Every test here runs with `@pytest.mark.looptime` unless it says `@pytest.mark.looptime(False)`
(one that waits for a real process or thread): the event loop's clock is virtual, so "nothing
happened in 30 s" takes no time and means exactly that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import Scheduler

from .probe_api import probe_api
from .support import FakeWriter, Provider, VirtualClock, ns_ready, scheduling

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE) and item.get_closest_marker("looptime") is None:
            item.add_marker(pytest.mark.looptime)


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
