"""The composition root's own logic (app.Operator: liveness, root tasks) and the kopf hooks' (the
rest is exercised against a real API server)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import kopf
import pytest

from inferenceops.app import Operator, OperatorSettings
from inferenceops.handlers import scheduler_alive
from inferenceops.metrics import Metrics
from inferenceops.watches import endpoint_paths, provider_paths, secret_paths, watching


class _NoApi:
    """Nothing here talks to an API server."""

    async def aclose(self) -> None:
        return None


def _operator(stopped: list[str]) -> Operator:
    return Operator(OperatorSettings(), _NoApi(), Metrics(), stop=stopped.append)  # type: ignore[arg-type]


async def test_liveness_names_the_root_task_that_is_gone() -> None:
    operator = _operator([])
    memo = SimpleNamespace(operator=operator)
    with pytest.raises(kopf.PermanentError, match="not started"):
        scheduler_alive(memo=memo)
    scheduler = operator.spawn(operator.scheduler.run(), "inferenceops-scheduler")
    watch = operator.spawn(asyncio.Event().wait(), "inferenceops-namespaces-informer")
    await asyncio.sleep(0)
    assert scheduler_alive(memo=memo) == 0  # endpoints tracked
    watch.cancel()
    await asyncio.gather(watch, return_exceptions=True)
    with pytest.raises(kopf.PermanentError, match="namespaces-informer"):
        scheduler_alive(memo=memo)
    await operator.aclose()
    assert scheduler.cancelled()


async def test_a_root_task_that_fails_stops_the_operator_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped: list[str] = []
    operator = _operator(stopped)

    async def broken() -> None:
        raise RuntimeError("watch exploded")

    operator.spawn(asyncio.Event().wait(), "inferenceops-scheduler")
    with caplog.at_level(logging.CRITICAL, logger="inferenceops.app"):
        operator.spawn(broken(), "inferenceops-informer")
        await asyncio.sleep(0.01)
    (reason,) = stopped
    assert "inferenceops-informer stopped unexpectedly" in reason
    assert "watch exploded" in reason and "stopping the operator" in reason
    assert [r.getMessage() for r in caplog.records] == [reason]
    await operator.aclose()
    assert len(stopped) == 1, "stopping cancels the others: that is no second failure"


async def test_a_root_task_that_returns_stops_the_operator_too() -> None:
    stopped: list[str] = []
    operator = _operator(stopped)

    async def done() -> None:
        return None

    operator.spawn(done(), "inferenceops-gc")
    await asyncio.sleep(0.01)
    assert stopped and "it returned" in stopped[0]
    await operator.aclose()


async def test_the_handlers_hand_liveness_to_the_operator() -> None:
    with pytest.raises(kopf.PermanentError, match="not started"):
        scheduler_alive(memo=SimpleNamespace())


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


def test_start_up_says_which_namespaces_are_watched() -> None:
    assert watching(()) == "watching InferenceEndpoints in all namespaces"
    line = watching(("ml", "team-b"))
    assert "ml, team-b only" in line and "other namespaces are not polled" in line
