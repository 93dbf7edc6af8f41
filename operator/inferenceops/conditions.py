"""Kubernetes conditions in a status: read one, set one in place (its lastTransitionTime moves only
when its status does, as metav1.Condition's), remove one; always in the same order."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .api.v1alpha1 import Condition, ConditionStatus
from .providers.sanitize import MESSAGE_CHARS, clean
from .timestamps import format_timestamp

__all__ = ["condition", "conditions_of", "remove_condition", "set_condition"]

_CONDITION_ORDER = ("Ready", "Synced", "Reconciling", "Stalled")


def conditions_of(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A copy of `status`'s conditions, to change and write back."""
    return [dict(c) for c in status.get("conditions") or [] if isinstance(c, Mapping)]


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    state: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int,
) -> None:
    """Set one condition in place, moving lastTransitionTime only when its status changes."""
    old = next((c for c in conditions if c.get("type") == kind), None)
    kept = old is not None and old.get("status") == state
    since = old.get("lastTransitionTime") if old is not None and kept else None
    new = Condition.model_construct(
        type=kind,
        status=state,
        reason=reason,
        message=clean(message, MESSAGE_CHARS),
        last_transition_time=str(since or format_timestamp(now)),
        observed_generation=generation,
    ).model_dump(by_alias=True)
    if old is not None:
        conditions[conditions.index(old)] = new
        return
    conditions.append(new)
    order = {name: i for i, name in enumerate(_CONDITION_ORDER)}
    conditions.sort(key=lambda c: order.get(str(c.get("type")), len(order)))


def remove_condition(conditions: list[dict[str, Any]], kind: str) -> None:
    conditions[:] = [c for c in conditions if c.get("type") != kind]


def condition(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None
