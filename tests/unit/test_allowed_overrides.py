"""Shared accounts stay shared: through a provider object an endpoint may set a team/workspace
only to what the object's `spec.allowedOverrides` lists, and the failure of a call with such an
override is the endpoint's, not the provider object's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from inferenceops.api import AccountSource, parse_spec
from inferenceops.kube.secrets import SecretCache
from inferenceops.provider_objects import ProviderObjects
from inferenceops.provider_status import ProviderStatus
from inferenceops.providers import all_providers
from inferenceops.scheduler import SchedulerSettings
from inferenceops.status import condition

from .support import (
    CREDS,
    FRIENDLI,
    FakeSink,
    FakeWriter,
    ManualClock,
    Provider,
    VirtualClock,
    body,
    friendli_running,
    obj,
    objects,
    provider_status_of,
    ready,
    ref_spec,
    scheduling,
    token,
    unresolved,
)

KEY = ("InferenceProvider", "ml", "acct")


def allowing_object(**allowed: list[str]) -> dict[str, Any]:
    """An InferenceProvider of team-a allowing the overrides `allowed`."""
    spec = {"friendli": {**FRIENDLI["friendli"], "teamId": "team-a"}}
    if allowed:
        spec["allowedOverrides"] = allowed
    return obj("InferenceProvider", "acct", spec)


def allowing(**allowed: list[str]) -> ProviderObjects:
    return objects(("InferenceProvider", allowing_object(**allowed)))


# --- resolution -------------------------------------------------------------------------------


def test_by_default_no_team_but_the_objects_own() -> None:
    store = allowing()
    err = unresolved(store, "ml", ref_spec(teamId="team-b"))
    assert err.reason == "OverrideNotAllowed"
    assert err.message.startswith("friendli.teamId 'team-b' is not allowed by InferenceProvider")
    assert "spec.allowedOverrides.teamId allows only its own value" in err.message
    # Repeating the object's own value is no override.
    resolved = store.resolve("ml", ref_spec(teamId="team-a"))
    assert resolved.account.overrides == ()
    assert store.resolve("ml", ref_spec()).account.overrides == ()


def test_listed_values_are_allowed_and_marked_as_overrides() -> None:
    store = allowing(teamId=["team-b", "team-c"])
    resolved = store.resolve("ml", ref_spec(teamId="team-b"))
    assert parse_spec(resolved.spec).config.model_dump()["team_id"] == "team-b"
    assert resolved.account.overrides == ("teamId",)
    err = unresolved(store, "ml", ref_spec(teamId="team-x"))
    assert err.reason == "OverrideNotAllowed" and "allows team-b, team-c" in err.message


def test_the_wildcard_allows_any() -> None:
    store = allowing(teamId=["*"])
    assert store.resolve("ml", ref_spec(teamId="anything")).account.overrides == ("teamId",)


def test_an_object_without_a_team_still_owns_the_choice() -> None:
    """No teamId on the object means the key's default team: picking another is an override."""
    store = objects(("InferenceProvider", obj("InferenceProvider", "acct", FRIENDLI)))
    assert unresolved(store, "ml", ref_spec(teamId="team-b")).reason == "OverrideNotAllowed"


def test_dataarts_workspaces_and_what_is_not_account_scoping() -> None:
    fabric = {
        "dataArtsFabric": {
            "url": "https://fabric.test",
            "workspaceId": "ws-1",
            "credentialsSecretRef": CREDS,
        }
    }
    runpod = {"runpod": {"credentialsSecretRef": CREDS, "api": "v2"}}
    store = objects(
        ("InferenceProvider", obj("InferenceProvider", "fabric", fabric)),
        ("InferenceProvider", obj("InferenceProvider", "rp", runpod)),
    )
    spec = {
        "providerRef": {"name": "fabric"},
        "dataArtsFabric": {"endpointId": "0" * 32, "workspaceId": "ws-2"},
    }
    err = unresolved(store, "ml", spec)
    assert err.reason == "OverrideNotAllowed" and "dataArtsFabric.workspaceId" in err.message
    # RunPod's API version picks no part of the account: still the endpoint's choice.
    rp = {"providerRef": {"name": "rp"}, "runpod": {"endpointId": "abc123", "api": "v1"}}
    assert store.resolve("ml", rp).account.overrides == ()


def test_an_unreadable_allow_list_allows_nothing() -> None:
    store = allowing(teamId="team-b")  # type: ignore[arg-type]  # bypassed the CRD's schema
    assert unresolved(store, "ml", ref_spec(teamId="team-b")).reason == "OverrideNotAllowed"


def test_every_id_field_an_endpoint_can_set_through_an_account_is_declared() -> None:
    """A new team/project/workspace field must be declared account-scoping (or name the
    endpoint), or endpoints could reach parts of a shared account its owner did not offer."""
    for provider in all_providers():
        model = provider.config_model
        if not model.credential_fields:
            continue
        ids = {f for f in model.model_fields if f.endswith("_id")}
        assert ids <= model.account_fields | model.endpoint_fields, provider.name
    by_name = {p.name: p.config_model.account_fields for p in all_providers()}
    assert by_name["friendli"] == {"team_id"}
    assert by_name["dataArtsFabric"] == {"workspace_id"}


