"""One scheduler for every resource: when each is due, which share a request, backoff, writes.

kopf handlers only tell it what exists (`upsert`, `forget`); it owns time. Due polls sit in one
heap. When a poll is due, every target of the same provider account due within the coalescing
window goes with it, so an adapter that can list (DataArts, Friendli, RunPod) answers them with
one paged request. Results flow one way: adapter → status.py (pure) → writer (only on change).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import random
import time
import zlib
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import status as st
from .accounts import AccountPool, credential_fingerprint
from .api import InvalidSpecError, ParsedSpec, parse_spec
from .kube.secrets import SecretCache, SecretMissing, SecretPending
from .kube.writer import StatusSink, WriteError
from .providers import CredentialedConfig, ErrorReason, Observation, Phase, ProviderError, Target
from .providers.base import concurrently

__all__ = ["RECONCILE_ANNOTATION", "PollPolicy", "Scheduler", "SchedulerSettings", "shard_of"]

log = logging.getLogger(__name__)

RECONCILE_ANNOTATION = "inferenceops.io/reconcile-requested-at"
#: A provider account unused this long is closed (its client, pool and budget); the next poll on
#: it opens a new one. Far above any keep-alive, so nothing reusable is thrown away.
ACCOUNT_IDLE_SECONDS = 600.0
ACCOUNT_SWEEP_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How poll speed follows state (docs/operations.md); factors multiply `spec.pollInterval`."""

    transitional_factor: float = 1 / 3
    terminal_factor: float = 4.0
    not_found_factor: float = 4.0
    min_interval: float = 5.0
    #: First retry after a failed poll; doubles per failure, never beyond the interval.
    backoff_base: float = 2.0
    jitter: float = 0.1

    def after_success(self, phase: Phase, interval: float) -> float:
        if phase in (Phase.PROVISIONING, Phase.UPDATING, Phase.WAKING, Phase.TERMINATING):
            return max(self.min_interval, interval * self.transitional_factor)
        if phase is Phase.TERMINATED:
            return interval * self.terminal_factor
        return interval

    def after_failure(
        self, reason: str, failures: int, interval: float, retry_after: float | None
    ) -> float:
        if reason == ErrorReason.NOT_FOUND:
            return interval * self.not_found_factor
        if reason in st.STALLED_REASONS:
            return interval
        backoff = min(interval, self.backoff_base * 2.0 ** max(0, failures - 1))
        return max(backoff, retry_after or 0.0)

    def jitter_factor(self) -> float:
        # Only ever earlier: a change must show within one interval, never 1.1 intervals.
        return random.uniform(1 - self.jitter, 1.0)


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    policy: PollPolicy = field(default_factory=PollPolicy)
    #: Targets of one account due within this many seconds are polled together.
    coalesce_window: float = 10.0
    #: New or edited resources of a listing provider wait until none has arrived in their group
    #: for `arrival_quiet` seconds (at most `arrival_max_wait` after the first), so a start-up
    #: listing or a GitOps sync of thousands costs a few listings, not one per resource.
    arrival_quiet: float = 0.5
    arrival_max_wait: float = 5.0
    #: Concurrent account polls in flight (each may hold several HTTP requests).
    max_concurrent_polls: int = 64
    #: Concurrent account polls per provider, so one slow provider cannot hold every slot.
    max_concurrent_polls_per_provider: int = 32
    #: After a restart, polls of resources that already have a status are spread over this
    #: fraction of their interval instead of all firing at once.
    restart_spread: float = 1.0
    shard_index: int = 0
    shard_count: int = 1
    #: Write lastPollTime on its own at most this often; None: only along with a real change.
    poll_time_refresh: timedelta | None = None


def shard_of(namespace: str, name: str, count: int) -> int:
    """A stable shard for a resource; crc32 is stable across processes, unlike hash()."""
    return zlib.crc32(f"{namespace}/{name}".encode()) % count if count > 1 else 0


@dataclass(slots=True)
class _Arrivals:
    """New or edited resources of one group arriving in a burst (see `arrival_quiet`)."""

    first: float
    last: float

    def due(self, settings: SchedulerSettings) -> float:
        return min(self.last + settings.arrival_quiet, self.first + settings.arrival_max_wait)


@dataclass(eq=False)
class _Entry:
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
    due: float = 0.0
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
    secret: tuple[str, str] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def interval(self) -> float:
        return self.parsed.poll_interval if self.parsed else 30.0


