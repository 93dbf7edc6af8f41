"""Provider accounts: one shared HTTP client, request budget and 429 pause per account.

An account is what a provider says shares limits: the provider, its base URL (and team or
workspace), and the credential. Every resource on an account draws from one token bucket, so
10,000 endpoints on one RunPod key cannot exceed what that key is allowed, and a 429's
`Retry-After` pauses the whole account rather than the one resource that happened to see it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import httpx

from .metrics import Metrics
from .providers.http import parse_retry_after

__all__ = ["Account", "AccountPool", "AccountSettings", "TokenBucket"]


@dataclass(frozen=True, slots=True)
class AccountSettings:
    #: Sustained provider requests per second per account, and the burst above it.
    requests_per_second: float = 20.0
    burst: int = 40
    #: Concurrent requests per account.
    max_concurrent_requests: int = 16
    #: Connections of the one pool all accounts share (a pool per account would also mean an
    #: SSL context per account: a self-hosted server per endpoint is an account each).
    max_connections: int = 256
    keepalive_seconds: float = 75.0
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    user_agent: str = "inferenceops/0.1"


@dataclass
class TokenBucket:
    rate: float
    capacity: float
    clock: Callable[[], float] = field(default=time.monotonic)
    tokens: float = field(init=False)
    updated: float = field(init=False)
    paused_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.capacity
        self.updated = self.clock()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def delay(self) -> float:
        """Seconds until a request may go, taking one token if it may go now."""
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    async def acquire(self) -> None:
        # Sleeping for the computed delay is exact here: nothing else can refill the bucket.
        while (wait := self.delay()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)


class _BudgetedTransport(httpx.AsyncBaseTransport):
    """Waits for the account's budget before each request and records what was sent."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        bucket: TokenBucket,
        provider: str,
        metrics: Metrics,
        concurrency: int,
    ) -> None:
        self._inner = inner
        self._bucket = bucket
        self._provider = provider
        self._metrics = metrics
        self._gate = asyncio.Semaphore(concurrency)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._bucket.acquire()
        started = time.perf_counter()
        try:
            async with self._gate:
                response = await self._inner.handle_async_request(request)
        except httpx.HTTPError:
            self._metrics.provider_requests.labels(self._provider, "error").inc()
            raise
        finally:
            self._metrics.provider_latency.labels(self._provider).observe(
                time.perf_counter() - started
            )
        self._metrics.provider_requests.labels(self._provider, str(response.status_code)).inc()
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("retry-after"))
            self._bucket.pause(wait if wait is not None else 1.0)
            self._metrics.rate_limited.labels(self._provider).inc()
        return response

    async def aclose(self) -> None:
        pass  # the inner pool is shared; AccountPool closes it


@dataclass
class Account:
    provider: str
    client: httpx.AsyncClient
    bucket: TokenBucket
    last_used: float


def credential_fingerprint(credential: str | None) -> str:
    """Identifies a credential in account keys and logs without holding the credential itself."""
    if not credential:
        return "-"
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


class AccountPool:
    def __init__(
        self,
        settings: AccountSettings | None = None,
        metrics: Metrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or AccountSettings()
        self.metrics = metrics or Metrics()
        self._transport = transport
        self._accounts: dict[Hashable, Account] = {}

    def get(self, provider: str, key: Hashable) -> Account:
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = self._open(provider)
        account.last_used = time.monotonic()
        return account

    def _open(self, provider: str) -> Account:
        s = self.settings
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=s.max_connections,
                    max_keepalive_connections=s.max_connections,
                    # Longer than a 30 s poll interval: httpx's 5 s default would open a new
                    # connection (and TLS handshake) for nearly every poll.
                    keepalive_expiry=s.keepalive_seconds,
                ),
                retries=0,
            )
        bucket = TokenBucket(rate=s.requests_per_second, capacity=float(s.burst))
        transport = _BudgetedTransport(
            self._transport, bucket, provider, self.metrics, s.max_concurrent_requests
        )
        client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
            headers={"User-Agent": s.user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )
        return Account(provider=provider, client=client, bucket=bucket, last_used=time.monotonic())

    async def close_idle(self, idle_seconds: float = 3600.0) -> None:
        cutoff = time.monotonic() - idle_seconds
        for key, account in list(self._accounts.items()):
            if account.last_used < cutoff:
                del self._accounts[key]
                await account.client.aclose()

    async def aclose(self) -> None:
        accounts, self._accounts = list(self._accounts.values()), {}
        for account in accounts:
            await account.client.aclose()
        if self._transport is not None:
            await self._transport.aclose()
