"""The operator's per-account and health metrics (docs/monitoring.md): what each counts, that
every label value is bounded (no endpoint, URL or token), and the series count at 1,000
endpoints on 20 accounts."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool, AccountSettings, account_label
from inferenceops.api.v1alpha1 import AccountSource
from inferenceops.kube.secrets import SecretCache
from inferenceops.metrics import Metrics

from .support import FakeWriter, VirtualClock, body, scheduling

TOKEN = "flp_metrics_test_token_0123456789"


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_an_account_is_labelled_by_its_provider_object_or_a_hash_of_its_key() -> None:
    namespaced = AccountSource(
        kind="InferenceProvider", namespace="ml", name="acct", secret_namespace="ml"
    )
    cluster = AccountSource(
        kind="ClusterInferenceProvider", namespace="", name="shared", secret_namespace="ops"
    )
    key = (("friendli", "https://friendli.test", "team"), "fingerprint", None)
    assert account_label(namespaced, key) == "ml/acct"
    assert account_label(cluster, key) == "cluster/shared"
    inline = account_label(None, key)
    assert inline.startswith("inline-") and len(inline) == len("inline-") + 12
    assert inline == account_label(None, key), "stable: the same account keeps its series"
    assert inline != account_label(None, (key[0], "another credential", None))
    assert "friendli" not in inline and "team" not in inline


async def test_requests_auth_failures_and_429_pauses_are_counted_per_account() -> None:
    answers = {"/ok": 200, "/denied": 401, "/forbidden": 403, "/busy": 429}

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Retry-After": "7"} if request.url.path == "/busy" else {}
        return httpx.Response(answers[request.url.path], headers=headers)

    metrics = Metrics()
    pool = AccountPool(metrics=metrics, transport=httpx.MockTransport(handler))
    try:
        client = pool.get("friendli", ("friendli", "a"), label="ml/acct").client
        for path in ("/ok", "/ok", "/denied", "/forbidden", "/busy"):
            await client.get(f"https://f.test{path}")
    finally:
        await pool.aclose()
    acct = {"provider": "friendli", "account": "ml/acct"}
    assert sample(metrics, "inferenceops_account_requests_total", **acct, code="200") == 2
    assert sample(metrics, "inferenceops_account_requests_total", **acct, code="401") == 1
    assert sample(metrics, "inferenceops_account_auth_failures_total", **acct) == 2
    assert sample(metrics, "inferenceops_account_pauses_total", **acct) == 1
    assert sample(metrics, "inferenceops_account_paused_seconds_total", **acct) == 7
    # The provider-wide counter stays as it was.
    assert (
        sample(metrics, "inferenceops_provider_requests_total", provider="friendli", code="429")
        == 1
    )


async def test_a_429_during_a_pause_counts_only_the_seconds_it_adds() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(float(request.url.path.strip("/")))
        return httpx.Response(429, headers={"Retry-After": "10"})

    metrics = Metrics()
    pool = AccountPool(metrics=metrics, transport=httpx.MockTransport(handler))
    try:
        client = pool.get("runpod", ("runpod", "a"), label="ml/acct").client
        # Both leave at 0: one answers at 0 (paused until 10), one at 4 (until 14).
        await asyncio.gather(client.get("https://r.test/0"), client.get("https://r.test/4"))
    finally:
        await pool.aclose()
    acct = {"provider": "runpod", "account": "ml/acct"}
    assert sample(metrics, "inferenceops_account_pauses_total", **acct) == 2
    assert sample(metrics, "inferenceops_account_paused_seconds_total", **acct) == 14


async def test_budget_utilization_is_the_share_of_the_last_minute_used() -> None:
    metrics = Metrics()
    pool = AccountPool(
        AccountSettings.at_rate(10.0),
        metrics=metrics,
        transport=httpx.MockTransport(lambda r: httpx.Response(200)),
    )
    acct = {"provider": "takeoff", "account": "cluster/t"}
    try:
        client = pool.get("takeoff", ("takeoff", "t"), label="cluster/t").client
        for _ in range(30):
            await client.get("https://t.test/x")
        # 10/s for 60 s is 600 requests: 30 of them is 5 %.
        assert sample(metrics, "inferenceops_account_budget_utilization", **acct) == pytest.approx(
            0.05
        )
        for _ in range(700):  # more than the budget's rate allows in a minute
            await client.get("https://t.test/x")
        used = sample(metrics, "inferenceops_account_budget_utilization", **acct)
        assert used == pytest.approx(1.0, abs=0.02), "the bucket held it to its rate"
        await asyncio.sleep(61)
        assert sample(metrics, "inferenceops_account_budget_utilization", **acct) == 0.0
    finally:
        await pool.aclose()


async def test_a_closed_account_drops_its_series() -> None:
    metrics = Metrics()
    pool = AccountPool(
        metrics=metrics, transport=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    try:
        await pool.get("takeoff", ("takeoff", "old")).client.get("https://t.test/x")
        await asyncio.sleep(10)
        await pool.get("takeoff", ("takeoff", "new")).client.get("https://t.test/x")
        await pool.close_idle(idle_seconds=5.0)
    finally:
        await pool.aclose()
    accounts = {
        s.labels["account"]
        for family in metrics.registry.collect()
        for s in family.samples
        if "account" in s.labels
    }
    assert accounts == {account_label(None, ("takeoff", "new"))}, "rotated keys must not pile up"


async def test_polls_in_flight_counts_endpoints_being_polled(clock: VirtualClock) -> None:
    seen: list[float | None] = []
    metrics_of: list[Metrics] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(sample(metrics_of[0], "inferenceops_polls_in_flight"))
        return httpx.Response(200, json={"data": {"stage": "READY", "progress": 100}})

    writer = FakeWriter()
    spec = {"pollInterval": "30s", "nsModelServer": {"url": "http://ns.test:8080"}}
    async with scheduling(handler, writer, SecretCache(), clock=clock) as sched:
        metrics_of.append(sched._metrics)
        sched.upsert(body("a", spec))
        await writer.wait_for(1)
        assert seen == [1.0]
        assert sample(metrics_of[0], "inferenceops_polls_in_flight") == 0.0


# --- cardinality at 1,000 endpoints ---------------------------------------------------------

ACCOUNTS = 20


def _answer(request: httpx.Request) -> httpx.Response:
    """Friendli by token: most accounts fine, one refused, one rate-limited, one failing."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    n = int(token.rsplit("-", 1)[1])
    if n == 1:
        return httpx.Response(401, json={"detail": "bad token"})
    if n == 2:
        return httpx.Response(429, headers={"Retry-After": "5"})
    if n == 3:
        return httpx.Response(503, text="unavailable")
    if request.url.path.endswith("/status"):
        return httpx.Response(200, json={"status": "RUNNING", "createdAt": "2026-01-01T00:00:00Z"})
    return httpx.Response(200, json={"id": "x", "currReplicaCnt": 1, "desiredReplicaCnt": 1})


