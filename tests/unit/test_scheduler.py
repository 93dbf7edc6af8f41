"""The scheduler end to end with an in-memory writer and a mock provider transport, on virtual
time (tests/unit/conftest.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool
from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import RECONCILE_ANNOTATION, Scheduler, SchedulerSettings
from inferenceops.status import condition
from inferenceops.timing import PollPolicy

from .support import (
    NS_SPEC,
    TOKEN,
    FakeWriter,
    Provider,
    VirtualClock,
    body,
    dataarts_listing,
    dataarts_spec,
    friendli_running,
    friendli_spec,
    ns_ready,
    scheduling,
    token,
)


async def test_new_resource_is_polled_at_once_and_written_once(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    name, patch = writer.patches[0]
    assert name == "a" and patch["phase"] == "Running" and patch["provider"] == "nsModelServer"
    assert writer.events == [], "the first observation of a healthy endpoint is no Event"
    # A reconcile request polls again at once; nothing changed, so nothing is written but
    # the handled token.
    scheduler.upsert(body("a", NS_SPEC, annotations={RECONCILE_ANNOTATION: "now"}))
    await writer.wait_for(2)
    assert writer.patches[1][1] == {"lastHandledReconcileAt": "now"}
    assert len(provider.requests) == 2
    # The same annotation value again is not a new request (the next poll is 27-30 s away).
    scheduler.upsert(body("a", NS_SPEC, annotations={RECONCILE_ANNOTATION: "now"}))
    await asyncio.sleep(20)
    assert len(provider.requests) == 2 and len(writer.patches) == 2


async def test_invalid_spec_reported_without_polling(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    scheduler.upsert(body("bad", {"pollInterval": "30s"}))
    await writer.wait_for(1)
    patch = writer.patches[0][1]
    synced = condition(patch, "Synced")
    assert synced and synced["reason"] == "InvalidSpec"
    assert "exactly one provider block" in synced["message"]
    assert provider.requests == []
    # Fixing the spec (new generation) polls at once.
    scheduler.upsert(body("bad", NS_SPEC, generation=2))
    await writer.wait_for(2)
    assert writer.patches[1][1]["phase"] == "Running"
    assert writer.patches[1][1]["observedGeneration"] == 2


async def test_secret_missing_then_created(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    provider.handler = friendli_running
    scheduler.upsert(body("f", friendli_spec()))
    await writer.wait_for(1)
    synced = condition(writer.patches[0][1], "Synced")
    assert synced and synced["reason"] == "SecretMissing"
    assert provider.requests == []
    secrets.put("ml", "creds", token())
    scheduler.secret_changed("ml", "creds")
    await writer.wait_for(2)
    patch = writer.patches[1][1]
    assert patch["phase"] == "Running" and patch["workers"] == {
        "ready": 1,
        "total": 1,
        "min": 0,
        "max": 2,
    }
    assert [e.reason for _, e in writer.events][-2:] == ["PhaseRunning", "Synced"]


async def test_credential_never_in_status(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=f"internal error for {request.headers['authorization']}")

    provider.handler = echo
    secrets.put("ml", "creds", token())
    scheduler.upsert(body("f", friendli_spec()))
    await writer.wait_for(1)
    text = repr(writer.patches) + repr(writer.events)
    assert TOKEN not in text
    assert "***" in text


async def test_failure_keeps_last_phase_and_backs_off(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    provider.handler = lambda r: httpx.Response(503, text="down")
    scheduler.upsert(body("a", NS_SPEC, annotations={RECONCILE_ANNOTATION: "1"}))
    await writer.wait_for(2)
    patch = writer.patches[1][1]
    assert "phase" not in patch, "the last known phase is kept"
    synced = next(c for c in patch["conditions"] if c["type"] == "Synced")
    assert synced["status"] == "False" and synced["reason"] == "Unreachable"
    # The first retry comes after the backoff base (2 s, shortened by up to 10 % jitter), not
    # in a tight loop.
    await asyncio.sleep(1.7)
    assert len(provider.requests) == 2
    await asyncio.sleep(0.3 + scheduler.settings.timer_slack)
    assert len(provider.requests) == 3


async def test_deleted_resource_stops_polling(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    scheduler.forget("ml", "a")
    assert len(scheduler) == 0
    scheduler.upsert(body("b", NS_SPEC))  # wakes the loop; "a" must not be polled again
    await writer.wait_for(2)
    assert [r.url.host for r in provider.requests] == ["ns.test", "ns.test"]
    assert [name for name, _ in writer.patches] == ["a", "b"]


async def test_resume_spreads_polls_of_resources_with_status(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    status = {"phase": "Running", "observedGeneration": 1, "lastPollTime": "2026-11-23T12:00:00Z"}
    for i in range(20):
        scheduler.upsert(body(f"r{i}", NS_SPEC, status=status), initial=True)
    scheduler.upsert(body("new", NS_SPEC), initial=True)
    await writer.wait_for(1)
    await asyncio.sleep(0.2)
    # Only the never-polled resource goes at once; the others are spread over 30 s.
    assert len(provider.requests) <= 3


async def test_a_coalesced_workspace_costs_one_listing_per_cycle(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    provider.handler = dataarts_listing(50)
    secrets.put("ml", "creds", token())
    for i in range(50):
        scheduler.upsert(body(f"d{i}", dataarts_spec(i)))
    await writer.wait_for(50)
    await asyncio.sleep(0.5)
    # One page of 100 answers all 50; nobody is polled again before the interval.
    assert len(provider.requests) == 1
    assert len(writer.patches) == 50
    assert {p["phase"] for _, p in writer.patches} == {"Running"}


async def test_accounts_have_own_pools_but_share_one_ssl_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One SSL context per account held a CA bundle each (1.8 GB at 10,000 self-hosted
    # endpoints); one pool for all made httpcore scan hundreds of connections per request.
    contexts: list[object] = []
    pools: list[dict[str, Any]] = []
    create_ssl_context = httpx.create_ssl_context
    transport = httpx.AsyncHTTPTransport

    def counting_context(*args: Any, **kwargs: Any) -> Any:
        contexts.append(create_ssl_context(*args, **kwargs))
        return contexts[-1]

    def recording_transport(*args: Any, **kwargs: Any) -> httpx.AsyncHTTPTransport:
        pools.append(kwargs)
        return transport(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting_context)
    monkeypatch.setattr(httpx, "AsyncHTTPTransport", recording_transport)
    pool = AccountPool()
    try:
        for i in range(3):
            pool.get("nsModelServer", ("nsModelServer", f"http://ns{i}.test"))
        assert len(pools) == 3, "a connection pool per account"
        assert len(contexts) == 1, "one SSL context for all"
        assert {p["verify"] is contexts[0] for p in pools} == {True}
        assert {p["limits"].max_connections for p in pools} == {16}
    finally:
        await pool.aclose()


async def test_restart_then_one_failure_is_not_stale(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider
) -> None:
    # Written hours ago, never refreshed since (nothing changed): the first poll of this process
    # fails. Ready must stay as it was; staleness counts from when this process started watching.
    status = {
        "phase": "Running",
        "observedGeneration": 1,
        "lastPollTime": "2020-01-01T00:00:00Z",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Running",
                "message": "endpoint is Running",
                "lastTransitionTime": "2020-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }
    provider.handler = lambda r: httpx.Response(503, text="down")
    scheduler.upsert(
        body("old", NS_SPEC, status=status, annotations={RECONCILE_ANNOTATION: "x"}), initial=True
    )
    await writer.wait_for(1)
    patch = writer.patches[0][1]
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"


async def test_steady_polls_skip_status_computation_but_not_changes(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferenceops import status as st

    calls = 0
    real = st.after_observation

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(st, "after_observation", counting)
    scheduler.upsert(body("a", NS_SPEC))
    await writer.wait_for(1)
    assert calls == 1
    await asyncio.sleep(150)  # five more polls, each with the same answer
    assert len(provider.requests) >= 6
    assert calls == 1, "the same answer for the same spec is not recomputed"
    assert len(writer.patches) == 1
    provider.handler = lambda r: httpx.Response(200, json={"data": {"stage": "LOADING_MODEL"}})
    await asyncio.sleep(31)
    assert calls == 2 and writer.patches[-1][1]["phase"] == "Provisioning"
    provider.handler = ns_ready
    await asyncio.sleep(11)  # a Provisioning endpoint is polled every third of its interval
    assert calls == 3 and writer.patches[-1][1]["phase"] == "Running"


async def test_a_batch_stays_due_together_when_its_writes_are_slow(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    lock = asyncio.Lock()

    async def one_at_a_time() -> None:
        async with lock:
            await asyncio.sleep(0.5)  # 40 writes take 20 s, beyond the coalescing horizon

    writer.delay = one_at_a_time
    provider.handler = dataarts_listing(40)
    secrets.put("ml", "creds", token())
    for i in range(40):
        scheduler.upsert(body(f"d{i}", dataarts_spec(i)))
    await writer.wait_for(40, within=30)
    assert len(provider.requests) == 1
    first = provider.times[0]
    # Members due one by one as their writes ended would need a second listing for those due
    # beyond the first's coalescing horizon (15 s), before the third cycle could start (54 s).
    await asyncio.sleep(first + 52 - asyncio.get_running_loop().time())
    # One batch, one next poll time: the next cycle is one listing again.
    assert len(provider.requests) == 2
    assert 27 <= provider.times[1] - first <= 30 + scheduler.settings.timer_slack


async def test_resources_arriving_one_by_one_share_one_listing(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    # kopf hands over a start-up listing (or a GitOps sync) one object at a time, with the event
    # loop running in between; each arrival must not start its own workspace listing.
    provider.handler = dataarts_listing(30)
    secrets.put("ml", "creds", token())
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(30):
        scheduler.upsert(body(f"d{i}", dataarts_spec(i)))
        await asyncio.sleep(0.05)  # 1.5 s of arrivals, each gap far below arrival_quiet
    await writer.wait_for(30)
    assert len(provider.requests) == 1
    # A lone edit afterwards is polled within arrival_quiet, not after a long settle.
    edited = dataarts_spec(0)
    edited["pollInterval"] = "40s"
    edited_at = loop.time()
    scheduler.upsert(body("d0", edited, generation=2))
    await writer.wait_for(31)
    waited = loop.time() - edited_at
    assert scheduler.settings.arrival_quiet <= waited < scheduler.settings.arrival_quiet + 1.0
    assert len(provider.requests) == 2
    assert loop.time() - start < scheduler.settings.arrival_max_wait + 5


async def test_a_steady_stream_of_arrivals_waits_at_most_arrival_max_wait(
    provider: Provider, writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> None:
    provider.handler = dataarts_listing(100)
    secrets.put("ml", "creds", token())
    settings = SchedulerSettings(arrival_quiet=0.3, arrival_max_wait=0.6)
    async with scheduling(provider, writer, secrets, settings, clock=clock) as sched:
        start = clock.monotonic()
        for i in range(20):
            sched.upsert(body(f"d{i}", dataarts_spec(i)))
            await asyncio.sleep(0.1)
            if writer.patches:
                break
        await writer.wait_for(1)
        assert clock.monotonic() - start < 0.6 + 0.3, "never starved by a steady stream"


async def test_watch_events_add_and_forget(scheduler: Scheduler, writer: FakeWriter) -> None:
    # kube.informer's events: None for a listed object, DELETED with only the name left.
    scheduler.observe(None, body("a", NS_SPEC))
    scheduler.observe("ADDED", body("b", NS_SPEC))
    await writer.wait_for(2)
    assert len(scheduler) == 2
    scheduler.observe("DELETED", {"metadata": {"namespace": "ml", "name": "a"}})
    assert len(scheduler) == 1 and scheduler.status_of("ml", "a") is None


@pytest.mark.parametrize("slack", [0.0, 0.5])
async def test_polls_falling_due_within_the_timer_slack_start_together(
    provider: Provider, writer: FakeWriter, secrets: SecretCache, clock: VirtualClock, slack: float
) -> None:
    """Per-endpoint polls spread over the interval each woke the event loop on their own; at
    10,000 that cost more CPU than the requests (docs/performance.md). Within the timer slack
    they start in one wake-up, a little late, never early."""
    # No jitter: each endpoint's next poll is due exactly one interval after its first.
    settings = SchedulerSettings(timer_slack=slack, policy=PollPolicy(jitter=0.0))
    names = [f"s{i}" for i in range(5)]
    async with scheduling(provider, writer, secrets, settings, clock=clock) as sched:
        for name in names:  # first polled 50 ms apart: each new resource is polled at once
            spec = {"pollInterval": "30s", "nsModelServer": {"url": f"http://{name}.test:8080"}}
            sched.upsert(body(name, spec))
            await asyncio.sleep(0.05)
        await writer.wait_for(len(names))
        await asyncio.sleep(31)
    assert len(provider.requests) == 2 * len(names)
    first = {r.url.host: t for r, t in zip(provider.requests[:5], provider.times[:5], strict=True)}
    second = {r.url.host: t for r, t in zip(provider.requests[5:], provider.times[5:], strict=True)}
    due = {host: at + 30.0 for host, at in first.items()}
    assert all(second[host] >= due[host] - 1e-6 for host in due), "a poll never starts early"
    if slack:
        # s0 wakes the loop when due; the other four fall due within the slack after it and
        # start together at its end.
        assert sorted(set(second.values())) == pytest.approx(
            [due["s0.test"], due["s0.test"] + slack]
        )
    else:
        assert sorted(second.values()) == pytest.approx(sorted(due.values())), "each when due"


class _Held:
    """A provider whose first answer (a server error) waits until released: a poll held in
    flight; every later answer is Ready."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.url.host)
        if len(self.hosts) == 1:
            await self.release.wait()
            return httpx.Response(500)
        return ns_ready(request)


