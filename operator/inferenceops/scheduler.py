"""When each InferenceEndpoint is polled, and which are polled together.

The informer tells it what exists (`observe`: upsert / forget); it owns time. Every poll and
every staleness deadline sits in a `ScheduledQueue`. When a poll is due, every endpoint of the same
provider account due within the coalescing window goes with it, so an adapter that can list
(DataArts, Friendli, RunPod) answers them with one paged request. What happens in a poll (Secret,
account, adapter, redaction, status, write, Events) is `poller.Poller`'s; how long to wait is
`timing.PollPolicy`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from . import status as st
from .accounts import AccountPool, origin
from .aiotasks import concurrently
from .api import InvalidSpecError, ParsedSpec, parse_spec
from .api.v1alpha1 import DEFAULT_POLL_INTERVAL_SECONDS
from .clock import SYSTEM_CLOCK, Clock
from .kube.secrets import SecretCache
from .kube.writer import StatusSink
from .poller import WAITING, Batch, Poller, Written
from .provider_objects import ObjectKey, ProviderObjects, Unresolved, ref_key
from .provider_status import AccountOutcomes, NoProviderStatus
from .providers import ErrorReason, Observation, Phase
from .timestamps import format_timestamp, parse_timestamp
from .timing import PollPolicy, shard_of, stale_after
from .workqueue import ScheduledQueue

__all__ = ["RECONCILE_ANNOTATION", "PollPolicy", "Scheduler", "SchedulerSettings", "shard_of"]

log = logging.getLogger(__name__)

RECONCILE_ANNOTATION = "inferenceops.io/reconcile-requested-at"
#: A provider account unused this long is closed (its client, pool and budget); the next poll on
#: it opens a new one. Far above any keep-alive, so nothing reusable is thrown away.
ACCOUNT_IDLE_SECONDS = 600.0
ACCOUNT_SWEEP_SECONDS = 60.0

Key = tuple[str, str]


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
    shard_index: int = 0
    shard_count: int = 1
    #: Write lastPollTime on its own at most this often; None: only along with a real change.
    poll_time_refresh: timedelta | None = None
    #: Send credentials to plain http:// URLs (--allow-insecure-http; emulators and tests).
    allow_insecure_http: bool = False


@dataclass(slots=True)
class _Arrivals:
    """New or edited resources of one group arriving in a burst (see `arrival_quiet`)."""

    first: float
    last: float

    def due(self, settings: SchedulerSettings) -> float:
        return min(self.last + settings.arrival_quiet, self.first + settings.arrival_max_wait)


@dataclass(eq=False)
class _Entry:
    """One tracked InferenceEndpoint (implements `poller.Polled`)."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    parsed: ParsedSpec | None
    spec_error: str | None
    status: dict[str, Any]
    reconcile_token: str | None
    last_success: datetime | None
    spec_reason: str = st.INVALID_SPEC
    #: The provider object its spec.providerRef names, whether or not that exists.
    provider_object: ObjectKey | None = None
    failures: int = 0
    in_flight: bool = False
    #: Set when the spec changed or a reconcile was asked for during an in-flight poll: that
    #: poll's result describes the old spec, so it is dropped and the resource polled again.
    repoll: bool = False
    group: Hashable = None
    #: When this process started tracking the resource: the staleness window starts no earlier,
    #: so a restart followed by one failed poll does not make an old lastPollTime look stale.
    tracked_since: datetime | None = None
    #: The (observation, generation, reconcile token) the current status was computed from: the
    #: same answer again cannot change the status, so a steady poll skips computing it.
    status_source: tuple[Observation, int, str | None] | None = None
    #: The (namespace, name) of the Secret its spec references, wanted from the SecretCache.
    secret: Key | None = None
    #: Monotonic time of the last successful poll (or of tracking start): the status goes stale
    #: `stale_after(interval)` later. A steady poll moves this, not its deadline in the queue.
    fresh_since: float = 0.0

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def interval(self) -> float:
        return self.parsed.poll_interval if self.parsed else DEFAULT_POLL_INTERVAL_SECONDS


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
    ) -> None:
        self.settings = settings or SchedulerSettings()
        self._secrets = secrets
        self._accounts = accounts
        #: A scheduler given none keeps its own, which tells it of changes (app.Core wires one
        #: shared with the provider objects' status).
        self.providers = (
            providers if providers is not None else ProviderObjects(changed=self.provider_changed)
        )
        #: Endpoints by the provider object their providerRef names.
        self._provider_users: dict[ObjectKey, set[Key]] = {}
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
        self._entries: dict[Key, _Entry] = {}
        self._groups: dict[Hashable, set[Key]] = {}
        #: When each endpoint is polled next; in-flight endpoints are not in it.
        self._polls: ScheduledQueue[Key] = ScheduledQueue()
        #: When each endpoint's status may have gone stale (`fresh_since` + timing.stale_after).
        #: A deadline that finds a later success is pushed back then, so a steady poll costs no
        #: heap push. Adding one does not wake the loop (half the wake-ups at 10,000): it is
        #: three intervals away, and the endpoint's next poll, which does wake it, comes first.
        self._deadlines: ScheduledQueue[Key] = ScheduledQueue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(self.settings.max_concurrent_polls)
        self._provider_gates: dict[str, asyncio.Semaphore] = {}
        #: Per host (scheme://host:port) not known to answer quickly.
        self._host_gates: _WhileUsed[str, asyncio.Semaphore] = _WhileUsed(
            lambda: asyncio.Semaphore(self.settings.max_concurrent_polls_per_host)
        )
        self._slow_lane = asyncio.Semaphore(self.settings.slow_lane_polls)
        self._phase_counts: dict[str, int] = {}
        #: Endpoints by the Secret they use, so a changed Secret re-polls all of them.
        self._secret_users: dict[Key, set[Key]] = {}
        self._arrivals: dict[Hashable, _Arrivals] = {}
        self._running = False
        #: One per endpoint being written: 10,000 idle locks would be memory for nothing.
        self._locks: _WhileUsed[Key, asyncio.Lock] = _WhileUsed(asyncio.Lock)
        #: Labelled children looked up once, not per poll.
        self._poll_counters: dict[tuple[str, str], Any] = {}

    # --- what the informer tells us -------------------------------------------------------

    def owns(self, namespace: str, name: str) -> bool:
        s = self.settings
        return shard_of(namespace, name, s.shard_count) == s.shard_index

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (`kube.informer`): type None for an object of a listing."""
        if event_type == "DELETED":
            meta = body.get("metadata") or {}
            self.forget(str(meta.get("namespace", "")), str(meta.get("name", "")))
        else:
            self.upsert(body, initial=event_type is None)

    def upsert(self, body: Mapping[str, Any], *, initial: bool = False) -> None:
        """A resource was listed, added or modified. `initial` marks the start-up listing."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if not self.owns(namespace, name):
            return
        if meta.get("deletionTimestamp"):
            self.forget(namespace, name)
            return
        generation = int(meta.get("generation") or 0)
        spec = body.get("spec") or {}
        token = (meta.get("annotations") or {}).get(RECONCILE_ANNOTATION)
        entry = self._entries.get((namespace, name))
        if entry is not None and entry.uid == str(meta.get("uid", "")):
            changed = generation != entry.generation or spec != entry.spec
            asked = token is not None and token != entry.reconcile_token
            if changed:
                self._apply_spec(entry, spec, generation)
            if asked:
                entry.reconcile_token = token
            if changed or asked:
                self._poll_soon(entry)
            return
        if entry is not None:  # same name, new object: the old one was deleted meanwhile
            self.forget(namespace, name)
        status = dict(body.get("status") or {})
        entry = _Entry(
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid", "")),
            generation=generation,
            spec=spec,
            parsed=None,
            spec_error=None,
            status=status,
            reconcile_token=status.get("lastHandledReconcileAt"),
            last_success=parse_timestamp(status.get("lastPollTime")),
            tracked_since=self._wallclock(),
        )
        self._apply_spec(entry, spec, generation)
        self._entries[entry.key] = entry
        self._count_phase(None, status.get("phase"))
        entry.fresh_since = self._clock()
        self._deadlines.add(entry.key, entry.fresh_since + stale_after(entry.interval))
        fresh = (
            not status
            or status.get("observedGeneration") != generation
            or (token is not None and token != entry.reconcile_token)
        )
        if token is not None:
            entry.reconcile_token = token
        if initial and not fresh:
            phase = _phase(status.get("phase"))
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
        for key in self._secret_users.get((namespace, name), ()):
            entry = self._entries.get(key)
            if entry is not None:
                self._poll_soon(entry)

    def provider_changed(self, key: ObjectKey | None) -> None:
        """A provider object appeared, changed or went away (None: namespace labels changed, so
        any ClusterInferenceProvider's conditions may): its endpoints resolve again and poll."""
        if key is None:
            users = {u for k, us in self._provider_users.items() if k[1] == "" for u in us}
        else:
            users = set(self._provider_users.get(key, ()))
        for user in users:
            entry = self._entries.get(user)
            if entry is None:
                continue
            before = (entry.parsed, entry.spec_error)
            self._apply_spec(entry, entry.spec, entry.generation)
            if (entry.parsed, entry.spec_error) != before:
                self._poll_soon(entry)

    def provider_users(self, key: ObjectKey) -> list[Mapping[str, Any]]:
        """The statuses of the endpoints naming a provider object (for its status)."""
        return [
            self._entries[user].status
            for user in self._provider_users.get(key, ())
            if user in self._entries
        ]

    def forget(self, namespace: str, name: str) -> None:
        entry = self._entries.pop((namespace, name), None)
        if entry is None:
            return
        self._leave_group(entry)
        self._use_secret(entry, None)
        self._use_provider(entry, None)
        self._polls.forget(entry.key)
        self._deadlines.forget(entry.key)
        self._count_phase(entry.status.get("phase"), None)

    def __len__(self) -> int:
        return len(self._entries)

    def wake(self) -> None:
        """Look at the clock now rather than when the next item is due (a fake clock moved)."""
        self._polls.wake()

    def status_of(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        entry = self._entries.get((namespace, name))
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
                self._track(asyncio.create_task(self._accounts.close_idle(ACCOUNT_IDLE_SECONDS)))
            while (deadline := self._deadlines.pop(now)) is not None:
                entry = self._entries.get(deadline[0])
                if entry is None:
                    continue
                stale_at = entry.fresh_since + stale_after(entry.interval)
                if stale_at > now:  # polled successfully since the deadline was set
                    self._deadlines.add(entry.key, stale_at)
                else:
                    self._track(asyncio.create_task(self._mark_stale(entry)))
            while (poll := self._polls.pop(now)) is not None:
                entry = self._entries.get(poll[0])
                if entry is not None and not entry.in_flight:
                    self._start_group(entry, now, poll[1])
            upcoming = min(
                (t for t in (self._polls.next_at(), self._deadlines.next_at()) if t is not None),
                default=now + 60.0,
            )
            # Timer slack: the polls falling due within it start together, sharing the event
            # loop's wake-ups; one by one they cost up to twice the CPU (docs/performance.md).
            wake_at = min(max(upcoming, now + self.settings.timer_slack), now + 60.0)
            await self._polls.wait(wake_at - now, until=wake_at)

    async def stop(self) -> None:
        """Cancel in-flight polls: they must not write through clients about to be closed."""
        self._running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for in-flight polls (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _start_group(self, first: _Entry, now: float, first_due: float) -> None:
        arrivals = self._arrivals.get(first.group)
        if arrivals is not None:
            due = arrivals.due(self.settings)
            if now < due:
                self._schedule(first, due - now, base=now)  # more of its group are arriving
                return
            del self._arrivals[first.group]
        # Polling a listed endpoint early costs nothing (the listing is fetched anyway) and pulls
        # members that drifted apart back into one request.
        horizon = now + max(self.settings.coalesce_window, first.interval / 2)
        members = [first]
        lags = [now - first_due]
        batches = first.parsed is not None and first.parsed.provider.batches
        for key in self._groups.get(first.group, ()) if batches else ():
            other = self._entries.get(key)
            other_due = self._polls.due_at(key)
            if other is None or other is first or other_due is None or other_due > horizon:
                continue
            members.append(other)
            lags.append(now - other_due)
            self._polls.forget(key)
        for entry, lag in zip(members, lags, strict=True):
            entry.in_flight = True
            self._metrics.scheduler_lag.observe(max(0.0, lag))
        self._track(asyncio.create_task(self._poll(members), name=f"poll {first.group!r}"))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self, entries: list[_Entry]) -> None:
        try:
            batches, early = self._poller.batches(entries)
            for entry, outcome in early:
                if outcome is not WAITING:  # a Secret being read: its arrival re-polls
                    if outcome.reason in (st.SECRET_MISSING, st.INSECURE_URL):
                        self._account_outcome(entry.parsed, outcome.reason, outcome.message)
                    await self._record(entry, outcome)
            if batches:
                await concurrently([self._poll_batch(batch) for batch in batches])
        except Exception:
            # A bug must be loud, not a silent "Unknown"; the resources are retried later.
            log.exception("poll of %d resource(s) failed unexpectedly", len(entries))
            for entry in entries:
                failure = st.Failure(
                    st.INTERNAL_ERROR, "the operator failed to process the poll; see its logs"
                )
                await self._record(entry, failure)
        finally:
            for entry in entries:
                entry.in_flight = False
                if self._entries.get(entry.key) is not entry:
                    continue
                if entry.repoll:
                    entry.repoll = False
                    self._schedule(entry, 0.0)
                elif entry.key not in self._polls and entry.parsed is not None:
                    self._schedule(entry, entry.interval)  # no result was recorded

    async def _poll_batch(self, batch: Batch[_Entry]) -> None:
        paused = self._poller.paused_for(batch)
        if paused is not None:
            # The provider asked this account to wait: say so and until when, and come back
            # then, instead of holding poll slots while its requests sleep.
            until = self._wallclock() + timedelta(seconds=paused)
            failure = st.Failure(
                ErrorReason.RATE_LIMITED.value,
                "the provider asked this account to wait (Retry-After); polling resumes at "
                + format_timestamp(until),
            )
            self._account_outcome(batch.parsed, failure.reason, failure.message, until)
            for entry, _ in batch.members:
                if not entry.repoll:
                    await self._record(entry, failure, at=self._clock() + paused)
            return
        async with self._poll_slot(batch):
            results = await self._poller.observe(batch)
        if batch.parsed.account is not None:
            self._report_call(batch, [r for _, r in results])
        # One clock reading and one jitter draw for the batch: its members stay due together
        # (so the next cycle is one listing again), however long their writes take.
        timing = (self._clock(), self.settings.policy.jitter_factor())
        recordings = []
        for entry, result in results:
            if isinstance(result, Observation) and self._record_unchanged(entry, result, timing):
                continue
            recordings.append(self._record(entry, result, timing=timing))
        if recordings:
            await concurrently(recordings)

    def _record_unchanged(
        self, entry: _Entry, result: Observation, timing: tuple[float, float]
    ) -> bool:
        """Schedule the next poll and return True when `result` is what the status already
        shows: the steady-state case, done without a coroutine (a Task each in a listing of
        thousands showed in the profile)."""
        if entry.repoll or self.settings.poll_time_refresh is not None:
            return False
        if (result, entry.generation, entry.reconcile_token) != entry.status_source:
            return False
        base, factor = timing
        self._succeeded(entry, result, base)
        delay = self.settings.policy.after_success(result.phase, entry.interval) * factor
        self._schedule(entry, delay, base=base)
        return True

    def _succeeded(self, entry: _Entry, result: Observation, base: float) -> None:
        entry.failures = 0
        entry.last_success = self._wallclock()
        entry.fresh_since = base
        if entry.key not in self._deadlines:  # none since it last went stale
            self._deadlines.add(entry.key, base + stale_after(entry.interval))
        parsed = entry.parsed
        self._count_poll(parsed.provider.name if parsed else "-", "ok")

    async def _record(
        self,
        entry: _Entry,
        result: Observation | st.Failure,
        *,
        timing: tuple[float, float] | None = None,
        at: float | None = None,
    ) -> None:
        """Turn one poll result into status, write it if it changed, and schedule the next poll
        at `timing` = (base clock, jitter factor), shared by a batch, or at `at`."""
        base, factor = timing or (self._clock(), self.settings.policy.jitter_factor())
        if entry.repoll:
            return  # answered for a spec that has changed since; the re-poll will write
        policy = self.settings.policy
        if isinstance(result, Observation):
            if self._record_unchanged(entry, result, (base, factor)):
                return
            self._succeeded(entry, result, base)
            source: tuple[Observation, int, str | None] | None = (
                result,
                entry.generation,
                entry.reconcile_token,
            )
            delay = policy.after_success(result.phase, entry.interval) * factor
        else:
            source = None
            entry.failures += 1
            self._count_poll(entry.parsed.provider.name if entry.parsed else "-", result.reason)
            if result.reason in st.UNPOLLABLE_REASONS:
                # Nothing to poll until the spec or its provider object changes.
                delay = float("inf")
            else:
                delay = factor * policy.after_failure(
                    result.reason, entry.failures, entry.interval, result.retry_after
                )
        current = await self._write(entry, result)
        entry.status_source = source if current else None
        if self._entries.get(entry.key) is not entry:
            return
        if at is None:
            self._schedule(entry, delay, base=base)
        else:
            self._polls.add(entry.key, at)

    async def _mark_stale(self, entry: _Entry) -> None:
        """The staleness deadline passed with no successful poll, whatever held polls up."""
        await self._write(entry, None)

    async def _write(self, entry: _Entry, result: Observation | st.Failure | None) -> bool:
        """Compute the status after `result` (None: a staleness deadline) and write what changed;
        True when `entry.status` now matches it."""
        async with self._writing(entry.key):
            if self._entries.get(entry.key) is not entry:
                return False  # deleted while we polled
            now = self._wallclock()
            if result is None:
                new = st.after_deadline(entry.status, self._poller.resource_of(entry, now))
            else:
                new = self._poller.status_after(entry, result, now)
            old = entry.status
            written = await self._poller.write(entry, new, now)
            if written is Written.GONE:
                self.forget(entry.namespace, entry.name)
                return False
            if written is Written.FAILED:
                return False
            if written is Written.UNCHANGED:
                return True
            entry.status = new
            if entry.provider_object is not None:
                self.provider_status.changed()  # its Ready count may have moved
        self._count_phase(old.get("phase"), new.get("phase"))
        changed_at = result.changed_at if isinstance(result, Observation) else None
        if changed_at is not None and old.get("phase") != new.get("phase") and old:
            self._metrics.change_to_write.labels(new.get("provider", "-")).observe(
                max(0.0, (self._wallclock() - changed_at).total_seconds())
            )
        return True

    @contextlib.asynccontextmanager
    async def _poll_slot(self, batch: Batch[_Entry]) -> AsyncIterator[None]:
        """A global poll slot, taken last: waiting for the slow lane, the host's or the
        provider's share holds none (docs/operations.md, "Poll slots")."""
        host = _host_of(batch)
        lane = self._accounts.lane(batch.account, host)
        slow_lane = self._slow_lane if lane == "slow" else contextlib.nullcontext()
        provider = self._provider_gates.get(batch.provider)
        if provider is None:
            provider = self._provider_gates[batch.provider] = asyncio.Semaphore(
                self.settings.max_concurrent_polls_per_provider
            )
        if lane == "known":
            # Answering quickly earns a host its provider's share: one host may serve thousands
            # of healthy endpoints (a SaaS API, the benchmark's emulator).
            async with provider, self._gate:
                yield
            return
        async with slow_lane, self._host_gates.held(host), provider, self._gate:
            yield

    @contextlib.asynccontextmanager
    async def _writing(self, key: Key) -> AsyncIterator[None]:
        """Held while an endpoint's status is computed and written: a staleness deadline and a
        poll's result must not both patch from the same old status."""
        async with self._locks.held(key):
            yield

    # --- bookkeeping ----------------------------------------------------------------------

    def _apply_spec(self, entry: _Entry, spec: Mapping[str, Any], generation: int) -> None:
        entry.spec, entry.generation = spec, generation
        entry.spec_reason = st.INVALID_SPEC
        self._use_provider(entry, ref_key(entry.namespace, spec))
        try:
            if spec.get("providerRef") is None:
                entry.parsed = parse_spec(spec)
            else:
                resolved = self.providers.resolve(entry.namespace, spec)
                entry.parsed = replace(parse_spec(resolved.spec), account=resolved.account)
            entry.spec_error = None
        except InvalidSpecError as err:
            entry.parsed, entry.spec_error = None, str(err)
        except Unresolved as err:
            entry.parsed, entry.spec_error, entry.spec_reason = None, err.message, err.reason
        self._leave_group(entry)
        entry.group = self._group_of(entry)
        self._groups.setdefault(entry.group, set()).add(entry.key)
        secret = None
        parsed = entry.parsed
        # A refused poll reads no Secret: not even into the cache.
        if (
            parsed is not None
            and (refs := parsed.config.secret_refs())
            and self._poller.refusal(parsed) is None
        ):
            account = parsed.account
            secret = (account.secret_namespace if account else entry.namespace, refs[0].name)
        self._use_secret(entry, secret)

    def _report_call(self, batch: Batch[_Entry], results: list[Observation | st.Failure]) -> None:
        """A provider object's account was called: any answer means its credentials were
        accepted; else the first failure says why (and until when, if it was a 429)."""
        failures = [r for r in results if isinstance(r, st.Failure)]
        if len(failures) < len(results):
            self._account_outcome(batch.parsed, None, "")
        elif failures:
            left = self._poller.paused_for(batch)
            until = self._wallclock() + timedelta(seconds=left) if left else None
            self._account_outcome(batch.parsed, failures[0].reason, failures[0].message, until)

    def _account_outcome(
        self,
        parsed: ParsedSpec | None,
        reason: str | None,
        message: str,
        paused_until: datetime | None = None,
    ) -> None:
        if parsed is not None and parsed.account:
            self.provider_status.record(parsed.account, reason, message, paused_until)

    def _use_provider(self, entry: _Entry, key: ObjectKey | None) -> None:
        if key == entry.provider_object:
            return
        self.provider_status.changed()  # its endpoint count
        if entry.provider_object is not None:
            users = self._provider_users.get(entry.provider_object)
            if users is not None:
                users.discard(entry.key)
                if not users:
                    del self._provider_users[entry.provider_object]
        if key is not None:
            self._provider_users.setdefault(key, set()).add(entry.key)
        entry.provider_object = key

    def _use_secret(self, entry: _Entry, secret: Key | None) -> None:
        if secret == entry.secret:
            return
        if entry.secret is not None:
            self._secrets.unwant(*entry.secret)
            users = self._secret_users.get(entry.secret)
            if users is not None:
                users.discard(entry.key)
                if not users:
                    del self._secret_users[entry.secret]
        if secret is not None:
            self._secrets.want(*secret)
            self._secret_users.setdefault(secret, set()).add(entry.key)
        entry.secret = secret

    def _group_of(self, entry: _Entry) -> Hashable:
        parsed = entry.parsed
        if parsed is None:
            return ("invalid", entry.key)
        secret = None
        if refs := parsed.config.secret_refs():
            account = parsed.account
            namespace = account.secret_namespace if account else entry.namespace
            secret = (namespace, refs[0].name, tuple(r.key for r in refs))
        return (
            parsed.provider.name,
            parsed.provider.account_key(parsed.config),
            secret,
            parsed.account,
        )

    def _leave_group(self, entry: _Entry) -> None:
        members = self._groups.get(entry.group)
        if members is not None:
            members.discard(entry.key)
            if not members:
                del self._groups[entry.group]
                self._arrivals.pop(entry.group, None)

    def _poll_soon(self, entry: _Entry) -> None:
        """Poll a new or edited resource now; with its listing group's other arrivals if the
        provider lists. A poll in flight answers for the old spec: it is polled again after."""
        if entry.in_flight:
            entry.repoll = True
            return
        if entry.parsed is None or not entry.parsed.provider.batches:
            self._schedule(entry, 0.0)
            return
        now = self._clock()
        arrivals = self._arrivals.get(entry.group)
        if arrivals is None:
            arrivals = self._arrivals[entry.group] = _Arrivals(first=now, last=now)
        arrivals.last = now
        self._schedule(entry, arrivals.due(self.settings) - now, base=now)

    def _schedule(self, entry: _Entry, delay: float, *, base: float | None = None) -> None:
        self._polls.add(entry.key, (self._clock() if base is None else base) + delay)

    def _count_poll(self, provider: str, outcome: str) -> None:
        counter = self._poll_counters.get((provider, outcome))
        if counter is None:
            counter = self._poll_counters[(provider, outcome)] = self._metrics.polls.labels(
                provider, outcome
            )
        counter.inc()

    def _count_phase(self, old: str | None, new: str | None) -> None:
        if old == new:
            return
        for phase, delta in ((old, -1), (new, 1)):
            if phase:
                self._phase_counts[phase] = self._phase_counts.get(phase, 0) + delta
                self._metrics.endpoints.labels(phase).set(self._phase_counts[phase])


def _phase(value: object) -> Phase | None:
    try:
        return Phase(str(value)) if value else None
    except ValueError:
        return None


_K = TypeVar("_K", bound=Hashable)
_G = TypeVar("_G", asyncio.Lock, asyncio.Semaphore)


class _WhileUsed(Generic[_K, _G]):
    """A lock or semaphore per key that exists only while someone holds or waits for it."""

    def __init__(self, make: Callable[[], _G]) -> None:
        self._make: Callable[[], _G] = make
        self._held: dict[_K, tuple[_G, int]] = {}

    @contextlib.asynccontextmanager
    async def held(self, key: _K) -> AsyncIterator[None]:
        gate, users = self._held.get(key) or (self._make(), 0)
        self._held[key] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (gate, users - 1)


def _host_of(batch: Batch[Any]) -> str:
    """The host a batch's requests go to: its account key's base URL (every adapter's key holds
    one), else the provider's own name (one default host)."""
    key = batch.account[0] if isinstance(batch.account, tuple) else batch.account
    for part in key if isinstance(key, tuple) else (key,):
        if isinstance(part, str) and part.startswith(("http://", "https://")):
            return origin(part)
    return batch.provider
