"""spec.providerRef: resolution and tenancy (provider_objects.py), and the scheduler acting on it
(the provider object appearing, changing and going; its Secret rotating; its budget)."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool
from inferenceops.api import parse_spec
from inferenceops.api.provider_kinds import LabelSelector
from inferenceops.kube.secrets import SecretCache
from inferenceops.provider_objects import ProviderObjects, selects
from inferenceops.providers import all_providers
from inferenceops.scheduler import RECONCILE_ANNOTATION, Scheduler, SchedulerSettings
from inferenceops.status import condition

from .support import (
    CREDS,
    FRIENDLI,
    TOKEN,
    FakeWriter,
    Provider,
    VirtualClock,
    Wiring,
    body,
    friendli_running,
    obj,
    objects,
    ref_spec,
    scheduling,
    token,
    unresolved,
)

# --- resolution -------------------------------------------------------------------------------


def test_namespaced_provider_fills_the_block_and_reads_secrets_in_its_namespace() -> None:
    budget = {"friendli": {**FRIENDLI["friendli"], "teamId": "team-a", "requestsPerSecond": 3}}
    store = objects(("InferenceProvider", obj("InferenceProvider", "acct", budget)))
    resolved = store.resolve("ml", ref_spec())
    parsed = parse_spec(resolved.spec)
    assert parsed.config.model_dump(by_alias=True, exclude_none=True) == {
        "endpointId": "ep1",
        "teamId": "team-a",
        "url": "https://friendli.test",
        "credentialsSecretRef": CREDS,
    }
    account = resolved.account
    assert (account.kind, account.namespace, account.name) == ("InferenceProvider", "ml", "acct")
    assert account.secret_namespace == "ml"
    assert (account.requests_per_second, account.burst) == (3, None)


def test_endpoint_fields_override_the_providers_defaults_but_not_where_requests_go() -> None:
    allowing = {**FRIENDLI, "allowedOverrides": {"teamId": ["team-b"]}}
    store = objects(("InferenceProvider", obj("InferenceProvider", "acct", allowing)))
    spec = store.resolve("ml", ref_spec(teamId="team-b")).spec
    assert spec["friendli"]["teamId"] == "team-b"
    # Someone else's credentials sent to a URL of the endpoint author's choosing: refused.
    err = unresolved(store, "ml", ref_spec(url="https://collector.example"))
    assert err.reason == "ProviderMismatch" and "friendli.url" in err.message
    # The same URL as the provider's is harmless.
    store.resolve("ml", ref_spec(url="https://friendli.test"))


def test_a_namespaced_provider_is_invisible_from_other_namespaces() -> None:
    store = objects(("InferenceProvider", obj("InferenceProvider", "acct", FRIENDLI)))
    err = unresolved(store, "other", ref_spec())
    assert err.reason == "ProviderMissing"
    assert err.message == "InferenceProvider other/acct not found"


def test_missing_and_mismatched_providers() -> None:
    runpod = {"runpod": {"credentialsSecretRef": CREDS}}
    store = objects(("InferenceProvider", obj("InferenceProvider", "rp", runpod)))
    assert unresolved(store, "ml", ref_spec(name="nope")).reason == "ProviderMissing"
    err = unresolved(store, "ml", ref_spec(name="rp"))
    assert err.reason == "ProviderMismatch"
    assert "is a runpod account; this endpoint's block is friendli" in err.message


def test_a_provider_block_the_model_refuses_is_named_with_its_field() -> None:
    bad = {"friendli": {"url": "ftp://friendli.test", "credentialsSecretRef": CREDS}}
    store = objects(("InferenceProvider", obj("InferenceProvider", "acct", bad)))
    err = unresolved(store, "ml", ref_spec())
    assert err.reason == "ProviderMismatch"
    assert err.message.startswith("InferenceProvider ml/acct: friendli.url: String should match")


def cluster(**extra: Any) -> dict[str, Any]:
    return obj(
        "ClusterInferenceProvider", "shared", {**FRIENDLI, "secretNamespace": "vault", **extra}
    )


def test_cluster_provider_reads_its_secret_namespace_only() -> None:
    store = objects(("ClusterInferenceProvider", cluster()))
    account = store.resolve("ml", ref_spec("ClusterInferenceProvider", "shared")).account
    assert (account.namespace, account.secret_namespace) == ("", "vault")


@pytest.mark.parametrize(
    ("conditions", "labels", "allowed"),
    [
        (None, {}, True),
        ([{"namespaces": ["ml"]}], {}, True),
        ([{"namespaces": ["other"]}], {}, False),
        ([{"namespaceSelector": {"matchLabels": {"team": "ml"}}}], {"team": "ml"}, True),
        ([{"namespaceSelector": {"matchLabels": {"team": "ml"}}}], {"team": "web"}, False),
        ([{"namespaces": ["other"]}, {"namespaceSelector": {}}], {}, True),
        ([{}], {}, False),
    ],
    ids=["open", "listed", "not-listed", "selected", "not-selected", "any-condition", "empty"],
)
def test_cluster_provider_conditions(
    conditions: Any, labels: dict[str, str], allowed: bool
) -> None:
    store = objects(("ClusterInferenceProvider", cluster(conditions=conditions)))
    store.observe_namespace(None, {"metadata": {"name": "ml", "labels": labels}})
    spec = ref_spec("ClusterInferenceProvider", "shared")
    if allowed:
        store.resolve("ml", spec)
    else:
        err = unresolved(store, "ml", spec)
        assert err.reason == "ProviderNotAllowed"
        assert "does not serve namespace ml" in err.message


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ({"key": "tier", "operator": "In", "values": ["gold"]}, {"tier": "gold"}, True),
        ({"key": "tier", "operator": "In", "values": ["gold"]}, {}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["gold"]}, {"tier": "gold"}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["gold"]}, {}, True),
        ({"key": "tier", "operator": "Exists"}, {"tier": "x"}, True),
        ({"key": "tier", "operator": "Exists"}, {}, False),
        ({"key": "tier", "operator": "DoesNotExist"}, {"tier": "x"}, False),
        ({"key": "tier", "operator": "DoesNotExist"}, {}, True),
    ],
)
def test_label_selector_expressions(
    expression: dict[str, Any], labels: dict[str, str], expected: bool
) -> None:
    selector = LabelSelector.model_validate({"matchExpressions": [expression]})
    assert selects(selector, labels) is expected


def test_only_a_spec_change_reports_a_change() -> None:
    seen: list[Any] = []
    store = ProviderObjects(changed=seen.append)
    store.observe_namespaced(None, obj("InferenceProvider", "acct", FRIENDLI))
    store.observe_namespaced(
        "MODIFIED", {**obj("InferenceProvider", "acct", FRIENDLI), "status": {}}
    )
    assert seen == [("InferenceProvider", "ml", "acct")]
    store.observe_namespaced("DELETED", obj("InferenceProvider", "acct", FRIENDLI))
    assert len(seen) == 2 and len(store) == 0


# --- the scheduler ------------------------------------------------------------------------------


@pytest.fixture
def provider() -> Provider:
    return Provider(friendli_running)


@pytest.fixture
async def env(
    provider: Provider, writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> AsyncIterator[tuple[Scheduler, FakeWriter, SecretCache]]:
    settings = SchedulerSettings(arrival_quiet=0.01)
    async with scheduling(provider, writer, secrets, settings, clock=clock) as sched:
        yield sched, writer, secrets


def synced(patch: dict[str, Any]) -> tuple[str | None, str | None]:
    found = condition(patch, "Synced") or {}
    return found.get("status"), found.get("reason")


async def test_deleting_the_provider_says_so_and_recreating_it_resumes(
    env: tuple[Scheduler, FakeWriter, SecretCache], provider: Provider
) -> None:
    sched, writer, secrets = env
    secrets.put("ml", "creds", token())
    sched.providers.observe_namespaced(None, obj("InferenceProvider", "acct", FRIENDLI))
    sched.upsert(body("f", ref_spec()))
    await writer.wait_for(1)
    assert writer.patches[0][1]["phase"] == "Running"
    sent = len(provider.requests)

    sched.providers.observe_namespaced("DELETED", obj("InferenceProvider", "acct", FRIENDLI))
    await writer.wait_for(2)
    patch = writer.patches[1][1]
    assert synced(patch) == ("False", "ProviderMissing")
    assert (condition(patch, "Stalled") or {}).get("reason") == "ProviderMissing"
    assert len(provider.requests) == sent  # nothing sent without an account

    sched.providers.observe_namespaced("ADDED", obj("InferenceProvider", "acct", FRIENDLI))
    await writer.wait_for(3)
    assert synced(writer.patches[2][1]) == ("True", "Polled")
    assert "Stalled" not in [c["type"] for c in writer.patches[2][1]["conditions"]]


async def test_a_forbidden_namespace_sends_no_request(
    env: tuple[Scheduler, FakeWriter, SecretCache], provider: Provider
) -> None:
    sched, writer, secrets = env
    secrets.put("vault", "creds", token())
    sched.providers.observe_cluster(None, cluster(conditions=[{"namespaces": ["prod"]}]))
    sched.upsert(body("f", ref_spec("ClusterInferenceProvider", "shared")))
    await writer.wait_for(1)
    assert synced(writer.patches[0][1]) == ("False", "ProviderNotAllowed")
    assert provider.requests == []
    # Labelling the namespace into a selector lets it in, with no change to the endpoint.
    sched.providers.observe_cluster(
        "MODIFIED",
        cluster(conditions=[{"namespaceSelector": {"matchLabels": {"team": "ml"}}}]),
    )
    await asyncio.sleep(0.05)
    assert len(writer.patches) == 1  # still not allowed: nothing new to say
    sched.providers.observe_namespace(
        "MODIFIED", {"metadata": {"name": "ml", "labels": {"team": "ml"}}}
    )
    await writer.wait_for(2)
    assert writer.patches[1][1]["phase"] == "Running"
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in provider.requests)


async def test_the_cluster_providers_secret_is_read_in_its_namespace_not_the_endpoints(
    env: tuple[Scheduler, FakeWriter, SecretCache], provider: Provider
) -> None:
    sched, writer, secrets = env
    secrets.put("ml", "creds", token())  # the endpoint's namespace: must not be used
    sched.providers.observe_cluster(None, cluster())
    sched.upsert(body("f", ref_spec("ClusterInferenceProvider", "shared")))
    await writer.wait_for(1)
    assert synced(writer.patches[0][1]) == ("False", "SecretMissing")
    assert "vault/creds" in (condition(writer.patches[0][1], "Synced") or {})["message"]
    assert provider.requests == []


async def test_rotating_the_providers_secret_takes_effect_at_the_next_poll(
    env: tuple[Scheduler, FakeWriter, SecretCache], provider: Provider
) -> None:
    sched, writer, secrets = env
    secrets.put("ml", "creds", token("revoked"))
    sched.providers.observe_namespaced(None, obj("InferenceProvider", "acct", FRIENDLI))
    sched.upsert(body("f", ref_spec()))
    await writer.wait_for(1)
    assert synced(writer.patches[0][1]) == ("False", "Unauthorized")
    secrets.put("ml", "creds", token())
    sched.secret_changed("ml", "creds")
    await writer.wait_for(2)
    assert writer.patches[1][1]["phase"] == "Running"
    assert provider.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


async def test_the_provider_objects_budget_is_its_accounts(
    provider: Provider, writer: FakeWriter, secrets: SecretCache, clock: VirtualClock
) -> None:
    secrets.put("ml", "creds", token())
    budget = {"friendli": {**FRIENDLI["friendli"], "requestsPerSecond": 7, "burst": 3}}
    # Polled as soon as asked, so that only the budget spaces the requests.
    settings = SchedulerSettings(arrival_quiet=0.0, timer_slack=0.0)
    async with scheduling(provider, writer, secrets, settings, clock=clock) as sched:
        sched.providers.observe_namespaced(None, obj("InferenceProvider", "acct", budget))
        sched.upsert(body("f", ref_spec()))
        await writer.wait_for(1)
        for n in range(2):  # two more polls at once, of two requests each (status, details)
            sched.upsert(body("f", ref_spec(), annotations={RECONCILE_ANNOTATION: str(n)}))
            await writer.wait_for(2 + n)
    times = [t - provider.times[0] for t in provider.times]
    assert len(times) == 6, times
    assert times[:3] == [0, 0, 0], f"a burst of 3: {times}"
    assert times[3] == pytest.approx(1 / 7, abs=1e-5), f"then 7 per second: {times}"
    assert [b - a for a, b in itertools.pairwise(times[3:])] == pytest.approx([1 / 7] * 2, abs=1e-5)


async def test_a_rate_without_a_burst_gets_two_seconds_of_it() -> None:
    pool = AccountPool()
    try:
        assert pool.get("friendli", "a", requests_per_second=7).bucket.capacity == 14
        default = pool.get("friendli", "b").bucket
        assert (default.rate, default.capacity) == (50, 100)
    finally:
        await pool.aclose()


async def test_neither_key_of_an_access_key_pair_reaches_status_or_events(
    env: tuple[Scheduler, FakeWriter, SecretCache], provider: Provider
) -> None:
    sched, writer, secrets = env
    ak, sk = "HPUAEXAMPLEACCESSKEY", "exampleSecretKey0123456789abcdefghijklmn"

    def echo(request: httpx.Request) -> httpx.Response:
        # A provider (or a proxy) quoting what it was sent, keys included.
        return httpx.Response(500, text=f"cannot serve {ak} / {sk}")

    provider.handler = echo
    encoded = {
        k: base64.b64encode(v.encode()).decode()
        for k, v in (("accessKeyId", ak), ("secretAccessKey", sk))
    }
    secrets.put("ml", "aksk", encoded)
    spec = {
        "dataArtsFabric": {
            "url": "https://fabric.test",
            "workspaceId": "ws-1",
            "endpointId": "0b5633ba2b904511ad514346f4000001",
            "accessKeySecretRef": {"name": "aksk"},
        }
    }
    sched.upsert(body("d", spec))
    await writer.wait_for(1)
    assert provider.requests[0].headers["authorization"].startswith(f"SDK-HMAC-SHA256 Access={ak}")
    text = repr(writer.patches) + repr(writer.events)
    assert ak not in text and sk not in text and "***" in text


async def test_the_scheduler_resolves_against_the_store_it_is_given() -> None:
    """An empty store is still the store the informers fill (it was once replaced by a new one
    because an empty store is falsy)."""
    store = ProviderObjects()
    sched = Scheduler(FakeWriter(), SecretCache(), AccountPool(), providers=store)
    assert sched.providers is store


def test_every_url_field_of_a_credentialed_provider_is_a_destination() -> None:
    """A URL field an endpoint could set would carry the provider object's credentials to a
    server of the endpoint author's choosing; a new one must be declared a destination."""
    for provider in all_providers():
        model = provider.config_model
        if not model.credential_fields:
            continue
        urls = {f for f in model.model_fields if f.endswith("url")}
        assert urls <= model.destination_fields | model.endpoint_fields, provider.name


