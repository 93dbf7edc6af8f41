"""Under each provider account's HTTP client: the token bucket its requests wait for, the
whole-request deadline (headers and body), metrics and slow-host records, and the proxy the
environment names for a URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import math
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from .clock import SYSTEM_CLOCK, Clock
from .metrics import AccountMetrics, Metrics
from .providers import ErrorReason, ProviderError
from .providers.http import parse_retry_after
from .providers.hwsign import SIGN_EXTENSION

if TYPE_CHECKING:
    from .accounts import AccountSettings

__all__ = [
    "BudgetedTransport",
    "DeadlineStream",
    "ProxyRouter",
    "TokenBucket",
    "bypassed",
    "origin",
]


@dataclass
class TokenBucket:
    """`rate` requests per second after a burst of `capacity`, in the order they asked.

    Each request reserves the next free slot and sleeps once, until that slot (virtual
    scheduling, as in GCRA). Re-checking a shared token count instead would wake every waiter at
    each refill: 2,500 requests queued on one account then cost millions of wake-ups.
    """

    rate: float
    capacity: float
    clock: Clock = field(default=SYSTEM_CLOCK)
    paused_until: float = field(init=False, default=0.0)
    #: When the bucket would be full again had no one else asked (the "theoretical arrival time").
    _full_at: float = field(init=False, default=-math.inf)

    def pause(self, seconds: float) -> float:
        """Pause for `seconds` from now; the seconds this adds to a pause already on."""
        now = self.clock.monotonic()
        before = max(now, self.paused_until)
        self.paused_until = max(self.paused_until, now + seconds)
        # Resume at `rate`, not with a burst: the provider has just said it is overwhelmed.
        tolerance = (self.capacity - 1.0) / self.rate
        self._full_at = max(self._full_at, self.paused_until + tolerance)
        return self.paused_until - before

    def reserve(self) -> float:
        """Take the next free slot; seconds until it."""
        now = self.clock.monotonic()
        interval = 1.0 / self.rate
        tolerance = (self.capacity - 1.0) * interval
        slot = max(now, self.paused_until, self._full_at - tolerance)
        self._full_at = max(self._full_at, slot) + interval
        return slot - now

    async def acquire(self) -> None:
        while True:
            wait = self.reserve()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.clock.monotonic() >= self.paused_until:
                return
            # A 429 paused the account while we slept: queue again behind the pause.


@functools.lru_cache(maxsize=4096)
def _origin_of(url: str) -> str:
    try:
        return origin(httpx.URL(url))
    except httpx.InvalidURL:
        return url  # the request will say what is wrong with it


def origin(url: httpx.URL | str) -> str:
    """scheme://host:port, the port always spelt out: what shares connections (and poll slots)."""
    if isinstance(url, str):
        return _origin_of(url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.scheme}://{url.host}:{port}"


