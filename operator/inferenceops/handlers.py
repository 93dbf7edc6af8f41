"""kopf's hooks, and nothing else: log in, build and start the operator (`app.Operator`), answer
the liveness probe, clean up.

Who owns what on the Kubernetes side:
- kopf: the operator's framework. It logs in (and again on 401), runs start-up and clean-up,
  serves /healthz (with the probe below) and handles signals.
- ours, in `kube/`: every request after start-up. One `ApiSession` (typed errors, credentials
  refreshed every minute and on 401, 429 retried after Retry-After), one `Informer` class that
  lists and watches every kind we read (InferenceEndpoints, provider objects, Namespaces,
  Secrets), and the one writer of status and Events (`kube/writer.py`).
Why not kopf's watches: kopf runs every event through a per-object worker, cause detection and
a handler invocation; at 10,000 resources that was 36 % of the operator's start-up CPU
(docs/performance.md). kopf's Secret watch also kept every Secret of the cluster and, after an
outage, re-listed without reporting the Secrets deleted meanwhile. Neither adds a finalizer or
writes an annotation to the user's object (kopf's change handlers would write
`last-handled-configuration`, which GitOps tools see as drift), and a deleted resource simply
disappears from the scheduler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import kopf

from .app import Operator, OperatorSettings, StartupError
from .kube import client as kube_client
from .metrics import Metrics

__all__ = ["Launch", "registry"]


@dataclass(frozen=True)
class Launch:
    """What `cli.run` hands kopf as the memo: the settings, the metrics it serves, and how to
    stop the whole process when a root task ends unexpectedly (kopf's stop flag)."""

    settings: OperatorSettings
    metrics: Metrics
    stop: Callable[[str], None]


registry = kopf.OperatorRegistry()


def _launch(memo: Any) -> Launch:
    launch = memo.launch
    assert isinstance(launch, Launch)
    return launch


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo:
    return kube_client.login(**kwargs)


@kopf.on.startup(registry=registry)
async def startup(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    launch = _launch(memo)
    settings.posting.enabled = False  # Events are ours, on transitions only (kube/writer.py)
    settings.networking.request_timeout = 60
    api = kube_client.ApiSession(
        kube_client.login(settings=settings),
        relogin=functools.partial(kube_client.login, settings=settings),
    )
    operator = memo.operator = Operator(launch.settings, api, launch.metrics, stop=launch.stop)
    try:
        await operator.start()
    except StartupError as err:
        raise kopf.PermanentError(str(err)) from None


@kopf.on.probe(id="scheduler", registry=registry)
def scheduler_alive(memo: Any, **_: Any) -> int:
    """Part of /healthz: fails when any root task (the scheduler, a watch) is gone, so the
    kubelet restarts the pod instead of leaving an operator that watches but never polls.
    Reports the endpoints tracked."""
    operator = getattr(memo, "operator", None)
    if not isinstance(operator, Operator):
        raise kopf.PermanentError("the operator has not started")
    try:
        return operator.alive()
    except RuntimeError as err:
        raise kopf.PermanentError(str(err)) from None


@kopf.on.cleanup(registry=registry)
async def cleanup(memo: Any, **_: Any) -> None:
    operator = getattr(memo, "operator", None)
    if isinstance(operator, Operator):
        await operator.aclose()