def test_an_endpoint_cannot_point_runpods_queue_route_elsewhere() -> None:
    runpod = {"runpod": {"credentialsSecretRef": CREDS}}
    store = objects(("InferenceProvider", obj("InferenceProvider", "rp", runpod)))
    spec = {
        "providerRef": {"name": "rp"},
        "runpod": {"endpointId": "abc123", "queueMetrics": True, "queueUrl": "https://x.example"},
    }
    assert unresolved(store, "ml", spec).reason == "ProviderMismatch"


# --- where ClusterInferenceProviders may read Secrets (--cluster-secret-namespace) -------------


def test_a_cluster_provider_outside_the_allowed_secret_namespaces_is_refused() -> None:
    store = objects(("ClusterInferenceProvider", cluster()))
    store.cluster_secret_namespaces = frozenset({"platform"})
    err = unresolved(store, "ml", ref_spec("ClusterInferenceProvider", "shared"))
    assert err.reason == "SecretNamespaceNotAllowed"
    assert "namespace vault" in err.message
    assert "--cluster-secret-namespace: platform" in err.message
    assert store.refusal(("ClusterInferenceProvider", "", "shared")) == (err.reason, err.message)

    store.cluster_secret_namespaces = frozenset({"platform", "vault"})
    assert store.resolve("ml", ref_spec("ClusterInferenceProvider", "shared")).account
    assert store.refusal(("ClusterInferenceProvider", "", "shared")) is None