class DeadlineStream(httpx.AsyncByteStream):
    """A response body that must arrive by `deadline` (loop time); `done` runs once it ends."""

    def __init__(
        self,
        inner: httpx.AsyncByteStream,
        deadline: float,
        expired: Callable[[], ProviderError],
        done: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._deadline = deadline
        self._expired = expired
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = aiter(self._inner)
        while True:
            timeout = asyncio.timeout_at(self._deadline)
            try:
                async with timeout:
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if timeout.expired():
                    raise self._expired() from None
                raise
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()


class BudgetedTransport(httpx.AsyncBaseTransport):
    """Waits for the account's budget before each request, holds each to the request deadline,
    and records what was sent and which requests were slow."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        bucket: TokenBucket,
        provider: str,
        metrics: Metrics,
        settings: AccountSettings,
        on_end: Callable[[str, float, bool], None],
        *,
        owns_inner: bool,
        account: AccountMetrics,
    ) -> None:
        self._inner = inner
        self._owns_inner = owns_inner
        self._bucket = bucket
        self._provider = provider
        self._metrics = metrics
        self._gate = asyncio.Semaphore(settings.max_concurrent_requests)
        self._deadline = settings.request_deadline
        self._slow_request = settings.slow_request
        self._on_end = on_end
        #: Loop time of this account's last slow request.
        self.slow_at = -math.inf
        # Bound once: looking a labelled child up per request shows in the profile at 10,000.
        self._latency = metrics.provider_latency.labels(provider)
        self._requests: dict[str, Any] = {}
        self._account = account

    def _count(self, code: str) -> None:
        counter = self._requests.get(code)
        if counter is None:
            counter = self._requests[code] = self._metrics.provider_requests.labels(
                self._provider, code
            )
        counter.inc()
        self._account.answered(code)

    def _expired(self, url: httpx.URL) -> ProviderError:
        return ProviderError(
            ErrorReason.TIMEOUT,
            f"no complete answer from {origin(url)} within the {self._deadline:g} s request "
            "deadline (connect, headers and body)",
        )

    def _ended(self, url: httpx.URL, started: float) -> None:
        now = asyncio.get_running_loop().time()
        slow = now - started >= min(self._slow_request, self._deadline)
        if slow:
            self.slow_at = now
        self._on_end(origin(url), now, slow)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._bucket.acquire()
        self._account.sent()
        sign = request.extensions.get(SIGN_EXTENSION)
        if sign is not None:
            # Signed now, not when the adapter built it: a request that queued behind the
            # budget must not go out with a signature date the provider calls too old.
            sign(request)
        loop = asyncio.get_running_loop()
        async with self._gate:
            # Started here: waiting for this account's budget or its connections is no sign of
            # a slow host, and must not turn into a Timeout.
            started = loop.time()
            deadline = started + self._deadline
            timeout = asyncio.timeout_at(deadline)
            try:
                async with timeout:
                    response = await self._inner.handle_async_request(request)
            except TimeoutError:
                self._count("error")
                self._ended(request.url, started)
                if timeout.expired():
                    raise self._expired(request.url) from None
                raise
            except httpx.HTTPError:
                self._count("error")
                self._ended(request.url, started)
                raise
            finally:
                self._latency.observe(loop.time() - started)
        url = request.url
        if response.is_closed or not isinstance(response.stream, httpx.AsyncByteStream):
            self._ended(url, started)  # read already (a test's MockTransport)
        else:
            response.stream = DeadlineStream(
                response.stream,
                deadline,
                lambda: self._expired(url),
                lambda: self._ended(url, started),
            )
        self._count(str(response.status_code))
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("retry-after"))
            self._account.paused(self._bucket.pause(wait if wait is not None else 1.0))
        return response

    async def aclose(self) -> None:
        if self._owns_inner:
            await self._inner.aclose()


class ProxyRouter(httpx.AsyncBaseTransport):
    """Sends each request directly or through the proxy the environment names for its URL
    (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY, as curl and client-go read them).

    httpx reads those only when it builds its own transport; every account has its own, so
    without this a cluster that reaches the internet through a proxy could reach no provider.
    """

    def __init__(
        self,
        proxies: Mapping[str, str],
        make: Callable[[str | None], httpx.AsyncBaseTransport],
    ) -> None:
        self._proxies = proxies
        self._make = make
        self._transports: dict[str | None, httpx.AsyncBaseTransport] = {}

    def proxy_for(self, url: httpx.URL) -> str | None:
        if bypassed(url.host, self._proxies.get("no", "")):
            return None
        return self._proxies.get(url.scheme) or self._proxies.get("all")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self.proxy_for(request.url)
        transport = self._transports.get(proxy)
        if transport is None:
            transport = self._transports[proxy] = self._make(proxy)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()


def bypassed(host: str, no_proxy: str) -> bool:
    """Whether NO_PROXY exempts `host`: `*`, a domain and its subdomains (`example.com`,
    `.example.com`), an IP or a CIDR range (as client-go reads it); ports are ignored."""
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            with contextlib.suppress(ValueError):
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            continue
        domain = entry.lstrip(".")
        if domain.count(":") == 1:  # host:port
            domain = domain.split(":")[0]
        if host == domain or host.endswith("." + domain):
            return True
    return False
