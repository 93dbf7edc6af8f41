"""A DataArts Fabric endpoint entry to an `Observation`: the status word's phase, the resources."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ...timestamps import parse_timestamp
from ..base import (
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    ProviderError,
    Workers,
)
from ..http import excerpt, validation_summary
from .responses import Endpoint

__all__ = ["map_endpoint", "observe_entry"]

_STATUS_PHASES: dict[str, Phase] = {
    "CREATING": Phase.PROVISIONING,
    "RUNNING": Phase.RUNNING,
    "UPDATING": Phase.UPDATING,
    "CREATE_FAILED": Phase.FAILED,
    "UPDATE_FAILED": Phase.FAILED,
    "DELETE_FAILED": Phase.FAILED,
    "DELETING": Phase.TERMINATING,
    "DELETED": Phase.TERMINATED,
    "FROZEN": Phase.SUSPENDED,
    "INACTIVE": Phase.SUSPENDED,
    "TRIAL_ENDED": Phase.SUSPENDED,
}

_RAY_TYPES = frozenset({"ray", "ray_service"})


def _sum(values: list[int | None]) -> int | None:
    # A group without the bound makes the total unknown; a partial sum would understate it.
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def _workers(endpoint: Endpoint) -> Workers | None:
    low: int | None
    high: int | None
    if (endpoint.type or "").lower() in _RAY_TYPES:
        groups = (endpoint.ray_resource.worker_group_spec if endpoint.ray_resource else None) or []
        low = _sum([low for low, _ in groups])
        high = _sum([high for _, high in groups])
    else:
        reserved = endpoint.reserved_resource
        # An endpoint reserves APUs or, for data-processing work, DPUs; both are counted alike.
        units = (reserved.apu or reserved.dpu) if reserved else None
        low = units.warm_up_num if units else None
        # Documented: a blank max_num means "no elastic resources", i.e. max = warm-up count.
        high = units.max_num if units and units.max_num is not None else low
    if low is None and high is None:
        return None
    # The list API says nothing about how many resources are up right now.
    return Workers(min=low, max=high)


def map_endpoint(endpoint: Endpoint) -> Observation:
    phase = _STATUS_PHASES.get(endpoint.status, Phase.UNKNOWN)
    error_code = error_message = None
    if phase is Phase.FAILED:
        error_code = endpoint.error_code or endpoint.status
        error_message = endpoint.error_msg
    return Observation(
        phase=phase,
        provider_status=endpoint.status,
        error_code=error_code,
        error_message=error_message,
        workers=_workers(endpoint),
        changed_at=parse_timestamp(endpoint.update_time),
    )


def observe_entry(entry: Endpoint | dict[str, Any]) -> PollResult:
    if isinstance(entry, Endpoint):
        return map_endpoint(entry)
    raw = entry
    try:  # rejected while the page was parsed: validated again for the reason
        return map_endpoint(Endpoint.model_validate(raw))
    except ValidationError as err:
        return ProviderError(
            ErrorReason.BAD_RESPONSE,
            f"endpoint entry is not the documented shape ({validation_summary(err)}): "
            f"{excerpt(json.dumps(raw), 80)}",
        )
