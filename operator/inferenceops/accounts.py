"""Provider accounts: one HTTP client, connection pool, request budget and 429 pause each.

An account is what a provider says shares limits: the provider, its base URL (and team or
workspace), and the credential. Every resource on an account draws from one token bucket, so
10,000 endpoints on one RunPod key cannot exceed what that key is allowed, and a 429's
`Retry-After` pauses the whole account rather than the one resource that happened to see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import math
import ssl
import urllib.request
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpcore
import httpx

from .clock import SYSTEM_CLOCK, Clock
from .egress import EgressPolicy, Network, Resolver, guard_transport, system_resolver
from .metrics import Metrics
from .providers import ErrorReason, ProviderError
from .providers.http import parse_retry_after
from .providers.hwsign import SIGN_EXTENSION

__all__ = ["Account", "AccountPool", "AccountSettings", "Lane", "TokenBucket", "origin"]

log = logging.getLogger(__name__)

#: How a host's requests of the last `slow_memory` seconds went (`AccountPool.lane`): one was
#: slow or missed its deadline ("slow"), else one ended quickly ("known"), else none ended ("new").
Lane = Literal["known", "slow", "new"]


@dataclass(frozen=True, slots=True)
class AccountSettings:
    #: Sustained provider requests per second per account, and the burst above it.
    requests_per_second: float = 50.0
    burst: int = 100
    #: Concurrent requests, and pooled connections, per account.
    max_concurrent_requests: int = 16
    keepalive_seconds: float = 75.0
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    #: Connect, headers and the whole body must fit in this, counted from when the request
    #: leaves the account's budget (a trickling body restarts the read timeout with every byte).
    request_deadline: float = 15.0
    #: A request this slow (or past its deadline) puts its host and account in the scheduler's
    #: slow lane until `slow_memory` seconds pass without another; a host whose requests end
    #: sooner is "known" for as long (docs/operations.md, "Poll slots").
    slow_request: float = 5.0
    slow_memory: float = 300.0
    #: Ranges no provider connection may reach besides link-local (`--deny-cidr`; egress.py).
    denied_networks: tuple[Network, ...] = ()
    user_agent: str = "inferenceops/0.1"

    @classmethod
    def at_rate(cls, requests_per_second: float) -> AccountSettings:
        """The defaults with another rate, and a burst of two seconds' worth of it."""
        return cls(
            requests_per_second=requests_per_second, burst=max(1, int(requests_per_second * 2))
        )


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

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock.monotonic() + seconds)
        # Resume at `rate`, not with a burst: the provider has just said it is overwhelmed.
        tolerance = (self.capacity - 1.0) / self.rate
        self._full_at = max(self._full_at, self.paused_until + tolerance)

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


class _Deadline(httpx.AsyncByteStream):
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


class _BudgetedTransport(httpx.AsyncBaseTransport):
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

    def _count(self, code: str) -> None:
        counter = self._requests.get(code)
        if counter is None:
            counter = self._requests[code] = self._metrics.provider_requests.labels(
                self._provider, code
            )
        counter.inc()

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
            response.stream = _Deadline(
                response.stream,
                deadline,
                lambda: self._expired(url),
                lambda: self._ended(url, started),
            )
        self._count(str(response.status_code))
        if response.status_code == 429:
            wait = parse_retry_after(response.headers.get("retry-after"))
            self._bucket.pause(wait if wait is not None else 1.0)
            self._metrics.rate_limited.labels(self._provider).inc()
        return response

    async def aclose(self) -> None:
        if self._owns_inner:
            await self._inner.aclose()


class _ProxyRouter(httpx.AsyncBaseTransport):
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
        if _bypassed(url.host, self._proxies.get("no", "")):
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


def _bypassed(host: str, no_proxy: str) -> bool:
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


