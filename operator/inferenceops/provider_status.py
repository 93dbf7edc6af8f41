"""`.status` of InferenceProviders and ClusterInferenceProviders: whether the last call with the
account's credentials was authorized, how many endpoints use it and how many are Ready.

The scheduler reports each account call's outcome (`record`); `ProviderStatus.run` recomputes
the statuses when something changed and writes only what differs from what the object already
shows, with an Event when Ready changes. `lastSuccessTime` moves with Ready, or when it is more
than `success_refresh` behind: a steady provider costs one write per provider object per
`success_refresh`, not one per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from .api import AccountSource
from .api.provider_kinds import NAMESPACED_KIND, ProviderObjectStatus
from .api.v1alpha1 import ConditionStatus
from .clock import SYSTEM_CLOCK, Clock
from .provider_objects import ObjectKey, ProviderObjects
from .providers import ErrorReason
from .status import (
    INSECURE_URL,
    SECRET_MISSING,
    EventSpec,
    condition,
    merge_patch,
    set_condition,
)
from .timestamps import format_timestamp, parse_timestamp

__all__ = ["CallOutcome", "ProviderStatus", "ProviderStatusSink", "provider_status"]

log = logging.getLogger(__name__)

AUTHORIZED = "Authorized"
NO_CALLS = "NoCallsYet"
#: What the provider said about the credentials; any other answer (an endpoint NotFound, an odd
#: body) still means they were accepted.
_NOT_READY = {
    ErrorReason.UNAUTHORIZED.value: ErrorReason.UNAUTHORIZED.value,
    SECRET_MISSING: SECRET_MISSING,
    ErrorReason.RATE_LIMITED.value: ErrorReason.RATE_LIMITED.value,
    ErrorReason.UNREACHABLE.value: ErrorReason.UNREACHABLE.value,
    ErrorReason.TIMEOUT.value: ErrorReason.UNREACHABLE.value,
    INSECURE_URL: INSECURE_URL,
    # Nothing was sent: "accepted" would be a guess.
    ErrorReason.DESTINATION_DENIED.value: ErrorReason.DESTINATION_DENIED.value,
}
#: Failures decided by the provider object's own fields (its Secret, its URL), whichever
#: endpoint's poll found them.
_OWN_FIELDS = frozenset({SECRET_MISSING, INSECURE_URL, ErrorReason.DESTINATION_DENIED.value})
#: Will not fix itself: kstatus reads Stalled=True as Failed.
_STALLED = frozenset(
    {
        ErrorReason.UNAUTHORIZED.value,
        SECRET_MISSING,
        INSECURE_URL,
        ErrorReason.DESTINATION_DENIED.value,
    }
)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The last call on a provider object's account. `reason` None: the credentials were
    accepted; else the Synced reason of the endpoints it answered."""

    reason: str | None
    message: str
    at: datetime
    paused_until: datetime | None = None


