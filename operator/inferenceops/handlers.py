"""kopf wiring, and nothing else: tells the scheduler what exists; never polls, never writes.

Who owns what on the Kubernetes side:
- kopf: the operator's framework. It logs in (and again on 401), runs start-up and clean-up,
  serves /healthz (with the probe below) and handles signals.
- ours, in `kube/`: every request after start-up. One `ApiSession` (typed errors, credentials
  refreshed every minute and on 401, 429 retried after Retry-After), one `Informer` class that
  lists and watches the InferenceEndpoints and the Secrets, and the one writer of status and
  Events (`kube/writer.py`).
Why not kopf's watches: kopf runs every event through a per-object worker, cause detection and
a handler invocation; at 10,000 resources that was 36 % of the operator's start-up CPU
(docs/performance.md). kopf's Secret watch also kept every Secret of the cluster and, after an
outage, re-listed without reporting the Secrets deleted meanwhile. Neither adds a finalizer or
writes an annotation to the user's object (kopf's change handlers would write
`last-handled-configuration`, which GitOps tools see as drift), and a deleted resource simply
disappears from the scheduler.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import kopf

from .accounts import AccountPool, AccountSettings
from .api import GROUP, PLURAL, VERSION
from .api.provider_kinds import CLUSTER_PLURAL, NAMESPACED_PLURAL
from .kube import client as kube_client
from .kube import secrets
from .kube.errors import ApiError
from .kube.informer import Informer
from .kube.secrets import SecretCache
from .kube.writer import ApiWriter
from .memory import keep_frozen
from .metrics import Metrics
from .provider_objects import ProviderObjects
from .provider_status import ProviderStatus
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
    writer: ApiWriter | None = None
    task: asyncio.Task[None] | None = None
    informer: asyncio.Task[None] | None = None
    secret_informer: asyncio.Task[None] | None = None
    providers: ProviderObjects = field(default_factory=ProviderObjects)
    #: The InferenceProvider, ClusterInferenceProvider and Namespace watches.
    provider_informers: list[asyncio.Task[None]] = field(default_factory=list)
    provider_status_task: asyncio.Task[None] | None = None
    #: Freezes the long-lived heap out of the garbage collector's full passes (memory.py).
    collector: asyncio.Task[None] | None = None

    def watches(self) -> list[asyncio.Task[None]]:
        """The tasks besides the scheduler that must run for the operator to be alive."""
        tasks = [
            self.informer,
            self.secret_informer,
            *self.provider_informers,
            self.provider_status_task,
        ]
        return [t for t in tasks if t is not None]


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
    settings.networking.request_timeout = 60
    api = runtime.api = kube_client.ApiSession(
        kube_client.login(settings=settings),
        relogin=functools.partial(kube_client.login, settings=settings),
    )
    writer = runtime.writer = ApiWriter(api, runtime.metrics)
    runtime.accounts = AccountPool(runtime.account_settings, runtime.metrics)
    scheduler = runtime.scheduler = Scheduler(
        writer, runtime.secrets, runtime.accounts, runtime.settings, providers=runtime.providers
    )
    runtime.secrets.bind(functools.partial(secrets.get_secret, api), scheduler.secret_changed)
    provider_status = scheduler.provider_status = ProviderStatus(
        runtime.providers, scheduler.provider_users, writer
    )
    runtime.providers.bind(scheduler.provider_changed, provider_status.changed)
    # Provider objects (and namespace labels, for ClusterInferenceProvider conditions) first:
    # an endpoint naming one then resolves when it is listed, not ProviderMissing for a moment.
    if await _served(api, NAMESPACED_PLURAL, CLUSTER_PLURAL):
        await _watch_provider_objects(api, runtime)
    else:
        # Helm installs CRDs only on first install: after an upgrade they may be missing, and
        # an operator that waited for them would never start for the endpoints it can serve.
        log.warning(
            "the InferenceProvider/ClusterInferenceProvider CRDs are not installed (apply "
            "crds/ and restart): endpoints with spec.providerRef will say ProviderMissing"
        )
    # Endpoints first, so that the Secret listing knows which Secrets to keep; polling starts
    # when both are listed, so no endpoint reports a Secret missing that is merely unread.
    endpoints = Informer(api, endpoint_paths(runtime.namespaces), scheduler.observe)
    credentials = Informer(
        api,
        secret_paths(runtime.namespaces, runtime.providers.cluster_secret_namespaces),
        runtime.secrets.observe,
        params={"fieldSelector": SECRET_FIELD_SELECTOR},
        page_size=50,  # Secrets can be large (TLS bundles); unreferenced ones are dropped per page
    )
    runtime.informer = _start(endpoints.run(), "inferenceops-informer")
    await _synced(endpoints, runtime.informer)
    runtime.secret_informer = _start(credentials.run(), "inferenceops-secret-informer")
    await _synced(credentials, runtime.secret_informer)
    log.info(
        "%s; ClusterInferenceProviders may read Secrets in %s (--cluster-secret-namespace); "
        "holding %d referenced Secrets; polling %d endpoints",
        watching(runtime.namespaces),
        ", ".join(sorted(runtime.providers.cluster_secret_namespaces or ["any namespace"])),
        len(runtime.secrets),
        len(scheduler),
    )
    runtime.task = _start(scheduler.run(), "inferenceops-scheduler")
    runtime.collector = _start(keep_frozen(), "inferenceops-gc")
    if runtime.settings.shard_index == 0:
        # One writer per provider object: shards writing their own shares would overwrite each
        # other at every change. Shard 0's status covers its share of the endpoints.
        runtime.provider_status_task = _start(provider_status.run(), "inferenceops-provider-status")


async def _watch_provider_objects(api: kube_client.ApiSession, runtime: Runtime) -> None:
    """Start the provider-object and Namespace watches; return once each has listed."""
    store = runtime.providers
    watches = {
        "inferenceproviders": Informer(
            api, provider_paths(runtime.namespaces), store.observe_namespaced
        ),
        "clusterinferenceproviders": Informer(
            api, [f"/apis/{GROUP}/{VERSION}/{CLUSTER_PLURAL}"], store.observe_cluster
        ),
        "namespaces": Informer(api, ["/api/v1/namespaces"], store.observe_namespace),
    }
    for name, informer in watches.items():
        task = _start(informer.run(), f"inferenceops-{name}-informer")
        runtime.provider_informers.append(task)
        await _synced(informer, task)


async def _served(api: kube_client.ApiSession, *plurals: str) -> bool:
    """Whether the API server serves all of these resources of our group (discovery)."""
    try:
        found = await api.get_json(f"/apis/{GROUP}/{VERSION}", {})
    except ApiError as err:
        log.warning("discovery of %s/%s failed: %s", GROUP, VERSION, err)
        return False
    served = {r.get("name") for r in found.get("resources") or []}
    return all(p in served for p in plurals)


def watching(namespaces: tuple[str, ...]) -> str:
    """The start-up line's first words: where an endpoint must live to be polled (an endpoint in
    a namespace the operator does not watch would otherwise stay silently empty)."""
    if not namespaces:
        return "watching InferenceEndpoints in all namespaces"
    return (
        f"watching InferenceEndpoints in {', '.join(namespaces)} only "
        "(--namespace; endpoints in other namespaces are not polled)"
    )


def _start(coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    task = asyncio.create_task(coroutine, name=name)
    task.add_done_callback(_task_ended)
    return task


async def _synced(informer: Informer, task: asyncio.Task[None]) -> None:
    """Until the informer has listed everything once; its task failing is start-up failing."""
    waiter = asyncio.create_task(informer.synced.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        raise kopf.PermanentError(f"{task.get_name()} stopped before listing: {task.exception()!r}")


def secret_paths(
    namespaces: tuple[str, ...], cluster_secret_namespaces: frozenset[str] | None = None
) -> list[str]:
    """Where Secrets are watched: everywhere, or the watched namespaces and those where
    ClusterInferenceProviders may read Secrets (their Secrets are kept current the same way)."""
    if not namespaces:
        return ["/api/v1/secrets"]
    extra = sorted((cluster_secret_namespaces or frozenset()) - set(namespaces))
    return [f"/api/v1/namespaces/{ns}/secrets" for ns in (*namespaces, *extra)]


def provider_paths(namespaces: tuple[str, ...]) -> list[str]:
    base = f"/apis/{GROUP}/{VERSION}"
    if not namespaces:
        return [f"{base}/{NAMESPACED_PLURAL}"]
    return [f"{base}/namespaces/{ns}/{NAMESPACED_PLURAL}" for ns in namespaces]


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
    for task in runtime.watches():
        if task.done():
            raise kopf.PermanentError(f"a watch ({task.get_name()}) is not running")
    return len(runtime.scheduler)


@kopf.on.cleanup(registry=registry)
async def cleanup(memo: Any, **_: Any) -> None:
    runtime = _runtime(memo)
    for task in (*runtime.watches(), runtime.task, runtime.collector):
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if runtime.scheduler:
        await runtime.scheduler.stop()
    if runtime.accounts:
        await runtime.accounts.aclose()
    if runtime.writer:
        await runtime.writer.aclose()  # the Event counts not written yet
    if runtime.api:
        await runtime.api.aclose()