async def test_a_spec_edited_during_its_poll_drops_that_answer_and_polls_once_more(
    writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> None:
    held = _Held()
    async with scheduling(held, writer, secrets, clock=clock) as sched:
        sched.upsert(body("a", NS_SPEC))
        await asyncio.sleep(1)
        assert held.hosts == ["ns.test"]
        edited = {"pollInterval": "30s", "nsModelServer": {"url": "http://ns2.test:8080"}}
        sched.upsert(body("a", edited, generation=2))
        sched.upsert(body("a", edited, generation=2, annotations={RECONCILE_ANNOTATION: "x"}))
        await asyncio.sleep(1)
        assert held.hosts == ["ns.test"], "not polled twice at once"
        held.release.set()
        await writer.wait_for(1)
        await asyncio.sleep(5)
        assert held.hosts == ["ns.test", "ns2.test"], "polled once more, not once per change"
        assert len(writer.patches) == 1, "the answer for the old spec is not written"
        assert writer.patches[0][1]["observedGeneration"] == 2
        assert writer.patches[0][1]["phase"] == "Running"


async def test_an_endpoint_deleted_and_created_again_during_a_poll_is_polled_after_it(
    writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> None:
    held = _Held()
    async with scheduling(held, writer, secrets, clock=clock) as sched:
        sched.upsert(body("a", NS_SPEC))
        await asyncio.sleep(1)
        sched.forget("ml", "a")
        sched.upsert(body("a", NS_SPEC, uid="uid-a2"))
        held.release.set()
        await writer.wait_for(1)
        await asyncio.sleep(5)
        assert held.hosts == ["ns.test", "ns.test"]
        assert [name for name, _ in writer.patches] == ["a"], "only the new object's status"
        assert sched.status_of("ml", "a") is not None
