"""Prometheus metrics, served on the operator's metrics port (docs/monitoring.md lists them).

One registry object (not the global default) so tests and the `probe` command start clean.
Every label value is bounded: providers, status codes, phases, resources and accounts (a
provider object's name or a hash of an inline account's key), never an endpoint, URL or token.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AccountMetrics", "Metrics"]

#: The window `inferenceops_account_budget_utilization` is measured over, in seconds.
BUDGET_WINDOW = 60

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "inferenceops_polls",
            "Endpoint observations by provider and outcome (ok or the Synced reason).",
            ["provider", "outcome"],
            registry=r,
        )
        self.provider_requests = Counter(
            "inferenceops_provider_requests",
            "HTTP requests sent to providers (compare with polls to see coalescing).",
            ["provider", "code"],
            registry=r,
        )
        self.provider_latency = Histogram(
            "inferenceops_provider_request_seconds",
            "Provider HTTP request latency.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.status_writes = Counter(
            "inferenceops_status_writes",
            "Status patches sent to the API server.",
            ["result"],
            registry=r,
        )
        self.events = Counter(
            "inferenceops_events", "Kubernetes Events emitted.", ["type"], registry=r
        )
        self.endpoints = Gauge(
            "inferenceops_endpoints", "Tracked endpoints by phase.", ["phase"], registry=r
        )
        self.scheduler_lag = Histogram(
            "inferenceops_scheduler_lag_seconds",
            "How late polls start after they are due.",
            buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.change_to_write = Histogram(
            "inferenceops_change_to_write_seconds",
            "From the provider's own last-change time "
            "(where it reports one) to the status write that shows the change.",
            ["provider"],
            buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
            registry=r,
        )
        account = ["provider", "account"]
        self.account_requests = Counter(
            "inferenceops_account_requests",
            "HTTP requests sent to providers, by account and status code (or error).",
            [*account, "code"],
            registry=r,
        )
        self.account_pauses = Counter(
            "inferenceops_account_pauses",
            "429 Retry-After pauses of a provider account.",
            account,
            registry=r,
        )
        self.account_paused_seconds = Counter(
            "inferenceops_account_paused_seconds",
            "Seconds a provider account was paused by 429 Retry-After answers.",
            account,
            registry=r,
        )
        self.account_budget_utilization = Gauge(
            "inferenceops_account_budget_utilization",
            f"Share (0..1) of an account's requestsPerSecond used over the last {BUDGET_WINDOW} s.",
            account,
            registry=r,
        )
        self.account_auth_failures = Counter(
            "inferenceops_account_auth_failures",
            "Provider answers 401 or 403: the account's credentials were refused.",
            account,
            registry=r,
        )
        self.polls_in_flight = Gauge(
            "inferenceops_polls_in_flight",
            "Endpoint polls started and not yet recorded.",
            registry=r,
        )
        self.watch_last_event = Gauge(
            "inferenceops_watch_last_event_timestamp_seconds",
            "Unix time of an informer's last list page, watch event or bookmark.",
            ["resource"],
            registry=r,
        )
        # Membership (membership.py): replicas sharing the work through Leases.
        self.members = Gauge(
            "inferenceops_members", "Live members of this operator's group seen.", registry=r
        )
        self.endpoints_owned = Gauge(
            "inferenceops_endpoints_owned", "Endpoints this member polls.", registry=r
        )
        self.handovers = Counter(
            "inferenceops_handovers",
            "Endpoints this member took over (gained) or gave up (lost) on membership changes.",
            ["direction"],
            registry=r,
        )
        for direction in ("gained", "lost"):  # both series from the start, at 0
            self.handovers.labels(direction)
        self.lease_renew_failures = Counter(
            "inferenceops_lease_renew_failures",
            "Failed renewals of this member's Lease.",
            registry=r,
        )
        self.lease_held = Gauge(
            "inferenceops_lease_held",
            "1 while this member holds its Lease (renewed within the renew deadline), else 0.",
            registry=r,
        )
        self._accounts: dict[tuple[str, str], AccountMetrics] = {}

    def account(
        self, provider: str, label: str, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> AccountMetrics:
        """The series of one account, shared by every client opened under its label."""
        bound = self._accounts.get((provider, label))
        if bound is None:
            bound = self._accounts[(provider, label)] = AccountMetrics(
                self, provider, label, rate, clock
            )
        return bound

    def forget_account(self, provider: str, label: str) -> None:
        """Drop a closed account's series: rotated inline credentials must not pile up labels."""
        bound = self._accounts.pop((provider, label), None)
        if bound is None:
            return
        for family in (
            self.account_pauses,
            self.account_paused_seconds,
            self.account_budget_utilization,
            self.account_auth_failures,
        ):
            family.remove(provider, label)
        for code in bound.codes():
            self.account_requests.remove(provider, label, code)


class AccountMetrics:
    """One account's children, bound once (a labelled lookup per request shows in profiles at
    10,000 endpoints), and the requests of its last minute for the budget gauge."""

    def __init__(
        self, metrics: Metrics, provider: str, label: str, rate: float, clock: Callable[[], float]
    ) -> None:
        self._family = metrics.account_requests
        self._labels = (provider, label)
        self._requests: dict[str, Counter] = {}
        self._pauses = metrics.account_pauses.labels(provider, label)
        self._paused_seconds = metrics.account_paused_seconds.labels(provider, label)
        self._auth_failures = metrics.account_auth_failures.labels(provider, label)
        self._rate = rate
        self._clock = clock
        # One slot per second of the window, each (second it counts, requests): the gauge is
        # read on the metrics server's thread, so it reads without mutating.
        self._seconds = [-1] * BUDGET_WINDOW
        self._counts = [0] * BUDGET_WINDOW
        metrics.account_budget_utilization.labels(provider, label).set_function(self.utilization)

    def sent(self) -> None:
        """A request took a token of the account's budget."""
        second = int(self._clock())
        slot = second % BUDGET_WINDOW
        if self._seconds[slot] != second:
            self._seconds[slot], self._counts[slot] = second, 0
        self._counts[slot] += 1

    def answered(self, code: str) -> None:
        counter = self._requests.get(code)
        if counter is None:
            counter = self._requests[code] = self._family.labels(*self._labels, code)
        counter.inc()
        if code in ("401", "403"):
            self._auth_failures.inc()

    def paused(self, seconds: float) -> None:
        self._pauses.inc()
        self._paused_seconds.inc(max(0.0, seconds))

    def utilization(self) -> float:
        since = int(self._clock()) - BUDGET_WINDOW
        used = sum(c for s, c in zip(self._seconds, self._counts, strict=True) if s > since)
        return min(1.0, used / (self._rate * BUDGET_WINDOW))

    def codes(self) -> list[str]:
        return list(self._requests)
