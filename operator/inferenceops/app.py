"""The composition root: builds every part of a running operator once, with its dependencies,
starts its root tasks and stops the whole operator when one of them ends unexpectedly.

    kube informers ──▶ endpoints/scheduler ──▶ poller ──▶ providers ──▶ status.py ──▶ kube writer

`handlers.py` only hands kopf's hooks to this (start-up, liveness, clean-up); `cli.py` turns the
command line into `OperatorSettings`. Parts that call each other back (a changed Secret re-polls
its endpoints; a provider object's status counts its endpoints) are given callbacks that reach
the part built after them through this object, so no part needs a `bind()` after construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .accounts import AccountPool, AccountSettings
from .api import GROUP, VERSION
from .api.provider_kinds import CLUSTER_PLURAL, NAMESPACED_PLURAL
from .clock import SYSTEM_CLOCK, Clock
from .inventory import Inventory
from .kube import client as kube_client
from .kube import secrets as kube_secrets
from .kube.informer import Informer
from .kube.leases import GROUP_LABEL, LeaseApi, leases_path
from .kube.secrets import Fetch, SecretCache
from .kube.writer import ApiWriter, StatusSink
from .membership import Membership, MembershipError, MembershipSettings, Owns, owns_all
from .memory import keep_frozen, keep_released, release_free_memory
from .metrics import Metrics
from .provider_objects import ObjectKey, ProviderObjects
from .provider_status import ProviderStatus, ProviderStatusSink
from .scheduler import Scheduler, SchedulerSettings
from .watches import endpoint_paths, provider_paths, secret_paths, served, watching

__all__ = [
    "SECRET_FIELD_SELECTOR",
    "Core",
    "MembershipSettings",
    "Operator",
    "OperatorSettings",
    "StartupError",
    "endpoint_paths",
    "provider_paths",
    "secret_paths",
    "watching",
]

log = logging.getLogger(__name__)

#: Secrets that can never hold a provider credential, filtered out by the API server so that
#: large Helm release blobs and rotating service-account tokens are never sent to us.
SECRET_FIELD_SELECTOR = "type!=helm.sh/release.v1,type!=kubernetes.io/service-account-token"


@dataclass(frozen=True)
class OperatorSettings:
    """Everything `inferenceops run`'s flags decide."""

    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    #: Namespaces to watch; empty means all.
    namespaces: tuple[str, ...] = ()
    #: Where ClusterInferenceProviders may read Secrets; None means anywhere.
    cluster_secret_namespaces: frozenset[str] | None = None
    #: None: this copy works alone and holds no Lease (tests).
    membership: MembershipSettings | None = None


class StartupError(RuntimeError):
    """A watch stopped before it had listed everything once: the operator cannot start."""


class _Sink(StatusSink, ProviderStatusSink, Protocol):
    """Where endpoint and provider-object status and Events go (kube/writer.ApiWriter)."""


