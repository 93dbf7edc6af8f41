"""What to write: the JSON merge patch from one status to the next, and whether it is worth a
write at all (a steady endpoint costs the API server nothing)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .timestamps import parse_timestamp

__all__ = ["merge_patch", "status_patch"]


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """An RFC 7386 JSON merge patch turning `old` into `new` (lists are replaced whole)."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif before != value or key not in old:
            patch[key] = value
    return patch


def status_patch(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    now: datetime,
    poll_time_refresh: timedelta | None = None,
) -> dict[str, Any] | None:
    """The merge patch to write, or None when the change is not worth a write.

    A poll that learns nothing new writes nothing: lastPollTime alone is written only when
    `poll_time_refresh` is set and that long has passed, so by default a steady endpoint costs
    the API server nothing (staleness shows as Ready=Unknown/ObservationStale instead).
    """
    old = old or {}
    patch = merge_patch(old, new)
    if set(patch) == {"lastPollTime"}:
        previous = parse_timestamp(old.get("lastPollTime"))
        if poll_time_refresh is None or (
            previous is not None and now - previous < poll_time_refresh
        ):
            return None
    return patch or None
