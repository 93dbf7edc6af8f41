"""Prometheus metrics, served on the operator's metrics port.

One registry object (not the global default) so tests and the `probe` command start clean.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

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
        self.rate_limited = Counter(
            "inferenceops_account_pauses",
            "Provider accounts paused by a 429 Retry-After.",
            ["provider"],
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