# --- the provider object's status -------------------------------------------------------------

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
OWN = AccountSource("InferenceProvider", "ml", "acct", "ml")
OVERRIDE = AccountSource("InferenceProvider", "ml", "acct", "ml", overrides=("teamId",))


def status_after(*calls: tuple[AccountSource, str | None]) -> tuple[str, str]:
    store = allowing()
    clock = ManualClock(0.0, epoch=NOW)
    status = ProviderStatus(store, lambda key: [], FakeSink(), clock=clock)
    for source, reason in calls:
        clock.advance(1)
        status.record(source, reason, f"HTTP 401 ({reason})" if reason else "")
    asyncio.run(status.sync())
    return ready(store.status(KEY))


def test_an_overrides_failure_never_makes_the_object_not_ready() -> None:
    assert status_after((OWN, None), (OVERRIDE, "Unauthorized")) == ("True", "Authorized")
    assert status_after((OVERRIDE, "Unauthorized")) == ("Unknown", "NoCallsYet")
    assert status_after((OWN, None), (OVERRIDE, "RateLimited")) == ("True", "Authorized")


def test_an_overrides_success_counts_unless_an_own_call_failed() -> None:
    assert status_after((OVERRIDE, None)) == ("True", "Authorized")
    assert status_after((OWN, "Unauthorized"), (OVERRIDE, None)) == ("False", "Unauthorized")
    assert status_after((OWN, "Unauthorized"), (OVERRIDE, None), (OWN, None)) == (
        "True",
        "Authorized",
    )


def test_what_the_objects_own_fields_decide_counts_from_any_endpoint() -> None:
    """Its Secret and its URL are the object's whatever the endpoint overrides."""
    assert status_after((OWN, None), (OVERRIDE, "SecretMissing")) == ("False", "SecretMissing")
    assert status_after((OVERRIDE, "SecretMissing"), (OVERRIDE, None)) == ("True", "Authorized")


# --- the scheduler --------------------------------------------------------------------------


def team_b_forbidden(request: httpx.Request) -> httpx.Response:
    """The key may read its own team, not team-b."""
    if request.headers.get("x-friendli-team") == "team-b":
        return httpx.Response(403, json={"detail": "not a member of team-b"})
    return friendli_running(request)


async def test_a_bad_override_is_the_endpoints_alone(
    writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> None:
    sink, server = FakeSink(), Provider(team_b_forbidden)
    settings = SchedulerSettings(arrival_quiet=0.01)
    async with scheduling(
        server, writer, secrets, settings, clock=clock, provider_sink=sink
    ) as sched:
        status = provider_status_of(sched)
        sched.providers.observe_namespaced(None, allowing_object(teamId=["team-b"]))
        secrets.put("ml", "creds", token())
        sched.upsert(body("mine", ref_spec()))
        await writer.wait_for(1)
        sched.upsert(body("theirs", ref_spec(teamId="team-b")))
        await writer.wait_for(2)
        patches = dict(writer.patches)
        assert patches["mine"]["phase"] == "Running"
        theirs = condition(patches["theirs"], "Synced") or {}
        assert (theirs.get("status"), theirs.get("reason")) == ("False", "Unauthorized")
        await status.sync()
        assert ready(sched.providers.status(KEY)) == ("True", "Authorized")
        assert [e.reason for _, _, e in sink.events] == ["Authorized"]


async def test_a_forbidden_override_sends_nothing_until_the_owner_allows_it(
    writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> None:
    server = Provider(friendli_running)
    settings = SchedulerSettings(arrival_quiet=0.01)
    async with scheduling(server, writer, secrets, settings, clock=clock) as sched:
        secrets.put("ml", "creds", token())
        account = {"friendli": {**FRIENDLI["friendli"], "teamId": "team-a"}}
        sched.providers.observe_namespaced(None, obj("InferenceProvider", "acct", account))
        sched.upsert(body("f", ref_spec(teamId="team-b")))
        await writer.wait_for(1)
        patch = writer.patches[0][1]
        assert (condition(patch, "Synced") or {}).get("reason") == "OverrideNotAllowed"
        assert (condition(patch, "Stalled") or {}).get("reason") == "OverrideNotAllowed"
        assert server.requests == []
        allowed = {**account, "allowedOverrides": {"teamId": ["team-b"]}}
        sched.providers.observe_namespaced("MODIFIED", obj("InferenceProvider", "acct", allowed))
        await writer.wait_for(2)
        assert writer.patches[1][1]["phase"] == "Running"
        assert server.requests[0].headers["x-friendli-team"] == "team-b"


@pytest.mark.parametrize("cluster", [False, True])
def test_the_crd_documents_and_validates_the_allow_list(cluster: bool) -> None:
    from inferenceops.api.provider_crd import provider_crd

    version = provider_crd(cluster=cluster)["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    team = spec["properties"]["allowedOverrides"]["properties"]["teamId"]
    assert "'*' allows any" in team["description"] and team["maxItems"] == 64
    assert team["items"]["pattern"] == r"^(\*|[!-~]{1,256})$"
    messages = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert "allowedOverrides.teamId applies to a friendli block" in messages
