"""What the unit tests share: clocks, fakes of the writer and the provider, resource builders and
a running scheduler. Fixtures built from these are in conftest.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool, AccountSettings
from inferenceops.clock import Clock
from inferenceops.kube.secrets import SecretCache
from inferenceops.kube.writer import StatusSink
from inferenceops.provider_objects import ObjectKey, ProviderObjects, Unresolved
from inferenceops.provider_status import ProviderStatus, ProviderStatusSink
from inferenceops.scheduler import Scheduler, SchedulerSettings
from inferenceops.status import EventSpec, condition

TOKEN = "flp_scheduler_test_token_123456"
#: Where the wall clock of a `VirtualClock` starts.
EPOCH = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# --- clocks ---------------------------------------------------------------------------------


class VirtualClock:
    """The loop's time, and a wall clock that starts at `epoch` and moves with it: on virtual
    time (looptime, every unit test by default) both move only while everything waits, by
    exactly what was waited for."""

    def __init__(self, epoch: datetime = EPOCH) -> None:
        self.epoch = epoch

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    def now(self) -> datetime:
        return self.epoch + timedelta(seconds=self.monotonic())


class ManualClock:
    """Moves only when told, for code run without an event loop; counts its readings."""

    def __init__(self, at: float = 100.0, epoch: datetime = EPOCH) -> None:
        self.at = at
        self.epoch = epoch
        self.reads = 0

    def advance(self, seconds: float) -> None:
        self.at += seconds

    def monotonic(self) -> float:
        self.reads += 1
        return self.at

    def now(self) -> datetime:
        return self.epoch + timedelta(seconds=self.at)


# --- fakes ----------------------------------------------------------------------------------


@dataclass
class FakeWriter:
    """The scheduler's StatusSink in memory: every patch and Event, in order."""

    patches: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[str, EventSpec]] = field(default_factory=list)
    #: Resources whose patch answers "gone" (deleted meanwhile).
    gone: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Awaited before each patch is recorded (a slow API server).
    delay: Callable[[], Awaitable[None]] | None = None

    async def patch_status(self, ref: Any, patch: Any) -> bool:
        if self.delay is not None:
            await self.delay()
        if ref.name in self.gone:
            return False
        self.patches.append((ref.name, dict(patch)))
        self.changed.set()
        return True

    async def emit(self, ref: Any, event: EventSpec) -> None:
        self.events.append((ref.name, event))

    async def wait_for(self, count: int, within: float = 5.0) -> None:
        """Until `count` patches were written, at most `within` seconds (of loop time)."""

        async def _wait() -> None:
            while len(self.patches) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(_wait(), within)

    def of(self, name: str) -> list[dict[str, Any]]:
        """The patches written to one resource."""
        return [patch for written, patch in self.patches if written == name]


class FakeSink:
    """provider_status.ProviderStatusSink in memory."""

    def __init__(self) -> None:
        self.patches: list[tuple[ObjectKey, dict[str, Any]]] = []
        self.events: list[tuple[ObjectKey, str, EventSpec]] = []

    async def patch_provider_status(self, key: ObjectKey, patch: Mapping[str, Any]) -> bool:
        self.patches.append((key, dict(patch)))
        return True

    async def emit_for_provider(self, key: ObjectKey, uid: str, event: EventSpec) -> None:
        self.events.append((key, uid, event))


@dataclass
class Provider:
    """A scriptable provider behind httpx.MockTransport, recording each request and the loop
    time it arrived at."""

    handler: Callable[[httpx.Request], httpx.Response]
    requests: list[httpx.Request] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(asyncio.get_running_loop().time())
        return self.handler(request)


@contextlib.asynccontextmanager
async def scheduling(
    provider: Callable[[httpx.Request], Any],
    writer: StatusSink,
    secrets: SecretCache,
    settings: SchedulerSettings | None = None,
    *,
    clock: Clock,
    providers: ProviderObjects | None = None,
    account_settings: AccountSettings | None = None,
    provider_sink: ProviderStatusSink | None = None,
    wiring: Wiring | None = None,
) -> AsyncIterator[Scheduler]:
    """A running scheduler whose accounts reach `provider` (an httpx.MockTransport handler);
    stopped, with its accounts closed, on the way out. With `provider_sink`, its provider
    objects' status (`sched.provider_status`) writes there, wired as app.Core wires it; parts
    built by the caller with `wiring`'s callbacks reach this scheduler."""
    wiring = wiring or Wiring()
    if providers is None and provider_sink is not None:
        providers = ProviderObjects(
            changed=wiring.provider_changed, status_changed=wiring.status_changed
        )
    status = None
    if provider_sink is not None:
        assert providers is not None
        status = ProviderStatus(providers, wiring.provider_users, provider_sink, clock=clock)
    accounts = AccountPool(account_settings, transport=httpx.MockTransport(provider), clock=clock)
    sched = Scheduler(
        writer,
        secrets,
        accounts,
        settings,
        providers=providers,
        provider_status=status,
        clock=clock,
    )
    wiring.scheduler, wiring.provider_status = sched, status
    task = asyncio.create_task(sched.run())
    try:
        yield sched
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sched.stop()
        await accounts.aclose()