class Core:
    """The polling core, wired: provider objects, the Secrets they and the endpoints use, the
    provider objects' status and the scheduler. Each part tells the others of changes through
    this object's methods, which reach parts built after it; nothing calls them before the
    watches are started. Tests build one with fakes, exactly as the operator does."""

    def __init__(
        self,
        writer: _Sink,
        accounts: AccountPool,
        settings: SchedulerSettings,
        *,
        fetch: Fetch | None = None,
        cluster_secret_namespaces: frozenset[str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        owns: Owns = owns_all,
    ) -> None:
        self.providers = ProviderObjects(
            cluster_secret_namespaces,
            changed=self._provider_changed,
            status_changed=self._provider_status_changed,
        )
        self.secrets = SecretCache(fetch, changed=self._secret_changed)

        def provider_owns(key: ObjectKey) -> bool:
            return owns(f"provider:{key[1]}/{key[2]}")

        self.inventory = Inventory(
            self.providers,
            accounts,
            self.secrets,
            self._provider_user_specs,
            self._provider_status_changed,
            allow_insecure_http=settings.allow_insecure_http,
            clock=clock,
            owns=provider_owns,
        )
        self.provider_status = ProviderStatus(
            self.providers,
            self._provider_users,
            writer,
            clock=clock,
            inventory=self.inventory,
            owns=provider_owns,
        )
        self.scheduler = Scheduler(
            writer,
            self.secrets,
            accounts,
            settings,
            providers=self.providers,
            provider_status=self.provider_status,
            clock=clock,
            owns=owns,
        )

    # --- membership.Assignee: what a hand-over asks of the polling core ----------------------

    async def release(self) -> int:
        released = await self.scheduler.handover.release()
        self.provider_status.changed()  # objects it no longer writes, or counts that moved
        return released

    async def acquire(self) -> int:
        acquired = await self.scheduler.handover.acquire()
        self.provider_status.changed()
        return acquired

    def _secret_changed(self, namespace: str, name: str) -> None:
        self.scheduler.secret_changed(namespace, name)

    def _provider_changed(self, key: ObjectKey | None) -> None:
        self.scheduler.provider_changed(key)

    def _provider_status_changed(self) -> None:
        self.provider_status.changed()

    def _provider_users(self, key: ObjectKey) -> list[Mapping[str, Any]]:
        return self.scheduler.provider_users(key)

    def _provider_user_specs(self, key: ObjectKey) -> list[Mapping[str, Any]]:
        # The scheduler's endpoint index, read directly: the Scheduler class is at its size
        # limit (test_layout) and its provider_users hands out statuses, not specs.
        users = self.scheduler._endpoints.provider_users(key)
        others = self.scheduler.handover.others.provider_specs(key)
        return [{"spec": entry.spec} for entry in users] + others


class Operator:
    """One running operator. `start()` lists everything and starts polling; `alive()` is the
    liveness check; `aclose()` stops it all. `stop` is called (once) when a root task ends
    unexpectedly: the process should then exit so that the kubelet restarts it."""

    def __init__(
        self,
        settings: OperatorSettings,
        api: kube_client.ApiSession,
        metrics: Metrics,
        *,
        stop: Callable[[str], None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self._api = api
        self._stop = stop
        self._stopping = False
        self.membership: Membership | None = None
        owns: Owns = owns_all
        write_timeout = None
        if (member := settings.membership) is not None:
            self.membership = Membership(
                LeaseApi(api, member.lease_namespace, timeout=member.lease_duration / 3),
                member.group,
                member.member_id,
                duration=member.lease_duration,
                metrics=metrics,
                clock=clock,
                owner=member.owner,
            )
            owns = self.membership.owns
            # Under the third of the duration between this member's fencing and anyone else's
            # takeover (membership.py).
            write_timeout = member.lease_duration / 4
        held = self.membership.owns_anything if self.membership else (lambda: True)
        self.writer = ApiWriter(
            api, metrics, clock=clock, may_write=held, write_timeout=write_timeout
        )
        self.accounts = AccountPool(settings.accounts, metrics, clock=clock)
        self.core = Core(
            self.writer,
            self.accounts,
            settings.scheduler,
            fetch=functools.partial(kube_secrets.get_secret, api),
            cluster_secret_namespaces=settings.cluster_secret_namespaces,
            clock=clock,
            owns=owns,
        )
        self.scheduler = self.core.scheduler
        metrics.endpoints_owned.set_function(lambda: len(self.scheduler))
        if self.membership is not None:
            self.membership.assignee = self.core
        #: The tasks that must all run for the operator to be alive.
        self._tasks: list[asyncio.Task[None]] = []
        self._membership_task: asyncio.Task[None] | None = None

    # --- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """List and watch everything, then start polling. Raises `StartupError` when a watch
        stops before its first listing."""
        settings, api = self.settings, self._api
        if self.membership is not None:
            await self._join(self.membership)
        # Provider objects (and namespace labels, for ClusterInferenceProvider conditions)
        # first: an endpoint naming one then resolves when it is listed, not ProviderMissing.
        if await served(api, NAMESPACED_PLURAL, CLUSTER_PLURAL):
            await self._watch_provider_objects()
        else:
            # Helm installs CRDs only on first install: after an upgrade they may be missing,
            # and an operator that waited for them would never start for the endpoints it can
            # serve.
            log.warning(
                "the InferenceProvider/ClusterInferenceProvider CRDs are not installed (apply "
                "crds/ and restart): endpoints with spec.providerRef will say ProviderMissing"
            )
        # Endpoints first, so that the Secret listing knows which Secrets to keep; polling
        # starts when both are listed, so no endpoint reports a Secret missing that is merely
        # unread.
        endpoints = Informer(api, endpoint_paths(settings.namespaces), self.scheduler.observe)
        self.scheduler.handover.relist = endpoints.relist
        await self._watch("inferenceops-informer", endpoints)
        await self._watch(
            "inferenceops-secret-informer",
            Informer(
                api,
                secret_paths(settings.namespaces, settings.cluster_secret_namespaces),
                self.core.secrets.observe,
                params={"fieldSelector": SECRET_FIELD_SELECTOR},
                # Secrets can be large (TLS bundles); unreferenced ones are dropped per page.
                page_size=50,
            ),
        )
        log.info(
            "%s; ClusterInferenceProviders may read Secrets in %s (--cluster-secret-namespace); "
            "holding %d referenced Secrets; polling %d endpoints",
            watching(settings.namespaces),
            ", ".join(sorted(settings.cluster_secret_namespaces or ["any namespace"])),
            len(self.core.secrets),
            len(self.scheduler),
        )
        self.spawn(self.scheduler.run(), "inferenceops-scheduler")
        self.spawn(keep_frozen(), "inferenceops-gc")
        if release_free_memory():  # glibc (the image's): there is memory to give back
            self.spawn(keep_released(), "inferenceops-heap")
        # Each provider object's status is written by the one member that owns its key.
        self.spawn(self.core.provider_status.run(), "inferenceops-provider-status")
        # Listed by the member that writes the object's status: one listing per account per
        # interval, whatever the number of members.
        self.spawn(self.core.inventory.run(), "inferenceops-inventory")

    async def _join(self, membership: Membership) -> None:
        """Hold a Lease, watch the group's, and wait (at most a lease duration) until the members
        acked a view with this one in it: the endpoint listing then keeps only its share."""
        try:
            await membership.start()
        except MembershipError as err:
            raise StartupError(str(err)) from None
        namespace = self.settings.membership.lease_namespace if self.settings.membership else ""
        await self._watch(
            "inferenceops-lease-informer",
            Informer(
                self._api,
                [leases_path(namespace)],
                membership.observe,
                params={"labelSelector": f"{GROUP_LABEL}={membership.group}"},
                # Hand-overs wait for every member to see the others' acks: back soon after
                # an outage, not after the informer's usual 30 s backoff.
                backoff_max=membership.renew_every,
            ),
        )
        self._membership_task = self.spawn(membership.run(), "inferenceops-membership")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(membership.duration):
                await membership.settled.wait()
        log.info("member %s of %s: %d members", membership.name, namespace, len(membership.view))

    async def _watch_provider_objects(self) -> None:
        api, store, base = self._api, self.core.providers, f"/apis/{GROUP}/{VERSION}"
        watches = {
            "inferenceproviders": Informer(
                api, provider_paths(self.settings.namespaces), store.observe_namespaced
            ),
            "clusterinferenceproviders": Informer(
                api, [f"{base}/{CLUSTER_PLURAL}"], store.observe_cluster
            ),
            "namespaces": Informer(api, ["/api/v1/namespaces"], store.observe_namespace),
        }
        for name, informer in watches.items():
            await self._watch(f"inferenceops-{name}-informer", informer)

    async def _watch(self, name: str, informer: Informer) -> None:
        """Start `informer` as a root task; return once it has listed everything once."""
        informer.metrics = self.accounts.metrics
        task = self.spawn(informer.run(), name)
        waiter = asyncio.create_task(informer.synced.wait())
        await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            error = None if task.cancelled() else task.exception()
            raise StartupError(f"{name} stopped before listing: {error!r}")

    def spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A root task (kopf's spawn_tasks): should it ever end while the operator runs, the
        operator stops, with one line saying which and why, rather than live on half-working."""
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._root_task_ended)
        self._tasks.append(task)
        return task

    def _root_task_ended(self, task: asyncio.Task[None]) -> None:
        # Cancelled: the operator is stopping (aclose, or the event loop shutting down).
        if self._stopping or task.cancelled():
            return
        self._stopping = True
        error = task.exception()
        why = "it returned" if error is None else repr(error)
        reason = f"{task.get_name()} stopped unexpectedly ({why}); stopping the operator"
        log.critical("%s", reason)
        self._stop(reason)

    # --- liveness and stop ------------------------------------------------------------------

    def alive(self) -> int:
        """Raises RuntimeError naming the first root task that is not running; else the number
        of endpoints tracked."""
        if not self._tasks:
            raise RuntimeError("the operator has not started")
        for task in self._tasks:
            if task.done():
                raise RuntimeError(f"{task.get_name()} is not running")
        if self.membership is not None:
            self.membership.alive()
        return len(self.scheduler)

    async def aclose(self) -> None:
        """Stop every root task, in-flight polls, the accounts' clients, pending Event counts
        and the API session."""
        self._stopping = True
        if self.membership is not None and self._membership_task is not None:
            # Hand over first: release, then delete the Lease, so the others take over at once.
            self._membership_task.cancel()
            await asyncio.gather(self._membership_task, return_exceptions=True)
            await self.membership.leave()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.scheduler.stop()
        await self.accounts.aclose()
        await self.writer.aclose()  # the Event counts not written yet
        await self._api.aclose()
