"""Provider accounts: one HTTP client, connection pool, request budget and 429 pause each.

An account is what a provider says shares limits: the provider, its base URL (and team or
workspace), and the credential. Every resource on an account draws from one token bucket, so
10,000 endpoints on one RunPod key cannot exceed what that key is allowed, and a 429's
`Retry-After` pauses the whole account rather than the one resource that happened to see it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import ssl
import urllib.request
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import httpcore
import httpx

from .clock import SYSTEM_CLOCK, Clock
from .egress import EgressPolicy, Network, Resolver, guard_transport, system_resolver
from .metrics import Metrics
from .transport import BudgetedTransport, ProxyRouter, TokenBucket, origin

if TYPE_CHECKING:
    from .api.v1alpha1 import AccountSource

__all__ = [
    "Account",
    "AccountPool",
    "AccountSettings",
    "Lane",
    "TokenBucket",
    "account_label",
    "origin",
]

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


#: However few of an account's endpoints a member polls, its part of the account's budget is at
#: least this many requests per second (or the whole budget, if smaller): one endpoint's poll is
#: never starved behind a share rounded down to nothing. The members together may then exceed the
#: account's budget by at most this much per extra member.
MIN_SHARED_RATE = 1.0


@dataclass
class Account:
    provider: str
    client: httpx.AsyncClient
    bucket: TokenBucket
    last_used: float
    transport: BudgetedTransport
    #: The `account` label of its metrics (`account_label`).
    label: str
    #: The account's whole budget (rate, burst) and the share of it this member uses.
    budget: tuple[float, float] = (0.0, 0.0)
    share: float = 1.0

    def use_share(self, share: float) -> None:
        """Use `share` (0..1] of the account's budget (members divide it: membership.py)."""
        if share == self.share:
            return
        self.share = share
        rate, burst = self.budget
        self.bucket.rate = max(rate * share, min(rate, MIN_SHARED_RATE))
        self.bucket.capacity = max(1.0, burst * self.bucket.rate / rate)


def credential_fingerprint(credential: str | None) -> str:
    """Identifies a credential in account keys and logs without holding the credential itself."""
    if not credential:
        return "-"
    return hashlib.sha256(credential.encode()).hexdigest()[:16]


def account_label(source: AccountSource | None, key: Hashable) -> str:
    """An account's metrics label: its provider object (`<namespace>/<name>`, `cluster/<name>`),
    else a hash of its key. Bounded by the accounts in use, and never the token or URL in it."""
    if source is not None:
        return f"{source.namespace or 'cluster'}/{source.name}"
    return "inline-" + hashlib.sha256(repr(key).encode()).hexdigest()[:12]


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
        label: str | None = None,
        share: float = 1.0,
    ) -> Account:
        """The account under `key`, opened on first use with its own budget (a provider
        object's) or the operator's; a changed budget must come with a new key. `label` names
        it in metrics (default: a hash of `key`); `share`: the part of the budget this member
        uses."""
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = self._open(
                provider, requests_per_second, burst, label or account_label(None, key)
            )
        account.use_share(share)
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

    def _open(self, provider: str, rate: float | None, burst: int | None, label: str) -> Account:
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
            inner = ProxyRouter(self._proxies, pooled) if has_proxy else pooled(None)
        # A provider object's rate without a burst gets the operator's rule (two seconds' worth),
        # not the operator's burst, which belongs to another rate.
        budget = s if rate is None else AccountSettings.at_rate(rate)
        bucket = TokenBucket(
            rate=budget.requests_per_second,
            capacity=float(burst or budget.burst),
            clock=self.clock,
        )
        transport = BudgetedTransport(
            inner,
            bucket,
            provider,
            self.metrics,
            s,
            self._request_ended,
            owns_inner=self._transport is None,
            account=self.metrics.account(
                provider, label, budget.requests_per_second, self.clock.monotonic
            ),
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
            label=label,
            budget=(bucket.rate, bucket.capacity),
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
                if not any(
                    (a.provider, a.label) == (account.provider, account.label)
                    for a in self._accounts.values()
                ):
                    self.metrics.forget_account(account.provider, account.label)

    async def aclose(self) -> None:
        accounts, self._accounts = list(self._accounts.values()), {}
        for account in accounts:
            await account.client.aclose()
        if self._transport is not None:
            await self._transport.aclose()
