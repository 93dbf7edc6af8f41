"""When each InferenceEndpoint is polled, and which are polled together.

The informer tells it what exists (`observe`: upsert / forget; kept in `endpoints.Endpoints`);
it owns time. Every poll and every staleness deadline sits in a `ScheduledQueue`. When a poll is
due, every endpoint of the same provider account due within the coalescing window goes with it, so
an adapter that can list (DataArts, Friendli, RunPod) answers them with one paged request, once it
has its poll slots (`runner.PollRunner`). What happens in a poll (Secret, account, adapter,
redaction, status, write, Events) is `poller.Poller`'s; what its result does (write, next poll
time, staleness) is `recorder.Recorder`'s; how long to wait is `timing.PollPolicy`'s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .accounts import AccountPool
from .aiotasks import Detached
from .api import ParsedSpec
from .arrivals import Arrivals
from .clock import SYSTEM_CLOCK, Clock
from .endpoints import RECONCILE_ANNOTATION, Endpoint, Endpoints, Key, key_of
from .gates import PollSlots
from .handover import Handover, Relist
from .kube.secrets import SecretCache
from .kube.writer import StatusSink
from .membership import Owns, owns_all
from .poller import Poller
from .provider_objects import ObjectKey, ProviderObjects
from .provider_status import AccountOutcomes, NoProviderStatus
from .providers import Phase
from .recorder import Recorder
from .remote import budget_key
from .runner import PollRunner
from .timing import PollPolicy
from .workqueue import ScheduledQueue

__all__ = ["RECONCILE_ANNOTATION", "Owns", "PollPolicy", "Relist", "Scheduler", "SchedulerSettings"]

log = logging.getLogger(__name__)

#: A provider account unused this long is closed (its client, pool and budget); the next poll on
#: it opens a new one. Far above any keep-alive, so nothing reusable is thrown away.
ACCOUNT_IDLE_SECONDS = 600.0
ACCOUNT_SWEEP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    policy: PollPolicy = field(default_factory=PollPolicy)
    #: Targets of one account due within this many seconds are polled together.
    coalesce_window: float = 10.0
    #: The loop wakes at most this often for polls and deadlines coming due (it still wakes at
    #: once for new and edited resources): a poll starts up to this late.
    timer_slack: float = 0.5
    #: New or edited resources of a listing provider wait until none has arrived in their group
    #: for `arrival_quiet` seconds (at most `arrival_max_wait` after the first), so a start-up
    #: listing or a GitOps sync of thousands costs a few listings, not one per resource.
    arrival_quiet: float = 0.5
    arrival_max_wait: float = 5.0
    #: Concurrent account polls in flight (each may hold several HTTP requests).
    max_concurrent_polls: int = 64
    #: Concurrent account polls per provider, so one slow provider cannot hold every slot.
    max_concurrent_polls_per_provider: int = 32
    #: Concurrent account polls per host (scheme://host:port) not known to answer quickly, so
    #: one such host cannot either (a known host is bounded by its provider's share).
    max_concurrent_polls_per_host: int = 16
    #: Concurrent polls of hosts and accounts that answered slowly or not in time lately (the
    #: "slow lane"): however many such hosts there are, the others keep the rest of the slots.
    slow_lane_polls: int = 8
    #: After a restart, polls of resources that already have a status are spread over this
    #: fraction of their phase's interval instead of all firing at once.
    restart_spread: float = 1.0
    #: The longest a hand-over waits for in-flight status writes of the keys it gives up.
    release_timeout: float = 2.5
    #: Write lastPollTime on its own at most this often; None: only along with a real change.
    poll_time_refresh: timedelta | None = None
    #: Send credentials to plain http:// URLs (--allow-insecure-http; emulators and tests).
    allow_insecure_http: bool = False


class Scheduler:
    def __init__(
        self,
        writer: StatusSink,
        secrets: SecretCache,
        accounts: AccountPool,
        settings: SchedulerSettings | None = None,
        *,
        providers: ProviderObjects | None = None,
        provider_status: AccountOutcomes | None = None,
        clock: Clock = SYSTEM_CLOCK,
        owns: Owns = owns_all,
    ) -> None:
        self.settings = settings or SchedulerSettings()
        self._accounts = accounts
        if providers is None:  # its own, telling it of changes (app.Core shares one)
            providers = ProviderObjects(changed=self.provider_changed)
        self.providers = providers
        #: Told each provider object's call outcomes and when its endpoints change.
        self.provider_status: AccountOutcomes = provider_status or NoProviderStatus()
        self._poller = Poller(
            accounts,
            secrets,
            writer,
            poll_time_refresh=self.settings.poll_time_refresh,
            allow_insecure_http=self.settings.allow_insecure_http,
        )
        self._metrics = accounts.metrics
        # Give the account pool the same clock: its Retry-After pauses are added to this one's.
        self._clock = clock.monotonic
        self._wallclock = clock.now
        self._arrivals = Arrivals(self.settings.arrival_quiet, self.settings.arrival_max_wait)
        self._endpoints = Endpoints(
            secrets,
            self.providers,
            self._poller.refusal,
            users_changed=self._provider_counts_changed,
            group_emptied=self._arrivals.end,
        )
        #: When each endpoint is polled next; an endpoint being polled is `begin`..`done` in it.
        self._polls: ScheduledQueue[Key] = ScheduledQueue()
        self._recorder = Recorder(
            self._poller,
            self._endpoints,
            self._polls,
            self.settings.policy,
            clock,
            self._metrics,
            refresh_poll_time=self.settings.poll_time_refresh is not None,
            gone=lambda entry: self.forget(entry.namespace, entry.name),
            ready_changed=self._provider_counts_changed,
        )
        #: Polls, staleness writes and account sweeps in flight.
        self._tasks = Detached()
        slots = PollSlots(
            self.settings.max_concurrent_polls,
            self.settings.max_concurrent_polls_per_provider,
            self.settings.max_concurrent_polls_per_host,
            self.settings.slow_lane_polls,
        )
        self._runner = PollRunner(
            self._poller,
            self._recorder,
            self._polls,
            accounts,
            slots,
            clock,
            functools.partial(_account_outcome, self),
            share=lambda entry: self.handover.others.share(entry.key),
        )
        self._running = False
        self.handover = Handover(self, self._endpoints, self._recorder, self._metrics, owns)

    # --- what the informer tells us -------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (`kube.informer`): type None for an object of a listing."""
        if event_type == "DELETED":
            self.forget(*key_of(body))
        else:
            self.upsert(body, initial=event_type is None)

    def upsert(
        self, body: Mapping[str, Any], *, initial: bool = False, taken: bool = False
    ) -> None:
        """A resource was listed (`initial`: at start; `taken`: on taking it over), or changed."""
        meta = body.get("metadata") or {}
        namespace, name = key_of(body)
        if meta.get("deletionTimestamp"):
            self.forget(namespace, name)
            return
        if not self.handover.accepts(body):
            return
        entry = self._endpoints.get((namespace, name))
        if entry is not None and entry.uid == str(meta.get("uid", "")):
            if self._endpoints.update(entry, body):
                self._poll_soon(entry)
            return
        if entry is not None:  # same name, new object: the old one was deleted meanwhile
            self.forget(namespace, name)
        entry, current = self._endpoints.track(body, since=self._wallclock())
        self.handover.others.count(entry.key, budget_key(namespace, entry.spec), owned=True)
        self._recorder.count_phase(None, entry.status.get("phase"))
        self._recorder.track(entry)
        if taken and current:
            self._schedule(entry, self.handover.due(entry, self._wallclock()))
        elif initial and current:
            phase = _phase(entry.status.get("phase"))
            delay = self.settings.policy.after_restart(
                phase, entry.interval, self.settings.restart_spread
            )
            self._schedule(entry, delay)
        else:
            self._poll_soon(entry)

    def secret_changed(self, namespace: str, name: str) -> None:
        """A Secret appeared, changed or went away: every endpoint using it is polled now, so a
        fixed credential shows at once and a revoked one stops being used at once."""
        if not self._running:
            return  # the start-up listing: every endpoint is due anyway
        for entry in self._endpoints.secret_users((namespace, name)):
            self._poll_soon(entry)

    def provider_changed(self, key: ObjectKey | None) -> None:
        """A provider object appeared, changed or went away (None: namespace labels changed, so
        any ClusterInferenceProvider's conditions may): its endpoints resolve again and poll."""
        for entry in self._endpoints.provider_users(key):
            if self._endpoints.resolve_again(entry):
                self._poll_soon(entry)

    def provider_users(self, key: ObjectKey) -> list[Mapping[str, Any]]:
        """The statuses of the endpoints naming a provider object, whoever polls them."""
        return self.handover.others.provider_users(key, self._endpoints.provider_users(key))

    def forget(self, namespace: str, name: str) -> None:
        self.handover.others.forget((namespace, name))
        entry = self._endpoints.forget((namespace, name))
        if entry is None:
            return
        self._polls.forget(entry.key)
        self._recorder.forget(entry.key)
        self._recorder.count_phase(entry.status.get("phase"), None)

    def __len__(self) -> int:
        return len(self._endpoints)

    def wake(self) -> None:
        """Look at the clock now rather than when the next item is due (a fake clock moved)."""
        self._polls.wake()

    def status_of(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        entry = self._endpoints.get((namespace, name))
        return entry.status if entry else None

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        self._running = True
        next_sweep = self._clock() + ACCOUNT_SWEEP_SECONDS
        while True:
            now = self._clock()
            if now >= next_sweep:
                # Accounts of deleted resources would keep their pooled sockets open forever.
                next_sweep = now + ACCOUNT_SWEEP_SECONDS
                self._tasks.start(self._accounts.close_idle(ACCOUNT_IDLE_SECONDS))
            for stale in self._recorder.gone_stale(now):
                self._tasks.start(self._recorder.mark_stale(stale))
            while (poll := self._polls.pop(now)) is not None:
                entry = self._endpoints.get(poll[0])
                if entry is not None and not self._polls.is_processing(entry.key):
                    self._start_group(entry, now, poll[1])
            due = (self._polls.next_at(), self._recorder.next_deadline())
            upcoming = min((t for t in due if t is not None), default=now + 60.0)
            # Timer slack: the polls falling due within it start together, sharing the event
            # loop's wake-ups; one by one they cost up to twice the CPU (docs/performance.md).
            wake_at = min(max(upcoming, now + self.settings.timer_slack), now + 60.0)
            await self._polls.wait(wake_at - now, until=wake_at)

    async def stop(self) -> None:
        """Cancel in-flight polls: they must not write through clients about to be closed."""
        self._running = False
        await self._tasks.cancel()

    async def drain(self) -> None:
        """Wait for in-flight polls (tests and shutdown)."""
        await self._tasks.drain()

    def _start_group(self, first: Endpoint, now: float, first_due: float) -> None:
        due = self._arrivals.holding(first.group, now)
        if due is not None:
            self._schedule(first, due - now, base=now)  # more of its group are arriving
            return
        # Polling a listed endpoint early costs nothing (the listing is fetched anyway) and pulls
        # members that drifted apart back into one request.
        horizon = now + max(self.settings.coalesce_window, first.interval / 2)
        members = [first]
        lags = [now - first_due]
        batches = first.parsed is not None and first.parsed.provider.batches
        for key in self._endpoints.group_members(first.group) if batches else ():
            other = self._endpoints.get(key)
            other_due = self._polls.due_at(key)
            if other is None or other is first or other_due is None or other_due > horizon:
                continue
            members.append(other)
            lags.append(now - other_due)
            self._polls.forget(key)
        for entry, lag in zip(members, lags, strict=True):
            self._polls.begin(entry.key)
            self._metrics.scheduler_lag.observe(max(0.0, lag))
        task = self._tasks.start(self._poll(members), name=f"poll {first.group!r}")
        self.handover.polling(members, task)

    async def _poll(self, entries: list[Endpoint]) -> None:
        try:
            await self._runner.run(entries)
        finally:
            self.handover.polled(entries)
            for entry in entries:
                dirty = self._polls.done(entry.key)
                current = self._endpoints.get(entry.key)
                if current is None:
                    continue
                if dirty or (current is not entry and current.key not in self._polls):
                    # Changed meanwhile, or deleted and created again: poll what it is now.
                    self._schedule(current, 0.0)
                elif entry.key not in self._polls and entry.parsed is not None:
                    # No result was recorded (cancelled by a hand-over: poll it again now).
                    self._schedule(entry, 0.0 if _cancelled() else entry.interval)

    # --- bookkeeping ----------------------------------------------------------------------

    def _provider_counts_changed(self) -> None:
        self.provider_status.changed()  # its endpoint count

    def _poll_soon(self, entry: Endpoint) -> None:
        """Poll a new or edited resource now; with its listing group's other arrivals if the
        provider lists. A poll in flight answers for the old spec: it is polled again after."""
        if self._polls.mark_dirty(entry.key):
            return
        if entry.parsed is None or not entry.parsed.provider.batches:
            self._schedule(entry, 0.0)
            return
        now = self._clock()
        self._schedule(entry, self._arrivals.arrived(entry.group, now) - now, base=now)

    def _schedule(self, entry: Endpoint, delay: float, *, base: float | None = None) -> None:
        self._polls.add(entry.key, (self._clock() if base is None else base) + delay)


def _account_outcome(
    scheduler: Scheduler,
    parsed: ParsedSpec | None,
    reason: str | None,
    message: str,
    paused_until: datetime | None = None,
) -> None:
    """A provider object's account call outcome (runner.AccountOutcome), told to its status."""
    if parsed is not None and parsed.account:
        scheduler.provider_status.record(parsed.account, reason, message, paused_until)


def _cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _phase(value: object) -> Phase | None:
    try:
        return Phase(str(value)) if value else None
    except ValueError:
        return None