class Scheduler:
    def __init__(
        self,
        writer: StatusSink,
        secrets: SecretCache,
        accounts: AccountPool,
        settings: SchedulerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings or SchedulerSettings()
        self._writer = writer
        self._secrets = secrets
        self._accounts = accounts
        self._metrics = accounts.metrics
        self._clock = clock
        self._wallclock = wallclock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._groups: dict[Hashable, set[tuple[str, str]]] = {}
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._gate = asyncio.Semaphore(self.settings.max_concurrent_polls)
        self._provider_gates: dict[str, asyncio.Semaphore] = {}
        self._phase_counts: dict[str, int] = {}
        #: Resources waiting for a Secret, by (namespace, secret name): polled when it appears.
        self._awaiting_secret: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self._arrivals: dict[Hashable, _Arrivals] = {}
        #: Labelled children looked up once, not per poll.
        self._poll_counters: dict[tuple[str, str], Any] = {}

    # --- what kopf tells us -------------------------------------------------------------

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
            if (changed or asked) and entry.in_flight:
                entry.repoll = True
            elif changed or asked:
                self._schedule_soon(entry)
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
            last_success=st.parse_timestamp(status.get("lastPollTime")),
            tracked_since=self._wallclock(),
        )
        self._apply_spec(entry, spec, generation)
        self._entries[entry.key] = entry
        self._count_phase(None, status.get("phase"))
        fresh = (
            not status
            or status.get("observedGeneration") != generation
            or (token is not None and token != entry.reconcile_token)
        )
        if token is not None:
            entry.reconcile_token = token
        if initial and not fresh:
            self._schedule(entry, random.uniform(0, entry.interval * self.settings.restart_spread))
        else:
            self._schedule_soon(entry)

    def secret_changed(self, namespace: str, name: str) -> None:
        """A Secret appeared or changed: resources that were missing it are polled now."""
        for key in self._awaiting_secret.pop((namespace, name), set()):
            entry = self._entries.get(key)
            if entry is None:
                continue
            if entry.in_flight:
                entry.repoll = True  # that poll may have read the cache before the Secret came
            else:
                self._schedule_soon(entry)

    def forget(self, namespace: str, name: str) -> None:
        entry = self._entries.pop((namespace, name), None)
        if entry is None:
            return
        self._leave_group(entry)
        if entry.secret is not None:
            self._secrets.unwant(*entry.secret)
        self._count_phase(entry.status.get("phase"), None)

    def __len__(self) -> int:
        return len(self._entries)

    def status_of(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        entry = self._entries.get((namespace, name))
        return entry.status if entry else None

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        next_sweep = self._clock() + ACCOUNT_SWEEP_SECONDS
        while True:
            now = self._clock()
            if now >= next_sweep:
                # Accounts of deleted resources would keep their pooled sockets open forever.
                next_sweep = now + ACCOUNT_SWEEP_SECONDS
                self._track(asyncio.create_task(self._accounts.close_idle(ACCOUNT_IDLE_SECONDS)))
            while self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                entry = self._entries.get(key)
                # Each reschedule pushes a new item; only the latest one of an entry counts.
                if entry is None or entry.due != due or entry.in_flight:
                    continue
                self._start_group(entry, now)
            timeout = self._heap[0][0] - now if self._heap else 60.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, min(timeout, 60.0)))

    async def stop(self) -> None:
        """Cancel in-flight polls: they must not write through clients about to be closed."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for in-flight polls (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _start_group(self, first: _Entry, now: float) -> None:
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
        batches = first.parsed is not None and first.parsed.provider.batches
        for key in self._groups.get(first.group, ()) if batches else ():
            other = self._entries.get(key)
            if (
                other is not None
                and other is not first
                and not other.in_flight
                and other.due <= horizon
            ):
                members.append(other)
        for entry in members:
            entry.in_flight = True
            self._metrics.scheduler_lag.observe(max(0.0, now - entry.due))
            # Taken: the heap items members still have are stale from here on.
            entry.due = math.inf
        self._track(asyncio.create_task(self._poll(members), name=f"poll {first.group!r}"))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self, entries: list[_Entry]) -> None:
        try:
            parsed = entries[0].parsed
            provider = parsed.provider.name if parsed else "-"
            gate = self._provider_gates.setdefault(
                provider, asyncio.Semaphore(self.settings.max_concurrent_polls_per_provider)
            )
            async with gate, self._gate:
                await self._poll_group(entries)
        except Exception:
            # A bug must be loud, not a silent "Unknown"; the resources are retried later.
            log.exception("poll of %d resource(s) failed unexpectedly", len(entries))
            for entry in entries:
                failure = st.Failure(
                    st.INTERNAL_ERROR, "the operator failed to process the poll; see its logs"
                )
                await self._record(entry, failure, retry_after=None)
        finally:
            for entry in entries:
                entry.in_flight = False
                if self._entries.get(entry.key) is not entry:
                    continue
                if entry.repoll:
                    entry.repoll = False
                    self._schedule(entry, 0.0)
                elif entry.due == math.inf and entry.parsed is not None:
                    self._schedule(entry, entry.interval)  # no result was recorded

    async def _poll_group(self, entries: list[_Entry]) -> None:
        targets: list[Target[Any]] = []
        by_key: dict[str, tuple[_Entry, str | None]] = {}
        for entry in entries:
            if entry.parsed is None:
                await self._record(
                    entry, st.Failure(st.INVALID_SPEC, entry.spec_error or ""), retry_after=None
                )
                continue
            credential = None
            if isinstance(entry.parsed.config, CredentialedConfig):
                try:
                    credential = self._secrets.lookup(
                        entry.namespace, entry.parsed.config.credentials_secret_ref
                    )
                except SecretMissing as err:
                    ref = entry.parsed.config.credentials_secret_ref
                    self._awaiting_secret.setdefault((entry.namespace, ref.name), set()).add(
                        entry.key
                    )
                    if isinstance(err, SecretPending):
                        continue  # it exists and is being read: polled again once it is
                    await self._record(
                        entry, st.Failure(st.SECRET_MISSING, str(err)), retry_after=None
                    )
                    continue
            key = f"{entry.namespace}/{entry.name}"
            by_key[key] = (entry, credential)
            targets.append(Target(key=key, config=entry.parsed.config, credential=credential))
        # One group can hold targets whose Secrets hold different credentials.
        by_credential: dict[str, list[Target[Any]]] = {}
        for target in targets:
            by_credential.setdefault(credential_fingerprint(target.credential), []).append(target)
        for fingerprint, batch in by_credential.items():
            parsed = by_key[batch[0].key][0].parsed
            assert parsed is not None
            provider = parsed.provider
            account = self._accounts.get(
                provider.name, (provider.account_key(parsed.config), fingerprint)
            )
            try:
                results = await provider.observe(account.client, batch)
            except ProviderError as err:
                results = {t.key: err for t in batch}
            # One clock reading and one jitter draw for the batch: its members stay due together
            # (so the next cycle is one listing again), however long their writes take.
            timing = (self._clock(), self.settings.policy.jitter_factor())
            recordings = []
            for target in batch:
                entry, credential = by_key[target.key]
                result = results.get(target.key) or ProviderError(
                    ErrorReason.BAD_RESPONSE, "the provider adapter returned no result"
                )
                if isinstance(result, ProviderError):
                    message = result.message
                    if credential:
                        message = message.replace(credential, "***")
                    failure = st.Failure(result.reason.value, message)
                    recordings.append(
                        self._record(entry, failure, result.retry_after, timing=timing)
                    )
                elif not self._record_unchanged(entry, result, timing):
                    recordings.append(self._record(entry, result, None, timing=timing))
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
        entry.failures = 0
        entry.last_success = self._wallclock()
        parsed = entry.parsed
        self._count_poll(parsed.provider.name if parsed else "-", "ok")
        base, factor = timing
        self._schedule(
            entry,
            self.settings.policy.after_success(result.phase, entry.interval) * factor,
            base=base,
        )
        return True

    async def _record(
        self,
        entry: _Entry,
        result: Observation | st.Failure,
        retry_after: float | None,
        *,
        timing: tuple[float, float] | None = None,
    ) -> None:
        """Turn one poll result into status, write it if it changed, and schedule the next poll
        at `timing` = (base clock, jitter factor), shared by a batch."""
        base, factor = timing or (self._clock(), self.settings.policy.jitter_factor())
        if entry.repoll:
            return  # answered for a spec that has changed since; the re-poll will write
        now_wall = self._wallclock()
        policy = self.settings.policy
        parsed = entry.parsed
        source = None
        if isinstance(result, Observation):
            if self._record_unchanged(entry, result, (base, factor)):
                return
            source = (result, entry.generation, entry.reconcile_token)
        resource = st.Resource(
            generation=entry.generation,
            provider=parsed.provider.name if parsed else None,
            endpoint=parsed.provider.endpoint_label(parsed.config) if parsed else None,
            poll_interval=entry.interval,
            now=now_wall,
            last_success=max(
                (t for t in (entry.last_success, entry.tracked_since) if t is not None),
                default=None,
            ),
            reconcile_token=entry.reconcile_token,
        )
        if isinstance(result, Observation):
            new = st.after_observation(entry.status, result, resource)
            entry.failures = 0
            entry.last_success = now_wall
            delay = policy.after_success(result.phase, entry.interval)
            outcome = "ok"
        else:
            new = st.after_failure(entry.status, result, resource)
            entry.failures += 1
            if result.reason == st.INVALID_SPEC:
                delay = math.inf  # nothing to poll until the spec changes
            else:
                delay = policy.after_failure(
                    result.reason, entry.failures, entry.interval, retry_after
                )
            outcome = result.reason
        self._count_poll(resource.provider or "-", outcome)
        changed_at = result.changed_at if isinstance(result, Observation) else None
        current = await self._write(entry, new, now_wall, changed_at)
        entry.status_source = source if current else None
        if self._entries.get(entry.key) is entry:
            self._schedule(entry, delay * factor if math.isfinite(delay) else delay, base=base)

    async def _write(
        self, entry: _Entry, new: dict[str, Any], now: datetime, changed_at: datetime | None
    ) -> bool:
        """Write what changed; True when `entry.status` now matches `new`."""
        patch = st.status_patch(entry.status, new, now, self.settings.poll_time_refresh)
        if patch is None:
            return True
        if self._entries.get(entry.key) is not entry:
            return False  # deleted while we polled
        old = entry.status
        try:
            alive = await self._writer.patch_status(entry, patch)
        except WriteError as err:
            log.warning("%s", err)
            return False
        if not alive:
            self.forget(entry.namespace, entry.name)
            return False
        entry.status = new
        self._count_phase(old.get("phase"), new.get("phase"))
        if changed_at is not None and old.get("phase") != new.get("phase") and old:
            self._metrics.change_to_write.labels(new.get("provider", "-")).observe(
                max(0.0, (datetime.now(UTC) - changed_at).total_seconds())
            )
        for event in st.events_between(old, new):
            await self._writer.emit(entry, event)
        return True

    # --- bookkeeping ----------------------------------------------------------------------

    def _apply_spec(self, entry: _Entry, spec: Mapping[str, Any], generation: int) -> None:
        entry.spec, entry.generation = spec, generation
        try:
            entry.parsed, entry.spec_error = parse_spec(spec), None
        except InvalidSpecError as err:
            entry.parsed, entry.spec_error = None, str(err)
        self._leave_group(entry)
        entry.group = self._group_of(entry)
        self._groups.setdefault(entry.group, set()).add(entry.key)
        secret = None
        if entry.parsed is not None and isinstance(entry.parsed.config, CredentialedConfig):
            secret = (entry.namespace, entry.parsed.config.credentials_secret_ref.name)
        if secret != entry.secret:
            if entry.secret is not None:
                self._secrets.unwant(*entry.secret)
            if secret is not None:
                self._secrets.want(*secret)
            entry.secret = secret

    def _group_of(self, entry: _Entry) -> Hashable:
        parsed = entry.parsed
        if parsed is None:
            return ("invalid", entry.key)
        secret = None
        if isinstance(parsed.config, CredentialedConfig):
            ref = parsed.config.credentials_secret_ref
            secret = (entry.namespace, ref.name, ref.key)
        return (parsed.provider.name, parsed.provider.account_key(parsed.config), secret)

    def _leave_group(self, entry: _Entry) -> None:
        members = self._groups.get(entry.group)
        if members is not None:
            members.discard(entry.key)
            if not members:
                del self._groups[entry.group]
                self._arrivals.pop(entry.group, None)

    def _schedule_soon(self, entry: _Entry) -> None:
        """Poll a new or edited resource now; with its listing group's other arrivals if the
        provider lists."""
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
        entry.due = (self._clock() if base is None else base) + delay
        if math.isfinite(entry.due):
            self._seq += 1
            heapq.heappush(self._heap, (entry.due, self._seq, entry.key))
            self._wake.set()

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
