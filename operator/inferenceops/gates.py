"""What a poll waits for before it may send: its share of the poll slots (global, per provider,
per host, the slow lane; docs/operations.md, "Poll slots"), and locks that exist only in use."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Generic, TypeVar

from .accounts import Lane, origin

__all__ = ["PollSlots", "WhileUsed", "host_of"]

_K = TypeVar("_K", bound=Hashable)
_G = TypeVar("_G", asyncio.Lock, asyncio.Semaphore)


class WhileUsed(Generic[_K, _G]):
    """A lock or semaphore per key that exists only while someone holds or waits for it."""

    def __init__(self, make: Callable[[], _G]) -> None:
        self._make: Callable[[], _G] = make
        self._held: dict[_K, tuple[_G, int]] = {}

    @contextlib.asynccontextmanager
    async def held(self, key: _K) -> AsyncIterator[None]:
        gate, users = self._held.get(key) or (self._make(), 0)
        self._held[key] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (gate, users - 1)


class PollSlots:
    """The semaphores one account poll passes, the global one taken last: waiting for the slow
    lane, the host's or the provider's share holds no global slot."""

    def __init__(self, total: int, per_provider: int, per_host: int, slow_lane: int) -> None:
        self._gate = asyncio.Semaphore(total)
        self._per_provider = per_provider
        self._provider_gates: dict[str, asyncio.Semaphore] = {}
        #: Per host (scheme://host:port) not known to answer quickly.
        self._host_gates: WhileUsed[str, asyncio.Semaphore] = WhileUsed(
            lambda: asyncio.Semaphore(per_host)
        )
        self._slow_lane = asyncio.Semaphore(slow_lane)

    @contextlib.asynccontextmanager
    async def held(self, provider_name: str, host: str, lane: Lane) -> AsyncIterator[None]:
        """`lane` is the account pool's word for the host (`accounts.AccountPool.lane`)."""
        slow_lane = self._slow_lane if lane == "slow" else contextlib.nullcontext()
        provider = self._provider_gates.get(provider_name)
        if provider is None:
            provider = self._provider_gates[provider_name] = asyncio.Semaphore(self._per_provider)
        if lane == "known":
            # Answering quickly earns a host its provider's share: one host may serve thousands
            # of healthy endpoints (a SaaS API, the benchmark's emulator).
            async with provider, self._gate:
                yield
            return
        async with slow_lane, self._host_gates.held(host), provider, self._gate:
            yield


def host_of(account: Hashable, provider: str) -> str:
    """The host a batch's requests go to: its account key's base URL (every adapter's key holds
    one), else the provider's own name (one default host)."""
    key = account[0] if isinstance(account, tuple) else account
    for part in key if isinstance(key, tuple) else (key,):
        if isinstance(part, str) and part.startswith(("http://", "https://")):
            return origin(part)
    return provider
