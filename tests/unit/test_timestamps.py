"""timestamps.py: the one parser and format of RFC 3339 times, for status and providers alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from inferenceops import status as st
from inferenceops.providers import Observation, Phase
from inferenceops.timestamps import format_timestamp, parse_timestamp

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T12:00:00Z", T0),
        ("2026-11-23T12:00:00.250Z", T0 + timedelta(milliseconds=250)),
        ("2026-11-23T13:00:00+01:00", T0),
        # No offset: UTC, so that it compares with the operator's own (aware) times.
        ("2026-11-23T12:00:00", T0),
        ("2026-11-23 12:00:00", T0),
    ],
)
def test_readable_timestamps_are_aware(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed is not None and parsed == expected and parsed.tzinfo is not None


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-01T00:00:00Z", "12:00"])
def test_absent_or_unreadable_is_none(text: str | None) -> None:
    assert parse_timestamp(text) is None


def test_the_format_is_utc_to_the_second() -> None:
    east = timezone(timedelta(hours=9))
    assert format_timestamp(T0.astimezone(east) + timedelta(microseconds=999_999)) == (
        "2026-11-23T12:00:00Z"
    )
    assert parse_timestamp(format_timestamp(T0)) == T0


def test_a_status_timestamp_without_an_offset_does_not_break_staleness_or_writes() -> None:
    # lastPollTime is ours, but `.status` can be edited; a time without "Z" is UTC, not a crash.
    res = st.Resource(1, "friendli", "ep1", 30.0, T0 + timedelta(minutes=10), last_success=T0)
    prev = st.after_observation(None, Observation(Phase.RUNNING, "RUNNING"), res)
    prev["lastPollTime"] = "2026-11-23T12:00:00"
    stale = st.after_failure(prev, st.Failure("Timeout", "no answer"), res)
    ready = st.condition(stale, "Ready")
    assert ready is not None
    assert "no successful poll since 2026-11-23T12:00:00Z" in ready["message"]
    later = T0 + timedelta(minutes=4)
    again = {**prev, "lastPollTime": format_timestamp(later)}
    assert st.status_patch(prev, again, later, timedelta(minutes=5)) is None