def provider_status_of(sched: Scheduler) -> ProviderStatus:
    """The provider objects' status a `scheduling(..., provider_sink=...)` scheduler reports to."""
    status = sched.provider_status
    assert isinstance(status, ProviderStatus)
    return status


# --- providers' answers ---------------------------------------------------------------------


def ns_ready(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": {"stage": "READY", "progress": 100}})


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


def dataarts_listing(count: int) -> Callable[[httpx.Request], httpx.Response]:
    """A DataArts workspace of `count` running endpoints that answers listings only."""

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


# --- resources ------------------------------------------------------------------------------

NS_SPEC = {"pollInterval": "30s", "nsModelServer": {"url": "http://ns.test:8080"}}
CREDS = {"name": "creds", "key": "token"}
FRIENDLI = {"friendli": {"url": "https://friendli.test", "credentialsSecretRef": CREDS}}


def body(
    name: str,
    spec: dict[str, Any],
    *,
    generation: int = 1,
    uid: str | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An InferenceEndpoint in namespace ml, as the API server would hand it over."""
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


def friendli_spec(endpoint: str = "ep1") -> dict[str, Any]:
    return {
        "friendli": {
            "endpointId": endpoint,
            "url": "https://friendli.test",
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        }
    }


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


def token(value: str = TOKEN) -> dict[str, str]:
    """A Secret's data holding `value` under the key "token"."""
    return {"token": base64.b64encode(value.encode()).decode()}


def obj(kind: str, name: str, spec: dict[str, Any], namespace: str = "ml") -> dict[str, Any]:
    """An InferenceProvider (in `namespace`) or a ClusterInferenceProvider."""
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "generation": 1}
    if kind == "InferenceProvider":
        meta["namespace"] = namespace
    return {"metadata": meta, "spec": spec}


def ref_spec(kind: str = "InferenceProvider", name: str = "acct", **block: Any) -> dict[str, Any]:
    """An endpoint's spec naming a provider object, with its own Friendli block."""
    return {
        "pollInterval": "30s",
        "providerRef": {"kind": kind, "name": name},
        "friendli": {"endpointId": "ep1", **block},
    }


def objects(*items: tuple[str, dict[str, Any]]) -> ProviderObjects:
    store = ProviderObjects()
    for kind, body_ in items:
        if kind == "InferenceProvider":
            store.observe_namespaced(None, body_)
        else:
            store.observe_cluster(None, body_)
    return store


def unresolved(store: ProviderObjects, namespace: str, spec: dict[str, Any]) -> Unresolved:
    with pytest.raises(Unresolved) as caught:
        store.resolve(namespace, spec)
    return caught.value


def ready(status: Mapping[str, Any] | None) -> tuple[str, str]:
    """A status's Ready condition as (status, reason)."""
    found = condition(status, "Ready") or {}
    return found.get("status", ""), found.get("reason", "")


class Wiring:
    """Late-bound callbacks for parts built one by one, as app.Core wires the operator's: hand
    its methods to the constructors, then set `scheduler` and `provider_status`."""

    def __init__(self) -> None:
        self.scheduler: Scheduler | None = None
        self.provider_status: ProviderStatus | None = None

    def provider_changed(self, key: ObjectKey | None) -> None:
        if self.scheduler is not None:
            self.scheduler.provider_changed(key)

    def status_changed(self) -> None:
        if self.provider_status is not None:
            self.provider_status.changed()

    def secret_changed(self, namespace: str, name: str) -> None:
        if self.scheduler is not None:
            self.scheduler.secret_changed(namespace, name)

    def provider_users(self, key: ObjectKey) -> list[Mapping[str, Any]]:
        return self.scheduler.provider_users(key) if self.scheduler is not None else []