def test_only_cluster_providers_with_credentials_are_held_to_the_secret_namespaces() -> None:
    takeoff = obj("ClusterInferenceProvider", "tk", {"takeoff": {}, "secretNamespace": "x"})
    namespaced = obj("InferenceProvider", "acct", FRIENDLI)
    store = objects(("ClusterInferenceProvider", takeoff), ("InferenceProvider", namespaced))
    store.cluster_secret_namespaces = frozenset()
    assert store.refusal(("ClusterInferenceProvider", "", "tk")) is None  # reads no Secret
    assert store.refusal(("InferenceProvider", "ml", "acct")) is None  # its own namespace
    assert store.resolve("ml", ref_spec()).account


async def test_a_disallowed_secret_namespace_reads_nothing_and_sends_nothing(
    provider: Provider, writer: FakeWriter, clock: VirtualClock
) -> None:
    async def no_fetch(namespace: str, name: str) -> None:
        return None

    # As the operator's: the cache keeps only the Secrets the scheduler wants.
    wiring = Wiring()
    secrets = SecretCache(no_fetch, wiring.secret_changed)
    settings = SchedulerSettings(arrival_quiet=0.01)
    async with scheduling(provider, writer, secrets, settings, clock=clock, wiring=wiring) as sched:
        sched.providers.cluster_secret_namespaces = frozenset({"inferenceops"})
        secrets.put("vault", "creds", token())
        sched.providers.observe_cluster(None, cluster())
        sched.upsert(body("f", ref_spec("ClusterInferenceProvider", "shared")))
        await writer.wait_for(1)
    status = writer.patches[0][1]
    assert synced(status) == ("False", "SecretNamespaceNotAllowed")
    assert (condition(status, "Stalled") or {}).get("reason") == "SecretNamespaceNotAllowed"
    assert "vault" in (condition(status, "Synced") or {})["message"]
    assert provider.requests == []
    assert len(secrets) == 0, "the Secret is not even wanted"
