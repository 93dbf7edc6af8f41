"""kopf wiring, and nothing else: tells the scheduler what exists; never polls, never writes.

kopf logs in, runs start-up and cleanup, serves the probes and watches Secrets (an `on.event`
handler). The InferenceEndpoints themselves are listed and watched by `kube.informer`, which is
cheaper per event than kopf's machinery (see its docstring). Neither adds a finalizer or writes
an annotation to the user's object (kopf's change handlers would write
`last-handled-configuration`, which GitOps tools see as drift), and a deleted resource simply
disappears from the scheduler.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from .accounts import AccountPool, AccountSettings
from .api import GROUP, PLURAL, VERSION
from .kube import client as kube_client
from .kube import secrets
from .kube.informer import Informer
from .kube.secrets import SecretCache
from .kube.writer import ApiWriter
from .metrics import Metrics
from .scheduler import Scheduler, SchedulerSettings

__all__ = ["Runtime", "registry"]

log = logging.getLogger(__name__)

#: Secrets that can never hold a provider credential, filtered out by the API server so that
#: large Helm release blobs and rotating service-account tokens are never sent to us.
SECRET_FIELD_SELECTOR = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token"


@dataclass
class Runtime:
    """What the handlers share; built by `cli.run` and handed to kopf as the memo."""

    settings: SchedulerSettings
    #: Namespaces to watch; empty means all.
    namespaces: tuple[str, ...] = ()
    account_settings: AccountSettings = field(default_factory=AccountSettings)
    metrics: Metrics = field(default_factory=Metrics)
    secrets: SecretCache = field(default_factory=SecretCache)
    accounts: AccountPool | None = None
    scheduler: Scheduler | None = None
    api: kube_client.ApiSession | None = None
    task: asyncio.Task[None] | None = None
    informer: asyncio.Task[None] | None = None


registry = kopf.OperatorRegistry()


def _runtime(memo: Any) -> Runtime:
    runtime = memo.runtime
    assert isinstance(runtime, Runtime)
    return runtime


@kopf.on.login(registry=registry)
def login(**kwargs: Any) -> kopf.ConnectionInfo:
    return kube_client.login(**kwargs)


@kopf.on.startup(registry=registry)
async def startup(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    runtime = _runtime(memo)
    settings.posting.enabled = False  # Events are ours, on transitions only (kube/writer.py)
    settings.watching.chunk_size = 500
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.watching.field_selectors["v1", "secrets"] = SECRET_FIELD_SELECTOR
    runtime.api = kube_client.ApiSession(
        kube_client.login(settings=settings),
        relogin=functools.partial(kube_client.login, settings=settings),
    )
    loaded = await secrets.prime(
        runtime.api, runtime.secrets, runtime.namespaces, SECRET_FIELD_SELECTOR
    )
    log.info("credential cache primed with %d Secrets", loaded)
    writer = ApiWriter(runtime.api, runtime.metrics)
    runtime.accounts = AccountPool(runtime.account_settings, runtime.metrics)
    runtime.scheduler = Scheduler(writer, runtime.secrets, runtime.accounts, runtime.settings)
    runtime.task = asyncio.create_task(runtime.scheduler.run(), name="inferenceops-scheduler")
    runtime.task.add_done_callback(_task_ended)
    informer = Informer(runtime.api, endpoint_paths(runtime.namespaces), runtime.scheduler.observe)
    runtime.informer = asyncio.create_task(informer.run(), name="inferenceops-informer")
    runtime.informer.add_done_callback(_task_ended)


def endpoint_paths(namespaces: tuple[str, ...]) -> list[str]:
    base = f"/apis/{GROUP}/{VERSION}"
    if not namespaces:
        return [f"{base}/{PLURAL}"]
    return [f"{base}/namespaces/{ns}/{PLURAL}" for ns in namespaces]


def _task_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("%s stopped: %r; liveness now fails", task.get_name(), task.exception())


@kopf.on.probe(id="scheduler", registry=registry)
def scheduler_alive(memo: Any, **_: Any) -> int:
    """Part of /healthz: fails when the scheduler task is gone, so the kubelet restarts the pod
    instead of leaving an operator that watches but never polls. Reports the endpoints tracked."""
    runtime = _runtime(memo)
    if runtime.task is None or runtime.task.done() or runtime.scheduler is None:
        raise kopf.PermanentError("the poll scheduler is not running")
    if runtime.informer is not None and runtime.informer.done():
        raise kopf.PermanentError("the InferenceEndpoint watch is not running")
    return len(runtime.scheduler)


@kopf.on.cleanup(registry=registry)
async def cleanup(memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    for task in (runtime.informer, runtime.task):
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if runtime.scheduler:
        await runtime.scheduler.stop()
    if runtime.accounts:
        await runtime.accounts.aclose()
    if runtime.api:
        await runtime.api.aclose()


@kopf.on.event("v1", "secrets", registry=registry)
async def secret_event(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    if type == "DELETED":
        runtime.secrets.delete(namespace, name)
        return
    runtime.secrets.put(namespace, name, body.get("data"), body.get("stringData"))
    if runtime.scheduler is not None:
        runtime.scheduler.secret_changed(namespace, name)