def provider_status(
    prev: Mapping[str, Any] | None,
    *,
    provider: str | None,
    generation: int,
    users: list[Mapping[str, Any]],
    outcome: CallOutcome | None,
    last_success: datetime | None,
    now: datetime,
    success_refresh: timedelta,
    refusal: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The status a provider object should show (pure). `refusal`: (reason, message) when the
    object may not be used at all (ProviderObjects.refusal); it wins over any call's outcome."""
    prev = prev or {}
    ready_users = sum(1 for u in users if (condition(u, "Ready") or {}).get("status") == "True")
    ready: tuple[ConditionStatus, str, str]
    shown = condition(prev, "Ready")
    if refusal is not None:
        ready = ("False", *refusal)
    elif outcome is None and shown is not None:
        # No call yet in this process (a restart): what the last one wrote still holds, rather
        # than flapping to Unknown and back with two writes and two Events.
        ready = (shown["status"], shown.get("reason", ""), shown.get("message", ""))
    elif outcome is None:
        ready = ("Unknown", NO_CALLS, "no call has been made with these credentials yet")
    elif outcome.reason is None or outcome.reason not in _NOT_READY:
        ready = ("True", AUTHORIZED, "the last call with these credentials was accepted")
    else:
        ready = ("False", _NOT_READY[outcome.reason], outcome.message)
    paused = outcome.paused_until if outcome and ready[1] == "RateLimited" else None
    kept_pause = prev.get("pausedUntil") if outcome is None and ready[1] == "RateLimited" else None
    conditions = [dict(c) for c in prev.get("conditions") or []]
    set_condition(conditions, "Ready", *ready, now=now, generation=generation)
    if ready[1] in _STALLED or refusal is not None:
        set_condition(
            conditions, "Stalled", "True", ready[1], ready[2], now=now, generation=generation
        )
    else:
        conditions = [c for c in conditions if c.get("type") != "Stalled"]
    shown_success = parse_timestamp(prev.get("lastSuccessTime"))
    success = prev.get("lastSuccessTime")
    if last_success is not None and (
        shown_success is None
        or (condition(prev, "Ready") or {}).get("status") != ready[0]
        or last_success - shown_success > success_refresh
    ):
        success = format_timestamp(last_success)
    status = ProviderObjectStatus.model_construct(
        provider=provider,
        endpoints=len(users),
        ready_endpoints=ready_users,
        endpoint_summary=f"{ready_users}/{len(users)}",
        last_success_time=success,
        paused_until=format_timestamp(paused) if paused else kept_pause,
        observed_generation=generation,
    ).model_dump(by_alias=True, exclude_none=True)
    status["conditions"] = conditions
    return status


def transition(old: Mapping[str, Any], new: Mapping[str, Any]) -> EventSpec | None:
    """The Event for a change of Ready (status or reason), if any."""
    before, after = condition(old, "Ready") or {}, condition(new, "Ready") or {}
    key = ("status", "reason")
    if [before.get(k) for k in key] == [after.get(k) for k in key] or not after:
        return None
    if not before and after.get("status") == "Unknown":
        return None  # a new object that has not been used: nothing has happened yet
    kind = "Normal" if after.get("status") != "False" else "Warning"
    return EventSpec(kind, str(after.get("reason")), str(after.get("message", "")))


class AccountOutcomes(Protocol):
    """What the scheduler tells provider objects' status: each call's outcome on an account,
    and that an endpoint's status or provider object changed."""

    def record(
        self,
        source: AccountSource,
        reason: str | None,
        message: str,
        paused_until: datetime | None = None,
    ) -> None: ...

    def changed(self) -> None: ...


class NoProviderStatus:
    """Where no provider object's status is kept (a scheduler in tests, `probe`)."""

    def record(
        self,
        source: AccountSource,
        reason: str | None,
        message: str,
        paused_until: datetime | None = None,
    ) -> None:
        pass

    def changed(self) -> None:
        pass


class InventorySource(Protocol):
    def status(self, key: ObjectKey, prev: Mapping[str, Any] | None) -> dict[str, Any] | None: ...


class ProviderStatusSink(Protocol):
    async def patch_provider_status(self, key: ObjectKey, patch: Mapping[str, Any]) -> bool: ...

    async def emit_for_provider(self, key: ObjectKey, uid: str, event: EventSpec) -> None: ...


class ProviderStatus:
    def __init__(
        self,
        objects: ProviderObjects,
        users: Callable[[ObjectKey], list[Mapping[str, Any]]],
        sink: ProviderStatusSink,
        *,
        success_refresh: timedelta = timedelta(minutes=5),
        clock: Clock = SYSTEM_CLOCK,
        inventory: InventorySource | None = None,
        owns: Callable[[ObjectKey], bool] = lambda key: True,
    ) -> None:
        """`inventory`: each object's `status.inventory` (inventory.py), when it has one."""
        self._inventory = inventory
        self._objects = objects
        #: Whether this member writes the object's status (one writer per object among members).
        self._owns = owns
        self._users = users
        self._sink = sink
        self._success_refresh = success_refresh
        self._clock = clock
        self._outcomes: dict[ObjectKey, CallOutcome] = {}
        self._successes: dict[ObjectKey, datetime] = {}
        self._dirty: asyncio.Event | None = None

    def record(
        self,
        source: AccountSource,
        reason: str | None,
        message: str,
        paused_until: datetime | None = None,
    ) -> None:
        """The outcome of a call (or of a poll that could not call) on this account."""
        key = (source.kind, source.namespace if source.kind == NAMESPACED_KIND else "", source.name)
        if source.overrides and reason not in _OWN_FIELDS and self._overridden(key, reason):
            return
        now = self._clock.now()
        self._outcomes[key] = CallOutcome(reason, message, now, paused_until)
        if reason is None or reason not in _NOT_READY:
            self._successes[key] = now
        self.changed()

    def _overridden(self, key: ObjectKey, reason: str | None) -> bool:
        """Whether a call made for an endpoint that picked another team or workspace of the
        account (its `allowedOverrides`) is to be left out of the provider object's Ready.

        Its failure is that endpoint's (a team the key cannot read, and its own Synced says so):
        one endpoint must not turn an account everyone shares Unauthorized. Its success still
        shows that the credentials work, unless a call with the object's own values failed
        since: that stands until one of those succeeds, so Ready does not flap between them."""
        if reason is not None and reason in _NOT_READY:
            return True
        shown = self._outcomes.get(key)
        return (
            shown is not None
            and shown.reason is not None
            and shown.reason in _NOT_READY
            and shown.reason not in _OWN_FIELDS
        )

    def changed(self) -> None:
        """Something a provider status is computed from may have changed (an endpoint's
        status, a provider object, a call's outcome)."""
        if self._dirty is not None:
            self._dirty.set()

    async def sync(self) -> int:
        """Write every provider status that differs from what its object shows; how many."""
        written = 0
        now = self._clock.now()
        for key in self._objects.all_keys():
            identity = self._objects.identity(key)
            if identity is None or not self._owns(key):
                continue
            uid, generation = identity
            prev = self._objects.status(key)
            new = provider_status(
                prev,
                provider=self._objects.provider_name(key),
                generation=generation,
                users=self._users(key),
                outcome=self._outcomes.get(key),
                last_success=self._successes.get(key),
                now=now,
                success_refresh=self._success_refresh,
                refusal=self._objects.refusal(key),
            )
            if self._inventory is not None:
                shown = self._inventory.status(key, prev.get("inventory"))
                if shown is not None:
                    new["inventory"] = shown
            patch = merge_patch(prev, new)
            if not patch:
                continue
            if not await self._sink.patch_provider_status(key, patch):
                continue
            self._objects.set_status(key, new)
            written += 1
            event = transition(prev, new)
            if event is not None:
                log.info(
                    "%s %s: %s: %s",
                    key[0],
                    "/".join(key[1:]).lstrip("/"),
                    event.reason,
                    event.message,
                )
                await self._sink.emit_for_provider(key, uid, event)
        return written

    async def run(self, spacing: float = 1.0, refresh: float = 60.0) -> None:
        """Until cancelled: sync when something changed, at most once per `spacing` seconds,
        and every `refresh` seconds regardless (a lastSuccessTime falling behind)."""
        self._dirty = asyncio.Event()
        while True:
            try:
                await self.sync()
            except Exception:
                # A bug here must not stop endpoint polling; it is loud and retried.
                log.exception("writing provider statuses failed")
            await asyncio.sleep(spacing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), refresh)
            self._dirty.clear()
