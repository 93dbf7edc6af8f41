"""`.status` of provider objects (provider_status.py): the pure computation, writes only on
change with Events on Ready transitions, and the scheduler feeding it real poll outcomes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from inferenceops.api import AccountSource
from inferenceops.kube.secrets import SecretCache
from inferenceops.provider_objects import ProviderObjects
from inferenceops.provider_status import CallOutcome, ProviderStatus, provider_status
from inferenceops.scheduler import SchedulerSettings
from inferenceops.status import condition

from .support import (
    FRIENDLI,
    TOKEN,
    FakeSink,
    FakeWriter,
    ManualClock,
    Provider,
    VirtualClock,
    body,
    friendli_running,
    obj,
    provider_status_of,
    ready,
    ref_spec,
    scheduling,
    token,
)

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
READY = {"conditions": [{"type": "Ready", "status": "True"}]}
NOT_READY = {"conditions": [{"type": "Ready", "status": "False"}]}


def compute(prev: Mapping[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "provider": "friendli",
        "generation": 2,
        "users": [READY, NOT_READY, READY],
        "outcome": CallOutcome(None, "", NOW),
        "last_success": NOW,
        "now": NOW,
        "success_refresh": timedelta(minutes=5),
    }
    args.update(kw)
    return provider_status(prev, **args)


def test_authorized_with_endpoint_counts() -> None:
    status = compute()
    assert ready(status) == ("True", "Authorized")
    assert (status["endpoints"], status["readyEndpoints"], status["endpointSummary"]) == (
        3,
        2,
        "2/3",
    )
    assert status["observedGeneration"] == 2 and status["provider"] == "friendli"
    assert status["lastSuccessTime"] == "2026-12-01T15:00:00Z"
    assert condition(status, "Stalled") is None


def test_reasons_when_not_ready() -> None:
    unauthorized = compute(outcome=CallOutcome("Unauthorized", "HTTP 401: bad key", NOW))
    assert ready(unauthorized) == ("False", "Unauthorized")
    assert (condition(unauthorized, "Stalled") or {}).get("reason") == "Unauthorized"
    assert ready(compute(outcome=CallOutcome("Timeout", "slow", NOW))) == ("False", "Unreachable")
    denied = compute(outcome=CallOutcome("DestinationDenied", "refused to connect", NOW))
    assert ready(denied) == ("False", "DestinationDenied")
    assert (condition(denied, "Stalled") or {}).get("reason") == "DestinationDenied"
    assert ready(compute(outcome=CallOutcome("SecretMissing", "x", NOW))) == (
        "False",
        "SecretMissing",
    )
    until = NOW + timedelta(seconds=90)
    limited = compute(outcome=CallOutcome("RateLimited", "wait", NOW, until))
    assert ready(limited) == ("False", "RateLimited")
    assert limited["pausedUntil"] == "2026-12-01T15:01:30Z"
    assert condition(limited, "Stalled") is None  # a pause ends by itself
    # An endpoint the provider does not know is no reason to doubt the credentials.
    assert ready(compute(outcome=CallOutcome("NotFound", "gone", NOW))) == ("True", "Authorized")
    assert ready(compute(outcome=None, last_success=None)) == ("Unknown", "NoCallsYet")


def test_steady_success_does_not_rewrite_last_success_each_poll() -> None:
    first = compute()
    later = compute(first, last_success=NOW + timedelta(minutes=4), now=NOW + timedelta(minutes=4))
    assert later == first
    much_later = compute(first, last_success=NOW + timedelta(minutes=6))
    assert much_later["lastSuccessTime"] == "2026-12-01T15:06:00Z"


KEY = ("InferenceProvider", "ml", "acct")
SOURCE = AccountSource("InferenceProvider", "ml", "acct", "ml")


async def test_writes_only_on_change_and_posts_an_event_per_transition() -> None:
    store, sink = ProviderObjects(), FakeSink()
    store.observe_namespaced(None, obj("InferenceProvider", "acct", FRIENDLI))
    clock = ManualClock(0.0, epoch=NOW)
    status = ProviderStatus(store, lambda key: [READY], sink, clock=clock)
    assert await status.sync() == 1
    assert ready(sink.patches[0][1]) == ("Unknown", "NoCallsYet")
    assert await status.sync() == 0  # nothing changed, nothing written

    status.record(SOURCE, None, "")
    assert await status.sync() == 1
    assert [e.reason for _, _, e in sink.events] == ["Authorized"]
    assert sink.events[0][1] == "uid-acct"
    clock.advance(30)
    status.record(SOURCE, None, "")
    assert await status.sync() == 0  # a steady success is not a change

    status.record(SOURCE, "Unauthorized", "HTTP 401")
    assert await status.sync() == 1
    assert [(e.type, e.reason) for _, _, e in sink.events][-1] == ("Warning", "Unauthorized")
    assert len(sink.events) == 2


async def test_the_scheduler_reports_outcomes_and_ready_counts(
    writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> None:
    sink, server = FakeSink(), Provider(friendli_running)
    settings = SchedulerSettings(arrival_quiet=0.01)
    async with scheduling(
        server, writer, secrets, settings, clock=clock, provider_sink=sink
    ) as sched:
        status = provider_status_of(sched)
        secrets.put("ml", "creds", token())
        sched.providers.observe_namespaced(None, obj("InferenceProvider", "acct", FRIENDLI))
        sched.upsert(body("f", ref_spec()))
        sched.upsert(body("g", ref_spec()))
        await writer.wait_for(2)
        await status.sync()
        shown = sched.providers.status(KEY)
        assert ready(shown) == ("True", "Authorized")
        assert shown["endpointSummary"] == "2/2"

        secrets.put("ml", "creds", token("revoked"))
        sched.secret_changed("ml", "creds")
        await writer.wait_for(4)
        await status.sync()
        assert ready(sched.providers.status(KEY)) == ("False", "Unauthorized")
        assert TOKEN not in repr(sink.patches)


def test_a_restart_keeps_what_the_last_process_wrote_until_a_call_says_otherwise() -> None:
    written = compute(outcome=CallOutcome("Unauthorized", "HTTP 401", NOW))
    after_restart = compute(written, outcome=None, last_success=None)
    assert after_restart == written
    limited = compute(outcome=CallOutcome("RateLimited", "wait", NOW, NOW + timedelta(minutes=1)))
    assert compute(limited, outcome=None, last_success=None) == limited


def test_a_provider_object_that_may_not_be_used_says_stalled_with_why() -> None:
    refusal = ("SecretNamespaceNotAllowed", "ClusterInferenceProvider shared: Secrets in vault")
    status = compute(refusal=refusal)  # even after a successful call (an older spec)
    assert ready(status) == ("False", "SecretNamespaceNotAllowed")
    stalled = condition(status, "Stalled") or {}
    assert (stalled.get("status"), stalled.get("reason")) == ("True", "SecretNamespaceNotAllowed")
    assert stalled.get("message") == refusal[1]


async def test_the_writer_shows_a_cluster_providers_disallowed_secret_namespace() -> None:
    store, sink = ProviderObjects(frozenset({"inferenceops"})), FakeSink()
    spec = {**FRIENDLI, "secretNamespace": "kube-system"}
    store.observe_cluster(None, obj("ClusterInferenceProvider", "shared", spec))
    status = ProviderStatus(store, lambda key: [], sink, clock=ManualClock(0.0, epoch=NOW))
    assert await status.sync() == 1
    key, patch = sink.patches[0]
    assert key == ("ClusterInferenceProvider", "", "shared")
    assert ready(patch) == ("False", "SecretNamespaceNotAllowed")
    assert "kube-system" in (condition(patch, "Ready") or {})["message"]
    assert (condition(patch, "Stalled") or {}).get("status") == "True"


async def test_only_the_member_owning_a_provider_object_writes_its_status() -> None:
    store = ProviderObjects()
    store.observe_namespaced(None, obj("InferenceProvider", "acct", FRIENDLI))
    clock = ManualClock(0.0, epoch=NOW)
    owned: set[tuple[str, str, str]] = set()
    sinks = FakeSink(), FakeSink()
    other = ProviderStatus(
        store, lambda key: [READY], sinks[0], clock=clock, owns=owned.__contains__
    )
    assert await other.sync() == 0 and not sinks[0].patches
    owner = ProviderStatus(store, lambda key: [READY], sinks[1], clock=clock, owns=lambda key: True)
    assert await owner.sync() == 1
    # Counted over every endpoint naming it, whichever member polls them (remote.Remote).
    assert sinks[1].patches[0][1]["endpoints"] == 1
