"""The status rules users and GitOps tools rely on, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from inferenceops import status as st
from inferenceops.providers import ErrorReason, Observation, Phase, Queue, Workers

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def res(
    now: datetime = T0,
    generation: int = 1,
    last_success: datetime | None = None,
    interval: float = 30.0,
) -> st.Resource:
    return st.Resource(
        generation=generation,
        provider="friendli",
        endpoint="ep1",
        poll_interval=interval,
        now=now,
        last_success=last_success,
    )


def cond(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    found = st.condition(status, kind)
    return dict(found) if found else None


RUNNING = Observation(Phase.RUNNING, "RUNNING", workers=Workers(ready=2, total=3, min=1, max=4))


def test_running_is_ready_synced_and_not_reconciling() -> None:
    s = st.after_observation(None, RUNNING, res())
    assert s["phase"] == "Running"
    assert s["providerStatus"] == "RUNNING"
    assert s["workers"] == {"ready": 2, "total": 3, "min": 1, "max": 4}
    assert s["workerSummary"] == "2/3"
    assert s["observedGeneration"] == 1
    assert s["lastPollTime"] == s["lastTransitionTime"] == "2026-11-23T12:00:00Z"
    assert cond(s, "Ready") is not None and cond(s, "Ready")["status"] == "True"  # type: ignore[index]
    synced = cond(s, "Synced")
    assert synced and synced["status"] == "True" and synced["reason"] == "Polled"
    assert cond(s, "Reconciling") is None and cond(s, "Stalled") is None
    for c in s["conditions"]:
        assert set(c) == {
            "type",
            "status",
            "reason",
            "message",
            "lastTransitionTime",
            "observedGeneration",
        }


@pytest.mark.parametrize("phase", [Phase.RUNNING, Phase.IDLE, Phase.DEGRADED])
def test_ready_phases(phase: Phase) -> None:
    s = st.after_observation(None, Observation(phase, "x"), res())
    assert cond(s, "Ready")["status"] == "True"  # type: ignore[index]


@pytest.mark.parametrize(
    "phase", [Phase.PROVISIONING, Phase.UPDATING, Phase.WAKING, Phase.TERMINATING]
)
def test_transitional_phases_are_reconciling(phase: Phase) -> None:
    s = st.after_observation(None, Observation(phase, "x"), res())
    assert cond(s, "Ready")["status"] == "False"  # type: ignore[index]
    assert cond(s, "Reconciling") == {
        "type": "Reconciling",
        "status": "True",
        "reason": phase.value,
        "message": f"endpoint is {phase.value}",
        "lastTransitionTime": "2026-11-23T12:00:00Z",
        "observedGeneration": 1,
    }
    assert cond(s, "Stalled") is None


@pytest.mark.parametrize("phase", [Phase.SLEEPING, Phase.SUSPENDED, Phase.UNKNOWN])
def test_steady_not_ready_phases_have_no_abnormal_conditions(phase: Phase) -> None:
    s = st.after_observation(None, Observation(phase, "x"), res())
    assert cond(s, "Ready")["status"] == "False"  # type: ignore[index]
    assert cond(s, "Reconciling") is None and cond(s, "Stalled") is None


def test_failed_is_stalled_with_error() -> None:
    obs = Observation(
        Phase.FAILED,
        "FAILED",
        error_code="WORKLOAD_INIT_DOWNLOAD_ERROR",
        error_message="cannot download",
    )
    s = st.after_observation(None, obs, res())
    assert s["errorCode"] == "WORKLOAD_INIT_DOWNLOAD_ERROR"
    stalled = cond(s, "Stalled")
    assert stalled and stalled["reason"] == "Failed"
    assert "WORKLOAD_INIT_DOWNLOAD_ERROR: cannot download" in stalled["message"]


def test_error_fields_are_cleared_when_provider_recovers() -> None:
    failed = st.after_observation(None, Observation(Phase.FAILED, "FAILED", error_code="E"), res())
    ok = st.after_observation(failed, RUNNING, res(T0 + timedelta(seconds=30)))
    assert "errorCode" not in ok
    patch = st.status_patch(failed, ok, T0 + timedelta(seconds=30))
    assert patch is not None and patch["errorCode"] is None  # merge patch deletes it


def test_failed_poll_keeps_phase_and_ready() -> None:
    good = st.after_observation(None, RUNNING, res())
    later = T0 + timedelta(seconds=30)
    bad = st.after_failure(
        good, st.Failure("Unreachable", "provider failed (HTTP 500)"), res(later, last_success=T0)
    )
    assert bad["phase"] == "Running" and bad["workers"] == good["workers"]
    assert bad["lastPollTime"] == good["lastPollTime"]
    assert cond(bad, "Ready")["status"] == "True"  # type: ignore[index]
    synced = cond(bad, "Synced")
    assert synced and synced["status"] == "False" and synced["reason"] == "Unreachable"
    assert synced["lastTransitionTime"] == "2026-11-23T12:00:30Z"
    assert cond(bad, "Stalled") is None


def test_ready_goes_unknown_only_after_three_intervals() -> None:
    good = st.after_observation(None, RUNNING, res())
    failure = st.Failure("Timeout", "no answer")
    at_limit = st.after_failure(good, failure, res(T0 + timedelta(seconds=90), last_success=T0))
    assert cond(at_limit, "Ready")["status"] == "True"  # type: ignore[index]
    stale = st.after_failure(good, failure, res(T0 + timedelta(seconds=91), last_success=T0))
    ready = cond(stale, "Ready")
    assert ready and ready["status"] == "Unknown" and ready["reason"] == "ObservationStale"
    assert stale["phase"] == "Running", "the last phase stays visible"


@pytest.mark.parametrize("reason", ["Unauthorized", "SecretMissing", "InvalidSpec", "NotFound"])
def test_what_will_not_fix_itself_is_stalled(reason: str) -> None:
    good = st.after_observation(None, RUNNING, res())
    bad = st.after_failure(good, st.Failure(reason, "why"), res(last_success=T0))
    stalled = cond(bad, "Stalled")
    assert stalled and stalled["status"] == "True" and stalled["reason"] == reason


@pytest.mark.parametrize("reason", ["Unreachable", "Timeout", "RateLimited", "BadResponse"])
def test_transient_failures_are_not_stalled(reason: str) -> None:
    good = st.after_observation(None, RUNNING, res())
    assert (
        cond(st.after_failure(good, st.Failure(reason, "x"), res(last_success=T0)), "Stalled")
        is None
    )


def test_first_poll_failing_is_pending() -> None:
    s = st.after_failure(None, st.Failure("SecretMissing", "Secret ns/x not found"), res())
    assert s["phase"] == "Pending"
    ready = cond(s, "Ready")
    assert ready and ready["status"] == "Unknown" and ready["reason"] == "Pending"
    # Stalled wins: kstatus reads Reconciling first, and Flux must fail fast here.
    assert cond(s, "Reconciling") is None and cond(s, "Stalled") is not None


@pytest.mark.parametrize("last", [Phase.TERMINATING, Phase.TERMINATED])
def test_not_found_after_terminating_is_terminated(last: Phase) -> None:
    prev = st.after_observation(None, Observation(last, "TERMINATING"), res())
    s = st.after_failure(
        prev,
        st.Failure(ErrorReason.NOT_FOUND.value, "gone"),
        res(T0 + timedelta(seconds=10), last_success=T0),
    )
    assert s["phase"] == "Terminated"
    assert cond(s, "Synced")["reason"] == "NotFound"  # type: ignore[index]
    assert cond(s, "Reconciling") is None


def test_not_found_while_running_keeps_phase() -> None:
    prev = st.after_observation(None, RUNNING, res())
    s = st.after_failure(prev, st.Failure("NotFound", "gone"), res(last_success=T0))
    assert s["phase"] == "Running"


def test_transition_times() -> None:
    a = st.after_observation(None, Observation(Phase.PROVISIONING, "INITIALIZING"), res())
    b = st.after_observation(
        a, Observation(Phase.PROVISIONING, "INITIALIZING"), res(T0 + timedelta(seconds=10))
    )
    assert b["lastTransitionTime"] == a["lastTransitionTime"]
    c = st.after_observation(b, RUNNING, res(T0 + timedelta(seconds=20)))
    assert c["lastTransitionTime"] == "2026-11-23T12:00:20Z"
    assert cond(c, "Ready")["lastTransitionTime"] == "2026-11-23T12:00:20Z"  # type: ignore[index]
    assert cond(c, "Synced")["lastTransitionTime"] == "2026-11-23T12:00:00Z"  # type: ignore[index]


def test_observed_generation_follows_metadata_generation() -> None:
    a = st.after_observation(None, RUNNING, res(generation=1))
    b = st.after_observation(a, RUNNING, res(generation=2))
    assert b["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in b["conditions"])


def test_no_write_when_nothing_changed() -> None:
    a = st.after_observation(None, RUNNING, res())
    for seconds in (30, 60, 299):
        later = T0 + timedelta(seconds=seconds)
        b = st.after_observation(a, RUNNING, res(later))
        assert st.status_patch(a, b, later) is None
    later = T0 + timedelta(hours=5)
    b = st.after_observation(a, RUNNING, res(later))
    assert st.status_patch(a, b, later) is None, "by default lastPollTime alone is never written"


def test_optional_poll_time_refresh() -> None:
    a = st.after_observation(None, RUNNING, res())
    refresh = timedelta(minutes=5)
    early = T0 + timedelta(minutes=4)
    assert st.status_patch(a, st.after_observation(a, RUNNING, res(early)), early, refresh) is None
    later = T0 + timedelta(minutes=5)
    b = st.after_observation(a, RUNNING, res(later))
    assert st.status_patch(a, b, later, refresh) == {"lastPollTime": "2026-11-23T12:05:00Z"}


def test_repeated_failures_write_nothing_new() -> None:
    good = st.after_observation(None, RUNNING, res())
    f = st.Failure("Unreachable", "provider failed (HTTP 503)")
    one = st.after_failure(good, f, res(T0 + timedelta(seconds=5), last_success=T0))
    two = st.after_failure(one, f, res(T0 + timedelta(seconds=15), last_success=T0))
    assert st.status_patch(one, two, T0 + timedelta(seconds=15)) is None


def test_worker_change_is_written() -> None:
    a = st.after_observation(None, RUNNING, res())
    more = Observation(Phase.RUNNING, "RUNNING", workers=Workers(ready=3, total=3, min=1, max=4))
    b = st.after_observation(a, more, res(T0 + timedelta(seconds=30)))
    patch = st.status_patch(a, b, T0 + timedelta(seconds=30))
    assert patch is not None
    assert patch["workers"] == {"ready": 3}
    assert patch["workerSummary"] == "3/3"


def test_queue_is_written_only_when_it_changes() -> None:
    queued = Observation(Phase.RUNNING, "RUNNING", queue=Queue(in_queue=2, in_progress=0, failed=5))
    a = st.after_observation(None, queued, res())
    assert a["queue"] == {"inQueue": 2, "inProgress": 0, "failed": 5}
    later = T0 + timedelta(seconds=30)
    assert st.status_patch(a, st.after_observation(a, queued, res(later)), later) is None
    deeper = Observation(Phase.RUNNING, "RUNNING", queue=Queue(in_queue=7, in_progress=0, failed=5))
    b = st.after_observation(a, deeper, res(later))
    assert st.status_patch(a, b, later) == {
        "queue": {"inQueue": 7},
        "lastPollTime": "2026-11-23T12:00:30Z",
    }


def test_no_queue_is_no_key_and_a_lost_queue_is_removed() -> None:
    a = st.after_observation(None, RUNNING, res())
    assert "queue" not in a
    queued = Observation(Phase.RUNNING, "RUNNING", queue=Queue(in_queue=1))
    b = st.after_observation(a, queued, res())
    assert b["queue"] == {"inQueue": 1}
    patch = st.status_patch(b, st.after_observation(b, RUNNING, res()), T0)
    assert patch is not None and patch["queue"] is None


def test_merge_patch_removes_and_nests() -> None:
    assert st.merge_patch({"a": 1, "b": {"x": 1, "y": 2}}, {"b": {"x": 1, "y": 3}}) == {
        "a": None,
        "b": {"y": 3},
    }
    assert st.merge_patch({"l": [1]}, {"l": [1, 2]}) == {"l": [1, 2]}


def test_events_on_transitions() -> None:
    a = st.after_observation(None, Observation(Phase.PROVISIONING, "INITIALIZING"), res())
    assert st.events_between(None, a) == [], "the first observation is not a transition"
    bad = st.after_observation(None, Observation(Phase.FAILED, "FAILED", error_code="E"), res())
    assert [e.reason for e in st.events_between(None, bad)] == ["PhaseFailed"]
    b = st.after_observation(a, Observation(Phase.FAILED, "FAILED", error_code="E"), res())
    events = st.events_between(a, b)
    assert [(e.type, e.reason) for e in events] == [("Warning", "PhaseFailed")]
    assert "E" in events[0].message
    c = st.after_failure(b, st.Failure("Unauthorized", "HTTP 401"), res(last_success=T0))
    assert [(e.type, e.reason) for e in st.events_between(b, c)] == [("Warning", "Unauthorized")]
    assert st.events_between(c, c) == []
    d = st.after_observation(c, RUNNING, res())
    assert [(e.type, e.reason) for e in st.events_between(c, d)] == [
        ("Normal", "PhaseRunning"),
        ("Normal", "Synced"),
    ]


def test_terminated_is_stalled() -> None:
    s = st.after_observation(None, Observation(Phase.TERMINATED, "TERMINATED"), res())
    assert cond(s, "Stalled")["reason"] == "Terminated"  # type: ignore[index]
    assert cond(s, "Reconciling") is None


@pytest.mark.parametrize("reason", ["SecretMissing", "Unauthorized", "NotFound"])
def test_stalled_replaces_reconciling(reason: str) -> None:
    prev = st.after_observation(None, Observation(Phase.PROVISIONING, "INITIALIZING"), res())
    assert cond(prev, "Reconciling") is not None
    s = st.after_failure(prev, st.Failure(reason, "x"), res(last_success=T0))
    assert cond(s, "Reconciling") is None and cond(s, "Stalled")["reason"] == reason  # type: ignore[index]
    assert s["phase"] == "Provisioning"


def test_every_key_written_is_a_field_of_the_status_model() -> None:
    """.status is built from api/v1alpha1.py's models: a key the model does not have would be
    dropped by the API server (the CRD is generated from the same model)."""
    from pydantic import ConfigDict

    from inferenceops.api import InferenceEndpointStatus

    class Strict(InferenceEndpointStatus):
        model_config = ConfigDict(extra="forbid")

    full = Observation(
        Phase.FAILED,
        "FAILED",
        provider_phase="Init",
        error_code="E1",
        error_message="broken",
        progress=40,
        workers=Workers(ready=1, total=2, min=0, max=3),
    )
    a = st.after_observation(None, full, res())
    b = st.after_failure(a, st.Failure("Unreachable", "down"), res(T0 + timedelta(minutes=10)))
    c = st.after_deadline(st.after_observation(None, full, res()), res(T0 + timedelta(minutes=10)))
    for status in (a, b, c):
        Strict.model_validate(status)
        for condition in status["conditions"]:
            assert set(condition) == {
                "type",
                "status",
                "reason",
                "message",
                "lastTransitionTime",
                "observedGeneration",
            }
    assert a["workers"] == {"ready": 1, "total": 2, "min": 0, "max": 3}
    assert a["workerSummary"] == "1/2" and a["providerPhase"] == "Init"


def test_the_deadline_turns_a_known_status_unknown_and_says_why() -> None:
    running = st.after_observation(None, Observation(Phase.RUNNING, "RUNNING"), res())
    stale = st.after_deadline(running, res(T0 + timedelta(minutes=2)))
    ready = cond(stale, "Ready")
    assert ready is not None and ready["status"] == "Unknown"
    assert ready["reason"] == "ObservationStale" and "polls are delayed" in ready["message"]
    later = res(T0 + timedelta(minutes=3))
    assert st.after_deadline(stale, later) == stale, "already Unknown: nothing to write"
    assert st.after_deadline({}, res()) == {}, "never observed: nothing to say yet"


def test_the_error_column_says_why_when_the_provider_gave_no_code() -> None:
    running = st.after_observation(None, Observation(Phase.RUNNING, "RUNNING"), res())
    assert "error" not in running
    missing = st.after_failure(running, st.Failure("SecretMissing", "Secret ml/x not found"), res())
    assert missing["error"] == "SecretMissing"
    failed = st.after_observation(
        None, Observation(Phase.FAILED, "FAILED", error_code="OOM", error_message="m"), res()
    )
    assert failed["error"] == "OOM"
    assert st.after_failure(failed, st.Failure("Unreachable", "down"), res())["error"] == "OOM"
    again = st.after_observation(missing, Observation(Phase.RUNNING, "RUNNING"), res())
    assert "error" not in again and st.merge_patch(missing, again)["error"] is None
