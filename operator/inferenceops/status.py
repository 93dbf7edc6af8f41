"""Pure status computation: previous status + what a poll learned → the next status.

No I/O and no clock of its own (the caller passes `now`), so every rule here is unit-tested
without HTTP or a cluster. poller.py calls these after each poll (the scheduler only
`after_deadline`, when a staleness deadline passes); kube/writer.py writes what they return.

Status dicts are the camelCase JSON written to `.status`; None values are never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from .api.v1alpha1 import (
    ConditionStatus,
    InferenceEndpointStatus,
    QueueStatus,
    WorkersStatus,
)
from .conditions import condition, conditions_of, remove_condition, set_condition
from .patches import merge_patch, status_patch
from .providers import ErrorReason, Observation, Phase
from .providers.sanitize import MESSAGE_CHARS, clean
from .timestamps import format_timestamp, parse_timestamp

__all__ = [
    "READY_PHASES",
    "STALLED_REASONS",
    "TRANSITIONAL_PHASES",
    "EventSpec",
    "Failure",
    "Resource",
    "after_deadline",
    "after_failure",
    "after_observation",
    "condition",
    "events_between",
    "merge_patch",
    "set_condition",
    "stale_after",
    "status_patch",
]

Status = dict[str, Any]

READY_PHASES = frozenset({Phase.RUNNING, Phase.IDLE, Phase.DEGRADED})
TRANSITIONAL_PHASES = frozenset(
    {Phase.PENDING, Phase.PROVISIONING, Phase.UPDATING, Phase.WAKING, Phase.TERMINATING}
)
WARNING_PHASES = frozenset({Phase.FAILED, Phase.DEGRADED})

SECRET_MISSING = "SecretMissing"
INVALID_SPEC = "InvalidSpec"
INTERNAL_ERROR = "InternalError"
#: An endpoint's providerRef names nothing, something it may not use, or a mismatched account
#: (provider_objects.py; the same strings, kept here so status.py imports no resolution code).
PROVIDER_MISSING = "ProviderMissing"
PROVIDER_NOT_ALLOWED = "ProviderNotAllowed"
PROVIDER_MISMATCH = "ProviderMismatch"
#: A ClusterInferenceProvider's secretNamespace is not one of --cluster-secret-namespace.
SECRET_NAMESPACE_NOT_ALLOWED = "SecretNamespaceNotAllowed"
#: An endpoint overrides a provider object's team/workspace the object does not allow.
OVERRIDE_NOT_ALLOWED = "OverrideNotAllowed"
#: A credential would go to a plain http:// URL (poller.py; --allow-insecure-http allows it).
INSECURE_URL = "InsecureURL"
#: Nothing is polled for these until the spec or the provider object it names changes (or, for
#: InsecureURL, the operator is restarted with --allow-insecure-http).
UNPOLLABLE_REASONS = frozenset(
    {INVALID_SPEC, PROVIDER_MISSING, PROVIDER_NOT_ALLOWED, PROVIDER_MISMATCH}
) | frozenset({OVERRIDE_NOT_ALLOWED, INSECURE_URL, SECRET_NAMESPACE_NOT_ALLOWED})
#: Failures that will not fix themselves without a human: kstatus reads Stalled=True as Failed.
STALLED_REASONS = UNPOLLABLE_REASONS | frozenset(
    {
        SECRET_MISSING,
        ErrorReason.UNAUTHORIZED.value,
        ErrorReason.NOT_FOUND.value,
        # Only a spec (or DNS) change can make the address allowed.
        ErrorReason.DESTINATION_DENIED.value,
    }
)
#: Ready turns Unknown when no poll succeeded for this many intervals.
STALE_AFTER_INTERVALS = 3


def stale_after(interval: float) -> float:
    """Seconds without a successful poll after which Ready turns Unknown (ObservationStale): the
    one rule for both a failed poll here and the scheduler's staleness deadline (timing.py)."""
    return STALE_AFTER_INTERVALS * interval


@dataclass(frozen=True, slots=True)
class Failure:
    """A poll that yielded no observation; `reason` becomes the Synced condition's reason."""

    reason: str
    message: str
    #: What the provider asked us to wait (already capped), for the scheduler; not shown.
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Resource:
    """Facts about the resource that shape its status, independent of the poll."""

    generation: int
    provider: str | None
    endpoint: str | None
    poll_interval: float
    now: datetime
    #: When the provider last answered for this resource, if ever (may predate a restart).
    last_success: datetime | None = None
    reconcile_token: str | None = None


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: str  # "Normal" or "Warning"
    reason: str
    message: str


