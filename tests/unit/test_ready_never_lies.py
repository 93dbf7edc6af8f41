"""Ready never lies (issue 14): a provider's Retry-After cannot freeze a status, staleness is a
deadline of its own, a fixed Secret re-polls every endpoint using it, and the messages say the
real reason. On virtual time: "three intervals later" is exact."""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountSettings
from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import RECONCILE_ANNOTATION, Scheduler, SchedulerSettings
from inferenceops.status import condition

from .support import (
    NS_SPEC,
    FakeWriter,
    Provider,
    VirtualClock,
    Wiring,
    body,
    ns_ready,
    scheduling,
)

RUNPOD_SPEC = {
    "pollInterval": "30s",
    "runpod": {
        "endpointId": "abc123",
        "url": "https://runpod.test/v2",
        "credentialsSecretRef": {"name": "creds", "key": "token"},
    },
}
#: No request deadline within these tests: a request that hangs hangs, and fails no poll.
NO_DEADLINE = AccountSettings(request_deadline=86400.0)


def ready(scheduler: Scheduler, name: str) -> dict[str, Any]:
    cond = condition(scheduler.status_of("ml", name), "Ready")
    assert cond is not None
    return dict(cond)


@pytest.fixture
async def harness(
    provider: Provider, writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> AsyncIterator[Scheduler]:
    settings = SchedulerSettings(max_concurrent_polls=1)
    async with scheduling(
        provider, writer, secrets, settings, clock=clock, account_settings=NO_DEADLINE
    ) as sched:
        yield sched


def hanging(provider: Provider) -> asyncio.Event:
    """From now on the provider answers nothing until the returned event is set."""
    hang = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await hang.wait()
        return ns_ready(request)

    provider.handler = handler  # type: ignore[assignment]  # MockTransport awaits it
    return hang


async def test_ready_turns_unknown_when_polls_stop_succeeding_whatever_holds_them(
    harness: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    scheduler = harness
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    assert ready(scheduler, "a")["status"] == "True"
    # The provider stops answering and the request never returns: no poll fails, so only a
    # deadline of its own can say the status is old.
    hang = hanging(provider)
    await asyncio.sleep(30)
    assert len(provider.requests) == 2, "the next poll is in flight, and stays there"
    await asyncio.sleep(59)
    assert ready(scheduler, "a")["status"] == "True", "not stale before three intervals"
    await asyncio.sleep(1 + scheduler.settings.timer_slack)
    cond = ready(scheduler, "a")
    assert cond["status"] == "Unknown" and cond["reason"] == "ObservationStale", cond
    assert "polls are delayed" in cond["message"] and "Running" in cond["message"]
    hang.set()


async def test_an_unbounded_retry_after_neither_freezes_ready_nor_holds_poll_slots(
    harness: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    scheduler = harness
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    provider.handler = lambda r: httpx.Response(429, headers={"Retry-After": "inf"})
    await asyncio.sleep(30)
    synced = condition(scheduler.status_of("ml", "a"), "Synced")
    assert synced is not None and synced["reason"] == "RateLimited"
    assert "300s" in synced["message"] and "inf" not in synced["message"], synced
    requests = len(provider.requests)
    # A reconcile request while the account is paused is answered at once (handled, with when
    # polling resumes) without a request...
    scheduler.upsert(body("a", NS_SPEC, annotations={RECONCILE_ANNOTATION: "r1"}))
    await asyncio.sleep(0.1)
    status = scheduler.status_of("ml", "a")
    assert status is not None and status.get("lastHandledReconcileAt") == "r1"
    synced = condition(status, "Synced")
    assert synced is not None and "resumes at" in synced["message"], synced
    assert len(provider.requests) == requests
    # ...and without waiting in a poll slot: another host's endpoint is polled at once through
    # the only one there is (max_concurrent_polls=1).
    provider.handler = ns_ready
    scheduler.upsert(body("b", {**NS_SPEC, "nsModelServer": {"url": "http://other.test:8080"}}))
    await asyncio.sleep(0.1)
    assert (scheduler.status_of("ml", "b") or {}).get("phase") == "Running"
    # Three intervals after the last success Ready says the status is stale, pause or not.
    await asyncio.sleep(61)
    cond = ready(scheduler, "a")
    assert cond["status"] == "Unknown" and cond["reason"] == "ObservationStale"
    assert "RateLimited" in cond["message"], "the real reason is in the message"


async def test_a_fixed_secret_re_polls_every_endpoint_that_uses_it(
    writer: FakeWriter, provider: Provider, clock: VirtualClock
) -> None:
    good = "rp_good_token_0123456789"

    def runpod(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != f"Bearer {good}":
            return httpx.Response(401, json={"error": "unauthorized"})
        if request.url.path.endswith("/workers"):
            return httpx.Response(200, json={"workers": []})
        return httpx.Response(
            200, json={"id": "abc123", "name": "x", "workersMin": 0, "workersMax": 2}
        )

    async def no_fetch(namespace: str, name: str) -> None:
        return None

    provider.handler = runpod
    # As the operator's: the cache tells the scheduler when a wanted Secret changes.
    wiring = Wiring()
    secrets = SecretCache(no_fetch, wiring.secret_changed)
    settings = SchedulerSettings(max_concurrent_polls=1)
    async with scheduling(
        provider,
        writer,
        secrets,
        settings,
        clock=clock,
        account_settings=NO_DEADLINE,
        wiring=wiring,
    ) as scheduler:
        scheduler.upsert(body("a", RUNPOD_SPEC))
        old = base64.b64encode(b"rp_old_token_00000000").decode()
        secrets.put("ml", "creds", {"token": old})
        await asyncio.sleep(1)  # RunPod lists: arrivals wait a moment for each other
        await writer.wait_for(1)
        synced = condition(scheduler.status_of("ml", "a"), "Synced")
        assert synced is not None and synced["reason"] == "Unauthorized"
        secrets.put("ml", "creds", {"token": base64.b64encode(good.encode()).decode()})
        await asyncio.sleep(1)
        synced = condition(scheduler.status_of("ml", "a"), "Synced")
        assert synced is not None and synced["status"] == "True", "polled at once, not 30 s later"


async def test_a_missing_secret_is_the_ready_message_not_operator_start(
    harness: Scheduler, writer: FakeWriter
) -> None:
    scheduler = harness
    scheduler.upsert(body("a", RUNPOD_SPEC))
    await asyncio.sleep(1)
    await writer.wait_for(1)
    cond = ready(scheduler, "a")
    assert cond["status"] == "Unknown"
    assert "Secret ml/creds not found" in cond["message"], cond
    await asyncio.sleep(125)  # a poll past three intervals: still the real reason
    cond = ready(scheduler, "a")
    assert cond["message"] == "no successful poll yet: SecretMissing: Secret ml/creds not found"


async def test_each_transition_is_one_info_line(
    harness: Scheduler, writer: FakeWriter, provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = harness
    caplog.set_level(logging.INFO, logger="inferenceops")
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    provider.handler = lambda r: httpx.Response(503, text="down")
    await asyncio.sleep(40)  # the next poll and a few retries fail alike
    assert len(provider.requests) >= 4
    lines = [r.getMessage() for r in caplog.records if r.name == "inferenceops.poller"]
    assert len(lines) == 1 and "ml/a: Unreachable" in lines[0], lines


async def test_steady_successes_keep_ready_true_past_the_first_deadline(
    harness: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    """The first deadline (three intervals after the first success) finds later successes and
    moves on instead of marking the status stale, and stays: when polls stop succeeding, Ready
    still turns Unknown three intervals after the last success."""
    scheduler = harness
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    await asyncio.sleep(150)  # 150 s of successful polls, past the 90 s of the first deadline
    assert len(provider.requests) >= 6
    assert ready(scheduler, "a")["status"] == "True"
    last_success = provider.times[-1]
    hang = hanging(provider)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(last_success + 89 - loop.time())
    assert ready(scheduler, "a")["status"] == "True"
    await asyncio.sleep(1 + scheduler.settings.timer_slack)
    assert ready(scheduler, "a")["reason"] == "ObservationStale", "the deadline was kept"
    hang.set()


def ns_loading(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": {"stage": "LOADING_MODEL", "progress": 40}})


@pytest.mark.parametrize(("answer", "interval"), [(ns_loading, 10.0), (ns_ready, 30.0)])
async def test_a_poll_that_changes_nothing_keeps_its_phase_interval_and_jitter(
    harness: Scheduler, writer: FakeWriter, provider: Provider, answer: Any, interval: float
) -> None:
    """An unchanged answer skips the status computation, not the timing policy: a Provisioning
    endpoint is polled every third of its interval however often it says the same, and every
    delay is shortened by the jitter, so a change shows within one interval."""
    scheduler = harness
    provider.handler = answer
    scheduler.upsert(body("a", NS_SPEC))  # pollInterval 30s
    await writer.wait_for(1)
    await asyncio.sleep(3 * interval + 1)  # three polls finding what the status says
    gaps = [b - a for a, b in itertools.pairwise(provider.times)]
    assert len(gaps) >= 3, gaps
    assert all(0.9 * interval - 1e-6 <= gap <= interval + 1e-6 for gap in gaps), gaps
    assert min(gaps) < interval - 0.001, f"no jitter: {gaps}"
    assert len(writer.patches) == 1, "the same answer is not written again"
