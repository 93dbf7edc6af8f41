"""Ready never lies (issue 14): a provider's Retry-After cannot freeze a status, staleness is a
deadline of its own, a fixed Secret re-polls every endpoint using it, and the messages say the
real reason."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool
from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import RECONCILE_ANNOTATION, Scheduler, SchedulerSettings
from inferenceops.status import condition

from .test_scheduler import NS_SPEC, FakeWriter, Provider, body, ns_ready

RUNPOD_SPEC = {
    "pollInterval": "30s",
    "runpod": {
        "endpointId": "abc123",
        "url": "https://runpod.test/v2",
        "credentialsSecretRef": {"name": "creds", "key": "token"},
    },
}


class FakeClock:
    """Monotonic and wall clock that move only when told (and the scheduler is woken)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def mono(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.now - 1000.0)


def ready(writer: FakeWriter, name: str, scheduler: Scheduler) -> dict[str, Any]:
    cond = condition(scheduler.status_of("ml", name), "Ready")
    assert cond is not None
    return dict(cond)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def harness(
    clock: FakeClock,
) -> AsyncIterator[tuple[Scheduler, FakeWriter, Provider, SecretCache, AccountPool]]:
    provider = Provider(ns_ready)
    writer = FakeWriter()
    secrets = SecretCache()
    accounts = AccountPool(transport=httpx.MockTransport(provider))
    sched = Scheduler(
        writer, secrets, accounts, SchedulerSettings(), clock=clock.mono, wallclock=clock.wall
    )
    task = asyncio.create_task(sched.run())
    yield sched, writer, provider, secrets, accounts
    task.cancel()
    await sched.drain()
    await accounts.aclose()


async def advance(clock: FakeClock, scheduler: Scheduler, seconds: float) -> None:
    clock.now += seconds
    scheduler.wake()
    await asyncio.sleep(0.05)
    await scheduler.drain()
    await asyncio.sleep(0.01)


async def test_ready_turns_unknown_when_polls_stop_succeeding_whatever_holds_them(
    harness: Any, clock: FakeClock
) -> None:
    scheduler, writer, provider, _, _ = harness
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    assert ready(writer, "a", scheduler)["status"] == "True"
    # The provider stops answering and the request never returns: no poll fails, so only a
    # deadline of its own can say the status is old.
    hang = asyncio.Event()

    async def hanging(request: httpx.Request) -> httpx.Response:
        await hang.wait()
        return ns_ready(request)

    provider.handler = hanging  # type: ignore[assignment]  # MockTransport awaits it
    clock.now += 30
    scheduler.wake()
    await asyncio.sleep(0.1)  # the next poll is now in flight, and stays there
    clock.now += 61
    scheduler.wake()
    for _ in range(50):
        await asyncio.sleep(0.02)
        if ready(writer, "a", scheduler)["status"] == "Unknown":
            break
    cond = ready(writer, "a", scheduler)
    assert cond["status"] == "Unknown" and cond["reason"] == "ObservationStale", cond
    assert "polls are delayed" in cond["message"] and "Running" in cond["message"]
    hang.set()


async def test_an_unbounded_retry_after_neither_freezes_ready_nor_holds_poll_slots(
    harness: Any, clock: FakeClock
) -> None:
    scheduler, writer, provider, _, _ = harness
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    provider.handler = lambda r: httpx.Response(429, headers={"Retry-After": "inf"})
    await advance(clock, scheduler, 30)
    synced = condition(scheduler.status_of("ml", "a"), "Synced")
    assert synced is not None and synced["reason"] == "RateLimited"
    assert "300s" in synced["message"] and "inf" not in synced["message"], synced
    requests = len(provider.requests)
    # A reconcile request while the account is paused is answered (handled, with when polling
    # resumes) without a request and without waiting in a poll slot.
    scheduler.upsert(body("a", NS_SPEC, annotations={RECONCILE_ANNOTATION: "r1"}))
    await asyncio.sleep(0.1)
    await scheduler.drain()
    status = scheduler.status_of("ml", "a")
    assert status is not None and status.get("lastHandledReconcileAt") == "r1"
    synced = condition(status, "Synced")
    assert synced is not None and "resumes at" in synced["message"], synced
    assert len(provider.requests) == requests
    assert scheduler._gate._value == scheduler.settings.max_concurrent_polls
    # Three intervals after the last success Ready says the status is stale, pause or not.
    await advance(clock, scheduler, 61)
    cond = ready(writer, "a", scheduler)
    assert cond["status"] == "Unknown" and cond["reason"] == "ObservationStale"
    assert "RateLimited" in cond["message"], "the real reason is in the message"