def after_observation(prev: Mapping[str, Any] | None, obs: Observation, res: Resource) -> Status:
    prev = prev or {}
    now = format_timestamp(res.now)
    workers, queue = obs.workers, obs.queue
    observed = InferenceEndpointStatus.model_construct(
        phase=obs.phase.value,
        provider_status=obs.provider_status,
        provider_phase=obs.provider_phase,
        error_code=obs.error_code,
        error_message=obs.error_message,
        error=obs.error_code,
        progress=obs.progress,
        last_poll_time=now,
        last_transition_time=_phase_transition_time(prev, obs.phase.value, now),
        workers=None
        if workers is None
        else WorkersStatus.model_construct(
            ready=workers.ready, total=workers.total, min=workers.min, max=workers.max
        ),
        queue=None
        if queue is None
        else QueueStatus.model_construct(
            in_queue=queue.in_queue, in_progress=queue.in_progress, failed=queue.failed
        ),
        worker_summary=None
        if workers is None or workers.ready is None or workers.total is None
        else f"{workers.ready}/{workers.total}",
    )
    status = _identity(res) | _written(observed)
    conditions = conditions_of(prev)
    _set(conditions, "Ready", *_ready_from_phase(obs), res)
    _set(conditions, "Synced", "True", "Polled", "the provider answered", res)
    _set_abnormal(conditions, obs.phase, None, _failure_text(obs), res)
    status["conditions"] = conditions
    return _compact(status)


def _written(model: BaseModel) -> Status:
    """The camelCase keys of a status model: spelt once, in api/v1alpha1.py, so a misspelt field
    fails the type check instead of being dropped by the API server. Fields left None are not
    written; an empty `workers` is not either."""
    dumped = model.model_dump(by_alias=True, exclude_none=True)
    return {k: v for k, v in dumped.items() if v != {}}


def after_failure(prev: Mapping[str, Any] | None, failure: Failure, res: Resource) -> Status:
    """Keep what was last known; say why the poll failed; go stale only after 3 intervals."""
    prev = prev or {}
    now = format_timestamp(res.now)
    status: Status = {k: v for k, v in prev.items() if k != "conditions"}
    status.update(_identity(res))
    phase = _phase_of(prev)
    conditions = conditions_of(prev)
    if failure.reason == ErrorReason.NOT_FOUND and phase in (Phase.TERMINATING, Phase.TERMINATED):
        # The provider finished deleting it: that is the end of the lifecycle, not an error.
        phase = Phase.TERMINATED
        status["phase"] = phase.value
        status["lastTransitionTime"] = _phase_transition_time(prev, phase.value, now)
        _set(
            conditions,
            "Ready",
            "False",
            phase.value,
            "the provider no longer has the endpoint",
            res,
        )
    elif "phase" not in status:
        status["phase"] = phase.value
        _set(
            conditions,
            "Ready",
            "Unknown",
            Phase.PENDING.value,
            f"waiting for the first successful poll: {failure.message}",
            res,
        )
    elif _is_stale(res):
        _set(conditions, "Ready", "Unknown", "ObservationStale", _stale(prev, failure, res), res)
    # The Error column: the provider's own code wins; else why we cannot tell (SecretMissing…).
    error = str(prev.get("errorCode") or failure.reason)
    status.update(_written(InferenceEndpointStatus.model_construct(error=error)))
    _set(conditions, "Synced", "False", failure.reason, failure.message, res)
    stalled = failure if failure.reason in STALLED_REASONS else None
    _set_abnormal(conditions, phase, stalled, _failure_text_of(status), res)
    status["conditions"] = conditions
    return _compact(status)


def after_deadline(prev: Mapping[str, Any] | None, res: Resource) -> Status:
    """The staleness deadline passed with no successful poll (the caller keeps that deadline,
    `stale_after`): Ready turns Unknown whatever held the polls up (a paused account, a
    stuck request, an overloaded operator), not only when a poll fails."""
    prev = prev or {}
    ready = condition(prev, "Ready")
    if "phase" not in prev or ready is None or ready.get("status") == "Unknown":
        return dict(prev)  # never observed, or already saying why it does not know
    conditions = conditions_of(prev)
    _set(conditions, "Ready", "Unknown", "ObservationStale", _stale(prev, None, res), res)
    return {**prev, "conditions": conditions}


def _stale(prev: Mapping[str, Any], failure: Failure | None, res: Resource) -> str:
    """Why Ready is Unknown, with the real reason: what the last poll said, if one failed."""
    if failure is None:
        synced = condition(prev, "Synced")
        if synced is not None and synced.get("status") == "False":
            failure = Failure(str(synced.get("reason")), str(synced.get("message", "")))
    why = f": {failure.reason}: {failure.message}" if failure else ""
    if not prev.get("lastPollTime"):
        return f"no successful poll yet{why}"
    phase = _phase_of(prev).value
    # lastPollTime is written only with a change; the caller knows of later successes.
    known = [t for t in (parse_timestamp(prev["lastPollTime"]), res.last_success) if t]
    since = format_timestamp(max(known)) if known else prev["lastPollTime"]
    if failure is None:
        return f"no successful poll since {since} (polls are delayed); last known phase {phase}"
    return f"no successful poll since {since}{why}; last known phase {phase}"


