"""RFC 3339 timestamps: the one format `.status` is written in and the one parser for the
timestamps the operator reads back (its own `lastPollTime`) and providers send (`updatedAt`).

A leaf module (the standard library only), so that providers/ and status.py share it without
either importing the other.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_timestamp", "parse_timestamp"]


def format_timestamp(when: datetime) -> str:
    """`when` in UTC to the second, as Kubernetes writes its own (metav1.Time)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO-8601 timestamp, or None when absent or unreadable; one without an offset is taken
    as UTC, so that it compares with the operator's own (aware) times instead of raising."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
