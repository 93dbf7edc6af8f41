"""One hostile host cannot starve the others (issue 21, point 4b): with 80 endpoints on hosts
that never answer, a healthy endpoint's change still shows within 2 poll intervals, whether the
80 are on one host or on 80 (of the healthy endpoint's own provider). Virtual time throughout."""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from inferenceops.accounts import AccountPool
from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import Scheduler, SchedulerSettings

from .support import VirtualClock, body

HEALTHY = "http://healthy.test:8080"
INTERVAL = 30.0
CHANGE_AT = 120.0


@dataclass
class TimedWriter:
    """Records the loop time of each status patch."""

    patches: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    async def patch_status(self, ref: Any, patch: Any) -> bool:
        self.patches.append((asyncio.get_running_loop().time(), ref.name, dict(patch)))
        return True

    async def emit(self, ref: Any, event: Any) -> None:
        pass


async def healthy_endpoint(
    slow_urls: list[str], stall_from: float = 0.0
) -> tuple[float, list[float]]:
    """Seconds from the healthy endpoint's change (at CHANGE_AT) to its status showing it, and
    the times (from the start) at which it was polled. The other hosts answer quickly until
    `stall_from`, then never."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    polled: list[float] = []

    async def provider(request: httpx.Request) -> httpx.Response:
        if str(request.url).startswith(HEALTHY):
            polled.append(loop.time() - start)
            changed = loop.time() - start >= CHANGE_AT
            stage = "FAILED" if changed else "READY"
            return httpx.Response(200, json={"data": {"stage": stage}})
        if loop.time() - start < stall_from:
            return httpx.Response(200, json={"data": {"stage": "READY"}})
        await asyncio.sleep(3600)  # a trickling host: nothing in time
        raise AssertionError("unreachable: the request deadline ends this")

    writer = TimedWriter()
    random.seed(21)  # the same jitter draws every run
    clock = VirtualClock()
    accounts = AccountPool(transport=httpx.MockTransport(provider), clock=clock)
    scheduler = Scheduler(writer, SecretCache(), accounts, SchedulerSettings(), clock=clock)
    # The hostile endpoints poll as often as allowed (5 s) and come first; the healthy one
    # polls every 30 s.
    for i, url in enumerate(slow_urls):
        scheduler.upsert(body(f"slow-{i}", {"pollInterval": "5s", "nsModelServer": {"url": url}}))
    scheduler.upsert(body("healthy", {"pollInterval": "30s", "nsModelServer": {"url": HEALTHY}}))
    task = asyncio.create_task(scheduler.run())
    try:
        await asyncio.sleep(CHANGE_AT + 4 * INTERVAL)
    finally:
        task.cancel()
        await scheduler.stop()
        await accounts.aclose()
    shown = [
        at
        for at, name, patch in writer.patches
        if name == "healthy" and patch.get("phase") == "Failed"
    ]
    assert shown, "the healthy endpoint's change never showed"
    return shown[0] - (start + CHANGE_AT), polled


def check(delay: float, polled: list[float]) -> None:
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(polled)]
    print(f"change shown after {delay:.1f} s; first poll at {polled[0]:.1f} s, then every {gaps}")
    assert delay <= 2 * INTERVAL, delay
    # Once it has been polled, the hostile polls never hold it up: only jitter (shorter) moves
    # its polls. Sharing the provider's slots with them, it waited 15 s (a deadline) each time.
    assert max(gaps) <= INTERVAL + 1.0, gaps


async def test_80_endpoints_on_one_stalling_host_do_not_delay_a_healthy_change() -> None:
    check(*await healthy_endpoint([f"http://tarpit.test:8080/m{i}" for i in range(80)]))


async def test_80_stalling_hosts_of_the_same_provider_do_not_delay_a_healthy_change() -> None:
    check(*await healthy_endpoint([f"http://tarpit-{i}.test:8080" for i in range(80)]))


async def test_a_host_that_stalls_after_answering_quickly_is_bounded_too() -> None:
    # Known hosts are bounded only by their provider's share until their first slow request
    # ends: one deadline's worth of delay, once per slow memory (5 minutes).
    delay, polled = await healthy_endpoint(
        [f"http://tarpit.test:8080/m{i}" for i in range(80)], stall_from=100.0
    )
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(polled)]
    print(f"change shown after {delay:.1f} s; polled every {gaps}")
    assert delay <= 2 * INTERVAL, delay
    assert max(gaps) <= INTERVAL + 15.0 + 1.0, gaps
