"""The kopf wiring's own logic (the rest is exercised against a real API server)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import kopf
import pytest

from inferenceops.accounts import AccountPool
from inferenceops.handlers import (
    Runtime,
    endpoint_paths,
    provider_paths,
    scheduler_alive,
    secret_paths,
)
from inferenceops.kube.secrets import SecretCache
from inferenceops.scheduler import Scheduler, SchedulerSettings


class _NoWriter:
    async def patch_status(self, ref: object, patch: object) -> bool:
        return True

    async def emit(self, ref: object, event: object) -> None:
        return None


async def test_liveness_fails_when_the_scheduler_is_gone() -> None:
    runtime = Runtime(settings=SchedulerSettings())
    memo = SimpleNamespace(runtime=runtime)
    with pytest.raises(kopf.PermanentError):
        scheduler_alive(memo=memo)
    runtime.scheduler = Scheduler(_NoWriter(), SecretCache(), AccountPool())
    runtime.task = asyncio.create_task(runtime.scheduler.run())
    await asyncio.sleep(0)
    assert scheduler_alive(memo=memo) == 0
    runtime.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runtime.task
    with pytest.raises(kopf.PermanentError):
        scheduler_alive(memo=memo)


async def test_liveness_fails_when_the_endpoint_watch_is_gone() -> None:
    runtime = Runtime(settings=SchedulerSettings())
    memo = SimpleNamespace(runtime=runtime)
    runtime.scheduler = Scheduler(_NoWriter(), SecretCache(), AccountPool())
    runtime.task = asyncio.create_task(runtime.scheduler.run())
    runtime.informer = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    with pytest.raises(kopf.PermanentError, match="watch"):
        scheduler_alive(memo=memo)
    runtime.task.cancel()
    await asyncio.gather(runtime.task, return_exceptions=True)


def test_endpoint_paths_cover_the_watched_namespaces() -> None:
    base = "/apis/inferenceops.io/v1alpha1"
    assert endpoint_paths(()) == [f"{base}/inferenceendpoints"]
    assert endpoint_paths(("a", "b")) == [
        f"{base}/namespaces/a/inferenceendpoints",
        f"{base}/namespaces/b/inferenceendpoints",
    ]


def test_provider_paths_cover_the_watched_namespaces() -> None:
    base = "/apis/inferenceops.io/v1alpha1"
    assert provider_paths(()) == [f"{base}/inferenceproviders"]
    assert provider_paths(("a",)) == [f"{base}/namespaces/a/inferenceproviders"]


def test_secret_paths_add_the_cluster_secret_namespaces_when_watching_some() -> None:
    assert secret_paths((), frozenset({"inferenceops"})) == ["/api/v1/secrets"]
    assert secret_paths(("a", "b"), frozenset({"inferenceops", "a"})) == [
        "/api/v1/namespaces/a/secrets",
        "/api/v1/namespaces/b/secrets",
        "/api/v1/namespaces/inferenceops/secrets",
    ]


async def test_liveness_fails_when_a_provider_watch_is_gone() -> None:
    runtime = Runtime(settings=SchedulerSettings())
    runtime.scheduler = Scheduler(_NoWriter(), SecretCache(), AccountPool())
    runtime.task = asyncio.create_task(runtime.scheduler.run())
    gone = asyncio.create_task(asyncio.sleep(0), name="inferenceops-namespaces-informer")
    runtime.provider_informers.append(gone)
    await asyncio.sleep(0.01)
    with pytest.raises(kopf.PermanentError, match="namespaces-informer"):
        scheduler_alive(memo=SimpleNamespace(runtime=runtime))
    runtime.task.cancel()
    await asyncio.gather(runtime.task, return_exceptions=True)


def test_start_up_says_which_namespaces_are_watched() -> None:
    from inferenceops.handlers import watching

    assert watching(()) == "watching InferenceEndpoints in all namespaces"
    line = watching(("ml", "team-b"))
    assert "ml, team-b only" in line and "other namespaces are not polled" in line