async def _series_after_polling(endpoints: int, clock: VirtualClock) -> tuple[int, set[str]]:
    """Poll `endpoints` Friendli endpoints on 20 inline accounts for three intervals; the
    registry's sample count and every label value in it."""
    secrets = SecretCache()
    for a in range(ACCOUNTS):
        value = base64.b64encode(f"{TOKEN}-{a}".encode()).decode()
        secrets.put("ml", f"creds-{a}", {"token": value})
    writer = FakeWriter()
    async with scheduling(_answer, writer, secrets, clock=clock) as sched:
        for i in range(endpoints):
            spec: dict[str, Any] = {
                "pollInterval": "30s",
                "friendli": {
                    "endpointId": f"endpoint-{i}",
                    "url": "https://friendli.test",
                    "credentialsSecretRef": {"name": f"creds-{i % ACCOUNTS}", "key": "token"},
                },
            }
            sched.upsert(body(f"ep-{i}", spec))
        await asyncio.sleep(95)
        assert len(writer.patches) >= endpoints, "every endpoint was polled"
        registry = sched._metrics.registry
        samples = [s for family in registry.collect() for s in family.samples]
    return len(samples), {v for s in samples for v in s.labels.values()}


#: What 20 accounts cost, whatever the number of endpoints: ~90 fixed samples (histogram
#: buckets included) plus 5-6 per account and status code seen.
SERIES_BOUND = 250


async def test_1000_endpoints_on_20_accounts_keep_the_series_count_bounded(
    clock: VirtualClock,
) -> None:
    few, _ = await _series_after_polling(100, clock)
    many, labels = await _series_after_polling(1000, clock)
    assert many == few, f"{many} samples at 1,000 endpoints, {few} at 100: series grow per endpoint"
    assert many <= SERIES_BOUND, f"{many} samples"
    accounts = {v for v in labels if v.startswith("inline-")}
    assert len(accounts) == ACCOUNTS
    for value in labels:
        assert "ep-" not in value and "endpoint-" not in value, value
        assert "://" not in value and ".test" not in value, value
        assert TOKEN not in value and "flp_" not in value, value
