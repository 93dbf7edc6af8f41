"""The operator's one clock: the event loop's time for every delay, and the wall clock for stamps.

Every poll time, staleness deadline, Retry-After pause, request budget and Event window is read
on `monotonic()`, the running loop's time, which is what `asyncio.sleep` and `asyncio.timeout`
wait on: a deadline computed on one clock is never waited for on another. Timestamps written to
the API (lastPollTime, condition and Event times, "polling resumes at") come from `now()`.
Constructors take a `Clock`; tests pass one whose wall clock follows the loop's virtual time
(tests/unit/support.py), so a test's "three intervals later" is exact and instant.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on the running event loop's clock (only meaningful as differences)."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The running loop's time and the system's wall clock. asyncio's loop time is
    `time.monotonic`, which is also read where no loop runs (a synchronous caller)."""

    def monotonic(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()