def _identity(res: Resource) -> Status:
    """What every status says whatever the poll found; None values remove a key (_compact)."""
    identity = InferenceEndpointStatus.model_construct(
        provider=res.provider,
        endpoint=res.endpoint,
        observed_generation=res.generation,
        last_handled_reconcile_at=res.reconcile_token,
    )
    return identity.model_dump(by_alias=True, exclude_unset=True)


def _phase_of(status: Mapping[str, Any]) -> Phase:
    try:
        return Phase(status.get("phase", Phase.PENDING.value))
    except ValueError:
        return Phase.UNKNOWN


def _phase_transition_time(prev: Mapping[str, Any], phase: str, now: str) -> str:
    if prev.get("phase") == phase and prev.get("lastTransitionTime"):
        return str(prev["lastTransitionTime"])
    return now


def _is_stale(res: Resource) -> bool:
    if res.last_success is None:
        return True
    return res.now - res.last_success > timedelta(seconds=stale_after(res.poll_interval))


def _ready_from_phase(obs: Observation) -> tuple[ConditionStatus, str, str]:
    if obs.phase in READY_PHASES:
        summary = ""
        if obs.workers and obs.workers.ready is not None and obs.workers.total is not None:
            summary = f": {obs.workers.ready}/{obs.workers.total} workers ready"
        return "True", obs.phase.value, f"endpoint is {obs.phase.value}{summary}"
    detail = _failure_text(obs) or obs.provider_phase or obs.provider_status
    return "False", obs.phase.value, f"endpoint is {obs.phase.value} ({detail})"


def _failure_text(obs: Observation) -> str:
    return ": ".join(x for x in (obs.error_code, obs.error_message) if x)


def _failure_text_of(status: Mapping[str, Any]) -> str:
    return ": ".join(str(status[k]) for k in ("errorCode", "errorMessage") if status.get(k))


def _set_abnormal(
    conditions: list[dict[str, Any]],
    phase: Phase,
    stalled_by: Failure | None,
    failure_text: str,
    res: Resource,
) -> None:
    """kstatus' abnormal-true conditions: present only while True, and never both at once.

    kstatus reads Reconciling before Stalled, so a Stalled resource that still said Reconciling
    would look "in progress" to Flux and time out instead of failing fast.
    """
    stalled: tuple[str, str] | None = None
    if stalled_by is not None:
        stalled = (stalled_by.reason, stalled_by.message)
    elif phase is Phase.FAILED:
        stalled = (Phase.FAILED.value, failure_text or "the provider reports the endpoint failed")
    elif phase is Phase.TERMINATED:
        # Terminated is the end of the endpoint's life: nothing will bring it back by waiting.
        stalled = (Phase.TERMINATED.value, "the provider has terminated the endpoint")
    if stalled is not None:
        _set(conditions, "Stalled", "True", *stalled, res)
        remove_condition(conditions, "Reconciling")
    elif phase in TRANSITIONAL_PHASES:
        _set(conditions, "Reconciling", "True", phase.value, f"endpoint is {phase.value}", res)
        remove_condition(conditions, "Stalled")
    else:
        remove_condition(conditions, "Reconciling")
        remove_condition(conditions, "Stalled")


def _set(
    conditions: list[dict[str, Any]],
    kind: str,
    state: ConditionStatus,
    reason: str,
    message: str,
    res: Resource,
) -> None:
    set_condition(conditions, kind, state, reason, message, now=res.now, generation=res.generation)


def _compact(status: Status) -> Status:
    return {k: v for k, v in status.items() if v is not None}


def events_between(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[EventSpec]:
    """Kubernetes Events for the transitions from `old` to `new`: phase changes and sync health.

    The first observation is not a transition: it gets an Event only when it is bad news, so
    creating (or adopting) 10,000 healthy endpoints costs 10,000 writes, not 20,000.
    """
    old = old or {}
    events: list[EventSpec] = []
    before, after = old.get("phase"), new.get("phase")
    if after and after != before and (before is not None or after in WARNING_PHASES):
        kind = "Warning" if after in WARNING_PHASES else "Normal"
        detail = _failure_text_of(new) or new.get("providerStatus") or ""
        message = f"phase {before or 'none'} → {after}" + (f" ({detail})" if detail else "")
        events.append(EventSpec(kind, f"Phase{after}", clean(message, MESSAGE_CHARS)))
    old_sync, new_sync = condition(old, "Synced"), condition(new, "Synced")
    if new_sync is not None:
        was = (old_sync or {}).get("status"), (old_sync or {}).get("reason")
        now_ = new_sync.get("status"), new_sync.get("reason")
        if now_[0] == "False" and was != now_:
            events.append(EventSpec("Warning", str(now_[1]), str(new_sync.get("message", ""))))
        elif now_[0] == "True" and was[0] == "False":
            events.append(EventSpec("Normal", "Synced", "the provider answers again"))
    return events
