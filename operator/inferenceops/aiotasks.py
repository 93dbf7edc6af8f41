"""Awaiting several things at once, cheaply: `concurrently`, for the scheduler and the adapters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

__all__ = ["concurrently"]

_T = TypeVar("_T")


async def concurrently(awaitables: Sequence[Awaitable[_T]]) -> list[_T]:
    """`asyncio.gather` without its Task when there is only one: most polls are of one endpoint,
    and a Task per poll (twice) showed in the steady-state profile at 10,000 endpoints."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    return list(await asyncio.gather(*awaitables))