@dataclass
class Account:
    provider: str
    client: httpx.AsyncClient
    bucket: TokenBucket
    last_used: float
    transport: _BudgetedTransport


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
        *,
        resolver: Resolver = system_resolver,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings or AccountSettings()
        self.metrics = metrics or Metrics()
        #: Every account's budget and Retry-After pause, and how long each has been idle.
        self.clock = clock
        #: Tests inject one transport for every account; otherwise each account has its own.
        self._transport = transport
        self._egress = EgressPolicy.denying(self.settings.denied_networks)
        #: Tests resolve names and record connections instead of making them.
        self._resolver = resolver
        self._network_backend = network_backend
        #: Loop time of each host's last slow request, and of its last quick one (`lane`).
        self._slow_hosts: dict[str, float] = {}
        self._quick_hosts: dict[str, float] = {}
        #: Read once: the process environment does not change under a running operator.
        self._proxies = {
            scheme: url
            for scheme, url in urllib.request.getproxies_environment().items()
            if scheme in ("http", "https", "all", "no")
        }
        self._ssl: ssl.SSLContext | None = None
        self._accounts: dict[Hashable, Account] = {}

    def get(
        self,
        provider: str,
        key: Hashable,
        *,
        requests_per_second: float | None = None,
        burst: int | None = None,
    ) -> Account:
        """The account under `key`, opened on first use with its own budget (a provider
        object's) or the operator's; a changed budget must come with a new key."""
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = self._open(provider, requests_per_second, burst)
        account.last_used = self.clock.monotonic()
        return account

    def paused_for(self, key: Hashable) -> float | None:
        """Seconds left of a provider's Retry-After pause of this account, if one is on."""
        account = self._accounts.get(key)
        if account is None:
            return None
        left = account.bucket.paused_until - self.clock.monotonic()
        return left if left > 0 else None

    def lane(self, key: Hashable, host: str) -> Lane:
        """The scheduler's lane for a poll of `host` on the account under `key`: "slow" when a
        request to the host, or of the account, was slow or missed its deadline in the last
        `slow_memory` seconds; else "known" when one to the host ended in that time; else
        "new"."""
        since = asyncio.get_running_loop().time() - self.settings.slow_memory
        account = self._accounts.get(key)
        if self._slow_hosts.get(host, -math.inf) > since or (
            account is not None and account.transport.slow_at > since
        ):
            return "slow"
        return "known" if self._quick_hosts.get(host, -math.inf) > since else "new"

    def _request_ended(self, host: str, at: float, slow: bool) -> None:
        if not slow:
            self._quick_hosts[host] = at
            return
        if self._slow_hosts.get(host, -math.inf) <= at - self.settings.slow_memory:
            log.info(
                "%s answered slowly or not in time: its polls use the slow lane until %g s pass "
                "without another slow request",
                host,
                self.settings.slow_memory,
            )
        self._slow_hosts[host] = at

    def _open(self, provider: str, rate: float | None, burst: int | None) -> Account:
        s = self.settings
        inner = self._transport
        if inner is None:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            # A pool per account, not one for all: httpcore scans every pooled connection (and
            # polls each idle socket) on each request, so one pool of hundreds cost more CPU
            # than the requests. One SSL context for all: each context holds the CA bundle.
            ssl_context = self._ssl

            def pooled(proxy: str | None) -> httpx.AsyncBaseTransport:
                transport = httpx.AsyncHTTPTransport(
                    verify=ssl_context,
                    limits=httpx.Limits(
                        max_connections=s.max_concurrent_requests,
                        max_keepalive_connections=s.max_concurrent_requests,
                        # Longer than a 30 s poll interval: httpx's 5 s default would open a new
                        # connection (and TLS handshake) for nearly every poll.
                        keepalive_expiry=s.keepalive_seconds,
                    ),
                    retries=0,
                    proxy=proxy,
                )
                # Through a proxy, this checks the proxy's address; the proxy resolves the host.
                guard_transport(transport, self._egress, self._resolver, self._network_backend)
                return transport

            has_proxy = any(k != "no" for k in self._proxies)
            inner = _ProxyRouter(self._proxies, pooled) if has_proxy else pooled(None)
        # A provider object's rate without a burst gets the operator's rule (two seconds' worth),
        # not the operator's burst, which belongs to another rate.
        budget = s if rate is None else AccountSettings.at_rate(rate)
        bucket = TokenBucket(
            rate=budget.requests_per_second,
            capacity=float(burst or budget.burst),
            clock=self.clock,
        )
        transport = _BudgetedTransport(
            inner,
            bucket,
            provider,
            self.metrics,
            s,
            self._request_ended,
            owns_inner=self._transport is None,
        )
        client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
            headers={"User-Agent": s.user_agent, "Accept": "application/json"},
            follow_redirects=False,
        )
        return Account(
            provider=provider,
            client=client,
            bucket=bucket,
            last_used=self.clock.monotonic(),
            transport=transport,
        )

    async def close_idle(self, idle_seconds: float = 3600.0) -> None:
        since = asyncio.get_running_loop().time() - self.settings.slow_memory
        self._slow_hosts = {h: t for h, t in self._slow_hosts.items() if t > since}
        self._quick_hosts = {h: t for h, t in self._quick_hosts.items() if t > since}
        cutoff = self.clock.monotonic() - idle_seconds
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
