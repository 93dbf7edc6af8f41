"""The scheduler end to end with an in-memory writer and a mock provider transport."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool
from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import RECONCILE_ANNOTATION, Scheduler, SchedulerSettings, shard_of
from inferenceops.status import EventSpec, condition

TOKEN = "flp_scheduler_test_token_123456"


@dataclass
class FakeWriter:
    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, EventSpec]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def patch_status(self, ref: Any, patch: Any) -> bool:
        if ref.name in self.gone:
            return False
        self.patches.append((ref.name, dict(patch)))
        self.changed.set()
        return True

    async def emit(self, ref: Any, event: EventSpec) -> None:
        self.events.append((ref.name, event))

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        async def _wait() -> None:
            while len(self.patches) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(_wait(), within)


@dataclass
class Provider:
    """A scriptable provider behind httpx.MockTransport, counting requests by path."""

    handler: Callable[[httpx.Request], httpx.Response]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


def ns_ready(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": {"stage": "READY", "progress": 100}})


def body(
    name: str,
    spec: dict[str, Any],
    *,
    generation: int = 1,
    uid: str | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "namespace": "ml",
        "name": name,
        "uid": uid or f"uid-{name}",
        "generation": generation,
    }
    if annotations:
        meta["annotations"] = annotations
    out: dict[str, Any] = {"metadata": meta, "spec": spec}
    if status:
        out["status"] = status
    return out


NS_SPEC = {"pollInterval": "30s", "nsModelServer": {"url": "http://ns.test:8080"}}


@pytest.fixture
def provider() -> Provider:
    return Provider(ns_ready)


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def secrets() -> SecretCache:
    return SecretCache()


@pytest.fixture
async def scheduler(
    provider: Provider, writer: FakeWriter, secrets: SecretCache
) -> AsyncIterator[Scheduler]:
    accounts = AccountPool(transport=httpx.MockTransport(provider))
    sched = Scheduler(writer, secrets, accounts, SchedulerSettings())
    task = asyncio.create_task(sched.run())
    yield sched
    task.cancel()
    await sched.drain()
    await accounts.aclose()


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
    # The same annotation value again is not a new request.
    scheduler.upsert(body("a", NS_SPEC, annotations={RECONCILE_ANNOTATION: "now"}))
    await asyncio.sleep(0.2)
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


def friendli_spec(endpoint: str = "ep1") -> dict[str, Any]:
    return {
        "friendli": {
            "endpointId": endpoint,
            "url": "https://friendli.test",
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        }
    }


def friendli_running(request: httpx.Request) -> httpx.Response:
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return httpx.Response(401, json={"detail": "bad token"})
    if request.url.path.endswith("/status"):
        return httpx.Response(200, json={"status": "RUNNING", "createdAt": "2026-01-01T00:00:00Z"})
    return httpx.Response(
        200,
        json={
            "id": "ep1",
            "currReplicaCnt": 1,
            "desiredReplicaCnt": 1,
            "autoscalingMin": 0,
            "autoscalingMax": 2,
        },
    )


async def test_secret_missing_then_created(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    provider.handler = friendli_running
    scheduler.upsert(body("f", friendli_spec()))
    await writer.wait_for(1)
    synced = condition(writer.patches[0][1], "Synced")
    assert synced and synced["reason"] == "SecretMissing"
    assert provider.requests == []
    secrets.put("ml", "creds", {"token": base64.b64encode(TOKEN.encode()).decode()})
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
    secrets.put("ml", "creds", {"token": base64.b64encode(TOKEN.encode()).decode()})
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
    # The first retry comes after the backoff base (2 s ± jitter), not in a tight loop.
    await asyncio.sleep(1.0)
    assert len(provider.requests) == 2


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


def test_shards_partition_resources() -> None:
    names = [f"ep-{i}" for i in range(1000)]
    shards = [shard_of("ml", n, 3) for n in names]
    assert set(shards) == {0, 1, 2}
    assert all(250 < shards.count(s) < 420 for s in range(3))
    assert shard_of("ml", "ep-1", 3) == shard_of("ml", "ep-1", 3)
    assert shard_of("ml", "x", 1) == 0


def dataarts_listing(count: int) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("endpoint_id"):
            return httpx.Response(
                400, json={"error_code": "DataArtsFabric.00010009", "error_msg": "not found"}
            )
        offset = int(request.url.params.get("offset", "0"))
        limit = int(request.url.params.get("limit", "10"))
        endpoints = [
            {"id": f"{i:032d}", "status": "RUNNING", "type": "inference"} for i in range(count)
        ][offset : offset + limit]
        return httpx.Response(200, json={"total": count, "endpoints": endpoints})

    return handler


def dataarts_spec(i: int) -> dict[str, Any]:
    return {
        "pollInterval": "30s",
        "dataArtsFabric": {
            "url": "https://dataarts.test",
            "workspaceId": "ws",
            "endpointId": f"{i:032d}",
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        },
    }


async def test_a_coalesced_workspace_costs_one_listing_per_cycle(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    provider.handler = dataarts_listing(50)
    secrets.put("ml", "creds", {"token": base64.b64encode(TOKEN.encode()).decode()})
    for i in range(50):
        scheduler.upsert(body(f"d{i}", dataarts_spec(i)))
    await writer.wait_for(50)
    await asyncio.sleep(0.5)
    # One page of 100 answers all 50; nobody is polled again before the interval.
    assert len(provider.requests) == 1
    assert len(writer.patches) == 50
    assert {p["phase"] for _, p in writer.patches} == {"Running"}


async def test_accounts_have_own_pools_but_share_one_ssl_context() -> None:
    # One SSL context per account held a CA bundle each (1.8 GB at 10,000 self-hosted
    # endpoints); one pool for all made httpcore scan hundreds of connections per request.
    pool = AccountPool()
    try:
        clients = [
            pool.get("nsModelServer", ("nsModelServer", f"http://ns{i}.test")).client
            for i in range(3)
        ]
        inner = [c._transport._inner for c in clients]  # type: ignore[attr-defined]
        assert len({id(t) for t in inner}) == 3, "a connection pool per account"
        assert len({id(t._pool._ssl_context) for t in inner}) == 1, "one SSL context for all"
        assert {t._pool._max_connections for t in inner} == {16}
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
    scheduler: Scheduler, writer: FakeWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inferenceops import status as st
    from inferenceops.providers import Observation, Phase, Workers

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
    entry = scheduler._entries[("ml", "a")]
    same = Observation(Phase.RUNNING, "READY", progress=100, workers=Workers(ready=1, total=1))
    for _ in range(5):
        await scheduler._record(entry, same)
    assert calls == 1, "the same answer for the same spec is not recomputed"
    assert len(writer.patches) == 1
    await scheduler._record(entry, Observation(Phase.PROVISIONING, "LOADING_MODEL"))
    assert calls == 2 and writer.patches[-1][1]["phase"] == "Provisioning"
    await scheduler._record(entry, same)
    assert calls == 3 and writer.patches[-1][1]["phase"] == "Running"


async def test_a_batch_stays_due_together_when_its_writes_are_slow(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    real_patch = writer.patch_status

    async def slow_patch(ref: Any, patch: Any) -> bool:
        await asyncio.sleep(0.02)  # 40 writes take 0.8 s one after another
        return await real_patch(ref, patch)

    writer.patch_status = slow_patch  # type: ignore[method-assign]
    provider.handler = dataarts_listing(40)
    secrets.put("ml", "creds", {"token": base64.b64encode(TOKEN.encode()).decode()})
    for i in range(40):
        scheduler.upsert(body(f"d{i}", dataarts_spec(i)))
    await writer.wait_for(40)
    await asyncio.sleep(0.1)
    dues = {scheduler._polls.due_at(("ml", f"d{i}")) for i in range(40)}
    assert len(dues) == 1, "one batch, one next poll: the next cycle is one listing again"


async def test_resources_arriving_one_by_one_share_one_listing(
    scheduler: Scheduler, writer: FakeWriter, provider: Provider, secrets: SecretCache
) -> None:
    # kopf hands over a start-up listing (or a GitOps sync) one object at a time, with the event
    # loop running in between; each arrival must not start its own workspace listing.
    provider.handler = dataarts_listing(30)
    secrets.put("ml", "creds", {"token": base64.b64encode(TOKEN.encode()).decode()})
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
    provider: Provider, writer: FakeWriter, secrets: SecretCache
) -> None:
    provider.handler = dataarts_listing(100)
    secrets.put("ml", "creds", {"token": base64.b64encode(TOKEN.encode()).decode()})
    accounts = AccountPool(transport=httpx.MockTransport(provider))
    settings = SchedulerSettings(arrival_quiet=0.3, arrival_max_wait=0.6)
    sched = Scheduler(writer, secrets, accounts, settings)
    task = asyncio.create_task(sched.run())
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(20):
            sched.upsert(body(f"d{i}", dataarts_spec(i)))
            await asyncio.sleep(0.1)
            if writer.patches:
                break
        await writer.wait_for(1)
        assert loop.time() - start < 0.6 + 0.3, "never starved by a steady stream"
    finally:
        task.cancel()
        await sched.drain()
        await accounts.aclose()


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
    writer: FakeWriter, secrets: SecretCache, slack: float
) -> None:
    """Per-endpoint polls spread over the interval each woke the event loop on their own; at
    10,000 that cost more CPU than the requests (docs/performance.md). Within the timer slack
    they start in one wake-up, a little late, never early."""
    started: dict[str, float] = {}

    def record(request: httpx.Request) -> httpx.Response:
        started[request.url.host] = time.monotonic()
        return ns_ready(request)

    accounts = AccountPool(transport=httpx.MockTransport(record))
    sched = Scheduler(writer, secrets, accounts, SchedulerSettings(timer_slack=slack))
    task = asyncio.create_task(sched.run())
    try:
        names = [f"s{i}" for i in range(5)]
        for name in names:
            spec = {"pollInterval": "30s", "nsModelServer": {"url": f"http://{name}.test:8080"}}
            sched.upsert(body(name, spec))
        await writer.wait_for(len(names))
        await asyncio.sleep(0.6)  # past the slack of the wake-up the first polls made
        started.clear()
        base = time.monotonic()
        due = {name: base + 0.05 * (i + 1) for i, name in enumerate(names)}  # 50-250 ms away
        for name in names:
            sched._schedule(sched._entries[("ml", name)], due[name] - time.monotonic())
        for _ in range(100):
            if len(started) == len(names):
                break
            await asyncio.sleep(0.02)
        assert sorted(started) == [f"{name}.test" for name in names]
        for name in names:
            assert started[f"{name}.test"] >= due[name] - 0.01, "a poll never starts early"
        spread = max(started.values()) - min(started.values())
        if slack:
            assert spread < 0.05, f"due within the slack, started {spread:.3f}s apart"
        else:
            assert spread > 0.15, f"without slack each starts when due ({spread:.3f}s)"
    finally:
        task.cancel()
        await sched.drain()
        await accounts.aclose()