async def test_a_fixed_secret_re_polls_every_endpoint_that_uses_it(
    harness: Any, clock: FakeClock
) -> None:
    scheduler, writer, provider, secrets, _ = harness
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
    secrets.put("ml", "creds", {"token": base64.b64encode(b"rp_old_token_00000000").decode()})
    scheduler.upsert(body("a", RUNPOD_SPEC))
    secrets.bind(no_fetch, scheduler.secret_changed)  # as the operator's start-up does
    await advance(clock, scheduler, 1)  # RunPod lists: arrivals wait a moment for each other
    await writer.wait_for(1)
    synced = condition(scheduler.status_of("ml", "a"), "Synced")
    assert synced is not None and synced["reason"] == "Unauthorized"
    secrets.put("ml", "creds", {"token": base64.b64encode(good.encode()).decode()})
    await advance(clock, scheduler, 1)
    synced = condition(scheduler.status_of("ml", "a"), "Synced")
    assert synced is not None and synced["status"] == "True", "polled at once, not 30 s later"


async def test_a_missing_secret_is_the_ready_message_not_operator_start(
    harness: Any, clock: FakeClock
) -> None:
    scheduler, writer, _, _, _ = harness
    scheduler.upsert(body("a", RUNPOD_SPEC))
    await advance(clock, scheduler, 1)
    await writer.wait_for(1)
    cond = ready(writer, "a", scheduler)
    assert cond["status"] == "Unknown"
    assert "Secret ml/creds not found" in cond["message"], cond
    await advance(clock, scheduler, 95)  # past three intervals: still the real reason
    cond = ready(writer, "a", scheduler)
    assert cond["message"] == "no successful poll yet: SecretMissing: Secret ml/creds not found"


async def test_each_transition_is_one_info_line(
    harness: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler, writer, provider, _, _ = harness
    caplog.set_level(logging.INFO, logger="inferenceops")
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    provider.handler = lambda r: httpx.Response(503, text="down")
    await advance(clock, scheduler, 30)
    await advance(clock, scheduler, 2)
    lines = [r.getMessage() for r in caplog.records if r.name == "inferenceops.poller"]
    assert len(lines) == 1 and "ml/a: Unreachable" in lines[0], lines


async def test_steady_successes_keep_ready_true_past_the_first_deadline(
    harness: Any, clock: FakeClock
) -> None:
    """The first deadline (three intervals after the first success) finds later successes and
    moves on instead of marking the status stale."""
    scheduler, writer, provider, _, _ = harness
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    for _ in range(5):  # 150 s of successful polls, past the 90 s of the first deadline
        await advance(clock, scheduler, 30)
    assert len(provider.requests) >= 5
    assert ready(writer, "a", scheduler)["status"] == "True"
    assert ("ml", "a") in scheduler._deadlines, "the deadline was moved, not dropped"


def ns_loading(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": {"stage": "LOADING_MODEL", "progress": 40}})


@pytest.mark.parametrize(("answer", "interval"), [(ns_loading, 10.0), (ns_ready, 30.0)])
async def test_a_poll_that_changes_nothing_keeps_its_phase_interval_and_jitter(
    harness: Any, clock: FakeClock, answer: Any, interval: float
) -> None:
    """An unchanged answer skips the status computation, not the timing policy: a Provisioning
    endpoint is polled every third of its interval however often it says the same, and every
    delay is shortened by the jitter, so a change shows within one interval."""
    scheduler, writer, provider, _, _ = harness
    provider.handler = answer
    scheduler.upsert(body("a", NS_SPEC))  # pollInterval 30s
    await writer.wait_for(1)
    delays = []
    for _ in range(3):  # each of these polls finds what the status already says
        due = scheduler._polls.due_at(("ml", "a"))
        assert due is not None
        clock.now = due
        before = len(provider.requests)
        await advance(clock, scheduler, 0.0)
        assert len(provider.requests) == before + 1
        next_due = scheduler._polls.due_at(("ml", "a"))
        assert next_due is not None
        delays.append(next_due - clock.now)
    assert all(0.9 * interval - 0.01 <= d <= interval + 0.01 for d in delays), delays
    assert min(delays) < interval - 0.001, f"no jitter: {delays}"
    assert len(writer.patches) == 1, "the same answer is not written again"
