"""timing.py: when to poll next, when a status goes stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inferenceops import status as st
from inferenceops.providers import ErrorReason, Observation, Phase
from inferenceops.providers.http import MAX_RETRY_AFTER_SECONDS, parse_retry_after
from inferenceops.timing import PollPolicy, stale_after


def test_phase_sets_the_pace() -> None:
    policy = PollPolicy()
    assert policy.after_success(Phase.RUNNING, 30) == 30
    assert policy.after_success(Phase.PROVISIONING, 30) == 10
    assert policy.after_success(Phase.PROVISIONING, 6) == 5, "never below the minimum"
    assert policy.after_success(Phase.TERMINATED, 30) == 120
    assert policy.after_success(Phase.PENDING, 30) == 30


def test_failures_back_off_but_honour_retry_after() -> None:
    policy = PollPolicy()
    assert [policy.after_failure("Unreachable", n, 30, None) for n in (1, 2, 3, 5)] == [
        2,
        4,
        8,
        30,
    ]
    assert policy.after_failure(ErrorReason.RATE_LIMITED, 1, 30, 120) == 120
    assert policy.after_failure(ErrorReason.NOT_FOUND, 1, 30, None) == 120
    assert policy.after_failure("SecretMissing", 7, 30, None) == 30


def test_a_restart_spreads_each_resource_over_its_own_phase_interval() -> None:
    policy = PollPolicy()
    provisioning = [policy.after_restart(Phase.PROVISIONING, 30, 1.0) for _ in range(500)]
    running = [policy.after_restart(Phase.RUNNING, 30, 1.0) for _ in range(500)]
    assert max(provisioning) <= 10, "a transitional endpoint is due within its faster interval"
    assert max(running) > 10 and max(running) <= 30
    assert min(running) >= 0


def test_stale_after_three_intervals() -> None:
    assert stale_after(30) == 90


def test_a_failed_poll_goes_stale_exactly_when_the_scheduler_deadline_falls() -> None:
    interval, since = 7.0, datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    good = st.after_observation(None, Observation(Phase.RUNNING, "RUNNING"), resource(since))
    deadline = since + timedelta(seconds=stale_after(interval))
    for now, ready in ((deadline, "True"), (deadline + timedelta(seconds=1), "Unknown")):
        res = resource(now, interval, last_success=since)
        status = st.after_failure(good, st.Failure("Timeout", "no answer"), res)
        assert (st.condition(status, "Ready") or {}).get("status") == ready


def resource(
    now: datetime, interval: float = 30.0, last_success: datetime | None = None
) -> st.Resource:
    return st.Resource(1, "nsModelServer", "ep", interval, now, last_success=last_success)


def test_retry_after_is_capped() -> None:
    assert parse_retry_after("600") == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("1e9") == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("inf") == MAX_RETRY_AFTER_SECONDS
    assert parse_retry_after("nan") == 0.0
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("7", limit=5) == 5
