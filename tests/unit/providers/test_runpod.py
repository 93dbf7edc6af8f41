"""RunPod adapter: v1 and v2 mapping, URLs, config, and the batched (list) paths."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from inferenceops import status as st
from inferenceops.providers import (
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    Queue,
    Target,
    Workers,
)
from inferenceops.providers.runpod import RunPodConfig, RunPodProvider

from .support import failed, official, ok

TOKEN = "rp_test_token"
SECRET_REF = {"name": "runpod", "key": "token"}
V2 = "https://api.runpod.io/v2"
V1 = "https://rest.runpod.io/v1"


#: The official /health example: jobs inQueue 2, inProgress 0, failed 5.
HEALTH = official("runpod")["health"]["GET /v2/{endpoint_id}/health 200"]
QUEUE_URL = "https://api.runpod.ai/v2"


def config(endpoint_id: str = "ep1", **extra: Any) -> RunPodConfig:
    return RunPodConfig.model_validate(
        {"endpointId": endpoint_id, "credentialsSecretRef": SECRET_REF, **extra}
    )


def target(endpoint_id: str = "ep1", key: str | None = None, **extra: Any) -> Target[RunPodConfig]:
    return Target(
        key=key or f"ns/{endpoint_id}", config=config(endpoint_id, **extra), credential=TOKEN
    )


def summary(
    running: int = 0,
    idle: int = 0,
    initializing: int = 0,
    throttled: int = 0,
    unhealthy: int = 0,
    total: int | None = None,
) -> dict[str, int]:
    counts = {
        "running": running,
        "idle": idle,
        "initializing": initializing,
        "throttled": throttled,
        "unhealthy": unhealthy,
    }
    counts["total"] = sum(counts.values()) if total is None else total
    return counts


class FakeRunPod:
    """Answers like RunPod v1 and v2 from in-memory state and records every request."""

    def __init__(self, endpoints: Sequence[str] = ("ep1",)) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {
            i: {"id": i, "name": f"endpoint {i}", "workers": {"min": 0, "max": 3, "idleTimeout": 5}}
            for i in endpoints
        }
        self.summaries: dict[str, dict[str, int]] = {i: summary(running=1) for i in endpoints}
        self.v1_workers: dict[str, list[dict[str, Any]]] = {
            i: [{"id": "w1", "desiredStatus": "RUNNING"}] for i in endpoints
        }
        self.unlisted: set[str] = set()
        self.health: dict[str, httpx.Response] = {}
        self.overrides: dict[str, httpx.Response] = {}
        self.requests: list[httpx.Request] = []

    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path in self.overrides:
            return self.overrides[path]
        match path.split("/"):
            case ["", "v2", "serverless"]:
                listed = [e for i, e in self.endpoints.items() if i not in self.unlisted]
                return httpx.Response(200, json={"endpoints": listed})
            case ["", "v2", "serverless", endpoint_id] if endpoint_id in self.endpoints:
                return httpx.Response(200, json=self.endpoints[endpoint_id])
            case ["", "v2", "serverless", endpoint_id, "workers"] if endpoint_id in self.endpoints:
                return httpx.Response(
                    200,
                    json={
                        "workers": [],
                        "summary": self.summaries[endpoint_id],
                        "endpointVersion": 1,
                    },
                )
            case ["", "v2", endpoint_id, "health"] if endpoint_id in self.endpoints:
                return self.health.get(endpoint_id) or httpx.Response(200, json=HEALTH)
            case ["", "v2", *_]:
                return httpx.Response(
                    404,
                    json={"title": "Not Found", "status": 404, "detail": "endpoint not found"},
                    headers={"content-type": "application/problem+json"},
                )
            case ["", "v1", "endpoints"]:
                assert request.url.params["includeWorkers"] == "true"
                return httpx.Response(
                    200,
                    json=[self._v1(i) for i in self.endpoints if i not in self.unlisted],
                )
            case ["", "v1", "endpoints", endpoint_id] if endpoint_id in self.endpoints:
                assert request.url.params["includeWorkers"] == "true"
                return httpx.Response(200, json=self._v1(endpoint_id))
            case ["", "v1", *_]:
                return httpx.Response(404, json={"message": "endpoint not found"})
        raise AssertionError(f"unexpected request {request.url}")

    def _v1(self, endpoint_id: str) -> dict[str, Any]:
        return {
            "id": endpoint_id,
            "name": f"endpoint {endpoint_id}",
            "workersMin": 0,
            "workersMax": 3,
            "workers": self.v1_workers[endpoint_id],
        }


async def observe(
    fake: FakeRunPod, targets: Sequence[Target[RunPodConfig]]
) -> dict[str, PollResult]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        return dict(await RunPodProvider().observe(client, targets))


async def observe_one(fake: FakeRunPod, t: Target[RunPodConfig] | None = None) -> PollResult:
    t = t or target()
    return (await observe(fake, [t]))[t.key]


# --- v2 mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "phase", "ready", "total"),
    [
        (summary(running=1), Phase.RUNNING, 1, 1),
        (summary(idle=2), Phase.RUNNING, 2, 2),
        (summary(running=1, idle=1, initializing=1, throttled=1), Phase.RUNNING, 2, 4),
        (summary(running=1, unhealthy=1), Phase.DEGRADED, 1, 2),
        (summary(idle=1, unhealthy=3, initializing=1), Phase.DEGRADED, 1, 5),
        (summary(), Phase.IDLE, 0, 0),
        (summary(initializing=1), Phase.PROVISIONING, 0, 1),
        (summary(throttled=2), Phase.PROVISIONING, 0, 2),
        (summary(initializing=1, throttled=1), Phase.PROVISIONING, 0, 2),
        (summary(initializing=1, unhealthy=1), Phase.PROVISIONING, 0, 2),
        (summary(unhealthy=2), Phase.FAILED, 0, 2),
        (summary(total=3), Phase.UNKNOWN, 0, 3),
    ],
)
async def test_v2_summary_maps_to_phase(
    counts: dict[str, int], phase: Phase, ready: int, total: int
) -> None:
    fake = FakeRunPod()
    fake.summaries["ep1"] = counts
    obs = ok(await observe_one(fake))
    assert obs.phase is phase
    assert obs.workers == Workers(ready=ready, total=total, min=0, max=3)
    assert obs.provider_status == (
        f"running={counts['running']} idle={counts['idle']} "
        f"initializing={counts['initializing']} throttled={counts['throttled']} "
        f"unhealthy={counts['unhealthy']}"
    )
    if phase is Phase.FAILED:
        assert obs.error_code == "WorkersUnhealthy"
        assert obs.error_message
    else:
        assert obs.error_code is None


async def test_v2_null_or_missing_min_max_stay_none() -> None:
    fake = FakeRunPod(["a", "b"])
    fake.endpoints["a"]["workers"] = {"min": None, "max": None}
    del fake.endpoints["b"]["workers"]
    for endpoint_id in ("a", "b"):
        obs = ok(await observe_one(fake, target(endpoint_id)))
        assert obs.workers == Workers(ready=1, total=1, min=None, max=None)


async def test_v2_missing_total_is_the_sum() -> None:
    fake = FakeRunPod()
    fake.summaries["ep1"] = {"running": 1, "idle": 2, "unhealthy": 1}
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.DEGRADED
    assert obs.workers == Workers(ready=3, total=4, min=0, max=3)


async def test_v2_without_summary_counts_the_workers_list() -> None:
    fake = FakeRunPod()
    workers = [{"id": "a", "status": "IDLE"}, {"id": "b", "status": "UNHEALTHY"}, {"id": "c"}]
    fake.overrides["/v2/serverless/ep1/workers"] = httpx.Response(200, json={"workers": workers})
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.DEGRADED
    assert obs.workers == Workers(ready=1, total=3, min=0, max=3)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"summary": {"running": -1}},
        {"summary": {"running": "one"}},
        {"summary": 1},
        {"workers": "many"},
    ],
)
async def test_v2_unreadable_workers_answer_is_bad_response(body: dict[str, Any]) -> None:
    fake = FakeRunPod()
    fake.overrides["/v2/serverless/ep1/workers"] = httpx.Response(200, json=body)
    assert failed(await observe_one(fake)).reason is ErrorReason.BAD_RESPONSE


async def test_v2_endpoint_without_id_is_bad_response() -> None:
    fake = FakeRunPod()
    fake.overrides["/v2/serverless/ep1"] = httpx.Response(200, json={"workers": {"min": 0}})
    assert failed(await observe_one(fake)).reason is ErrorReason.BAD_RESPONSE


async def test_v2_endpoint_failure_fails_the_poll_without_asking_for_workers() -> None:
    fake = FakeRunPod([])
    err = failed(await observe_one(fake))
    assert err.reason is ErrorReason.NOT_FOUND
    assert "endpoint not found" in err.message
    assert fake.urls() == [f"{V2}/serverless/ep1"]


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (httpx.Response(500, json={"title": "Internal", "status": 500}), ErrorReason.UNREACHABLE),
        (httpx.Response(404, json={"title": "Not Found", "status": 404}), ErrorReason.NOT_FOUND),
        (httpx.Response(429, headers={"Retry-After": "3"}), ErrorReason.RATE_LIMITED),
        (httpx.Response(200, text="<html>"), ErrorReason.BAD_RESPONSE),
    ],
)
async def test_v2_workers_failure_fails_the_poll(
    response: httpx.Response, reason: ErrorReason
) -> None:
    fake = FakeRunPod()
    fake.overrides["/v2/serverless/ep1/workers"] = response
    assert failed(await observe_one(fake)).reason is reason


async def test_v2_problem_detail_is_in_the_message() -> None:
    fake = FakeRunPod()
    fake.overrides["/v2/serverless/ep1"] = httpx.Response(
        403, json={"title": "Forbidden", "status": 403, "detail": "key lacks endpoint:read"}
    )
    err = failed(await observe_one(fake))
    assert err.reason is ErrorReason.UNAUTHORIZED
    assert "key lacks endpoint:read" in err.message


# --- v1 mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "phase", "ready"),
    [
        (["RUNNING"], Phase.RUNNING, 1),
        (["RUNNING", "EXITED"], Phase.RUNNING, 1),
        (["RUNNING", "RUNNING", "TERMINATED"], Phase.RUNNING, 2),
        ([], Phase.IDLE, 0),
        (["EXITED"], Phase.IDLE, 0),
        (["EXITED", "TERMINATED"], Phase.IDLE, 0),
        (["TERMINATED", "SOMETHING_NEW", None], Phase.UNKNOWN, 0),
        ([None], Phase.UNKNOWN, 0),
    ],
)
async def test_v1_workers_map_to_phase(
    statuses: list[str | None], phase: Phase, ready: int
) -> None:
    fake = FakeRunPod()
    fake.v1_workers["ep1"] = [{"id": f"w{n}", "desiredStatus": s} for n, s in enumerate(statuses)]
    obs = ok(await observe_one(fake, target(api="v1")))
    assert obs.phase is phase
    assert obs.workers == Workers(ready=ready, total=len(statuses), min=0, max=3)
    assert obs.provider_status == f"workers running={ready} total={len(statuses)}"
    assert obs.error_code is None


async def test_v1_missing_workers_list_is_idle() -> None:
    fake = FakeRunPod()
    fake.overrides["/v1/endpoints/ep1"] = httpx.Response(200, json={"id": "ep1"})
    obs = ok(await observe_one(fake, target(api="v1")))
    assert obs.phase is Phase.IDLE
    assert obs.workers == Workers(ready=0, total=0, min=None, max=None)


async def test_v1_message_body_is_in_the_error() -> None:
    fake = FakeRunPod()
    fake.overrides["/v1/endpoints/ep1"] = httpx.Response(401, json={"message": "invalid api key"})
    err = failed(await observe_one(fake, target(api="v1")))
    assert err.reason is ErrorReason.UNAUTHORIZED
    assert "invalid api key" in err.message


@pytest.mark.parametrize(
    "body", [{}, {"id": "ep1", "workers": "many"}, {"id": "ep1", "workersMax": -1}, []]
)
async def test_v1_unreadable_endpoint_is_bad_response(body: Any) -> None:
    fake = FakeRunPod()
    fake.overrides["/v1/endpoints/ep1"] = httpx.Response(200, json=body)
    assert failed(await observe_one(fake, target(api="v1"))).reason is ErrorReason.BAD_RESPONSE


# --- requests and config ---------------------------------------------------------------------


async def test_v2_default_urls_and_bearer_token() -> None:
    fake = FakeRunPod()
    await observe_one(fake)
    assert fake.urls() == [f"{V2}/serverless/ep1", f"{V2}/serverless/ep1/workers"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)


async def test_v1_default_url_and_bearer_token() -> None:
    fake = FakeRunPod()
    await observe_one(fake, target(api="v1"))
    assert fake.urls() == [f"{V1}/endpoints/ep1?includeWorkers=true"]
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_custom_url_is_used_as_the_versioned_base() -> None:
    fake = FakeRunPod()
    await observe_one(fake, target(url="http://runpod.mock:9000/v2/"))
    assert fake.urls() == [
        "http://runpod.mock:9000/v2/serverless/ep1",
        "http://runpod.mock:9000/v2/serverless/ep1/workers",
    ]


def test_config_defaults_and_base_urls() -> None:
    c = config("ep_1-x")
    assert (c.endpoint_id, c.api, c.url) == ("ep_1-x", "v2", None)
    assert c.base_url() == V2
    assert config(api="v1").base_url() == V1
    assert config(api="v1", url="https://proxy.test/runpod/v1/").base_url() == (
        "https://proxy.test/runpod/v1"
    )


def test_account_key_and_label() -> None:
    provider = RunPodProvider()
    assert provider.account_key(config()) == ("runpod", "v2", V2)
    assert provider.account_key(config(api="v1")) == ("runpod", "v1", V1)
    assert provider.endpoint_label(config("abc")) == "abc"


@pytest.mark.parametrize(
    "endpoint_id", ["", "-ep", "_ep", "ep/1", "../x", "ep 1", "ep?x=1", "é", "x" * 129]
)
def test_config_rejects_bad_endpoint_ids(endpoint_id: str) -> None:
    with pytest.raises(ValidationError):
        config(endpoint_id)


@pytest.mark.parametrize("api", ["v3", "V2", "2", "", None])
def test_config_rejects_unknown_api(api: Any) -> None:
    with pytest.raises(ValidationError):
        config(api=api)


@pytest.mark.parametrize("url", ["rest.runpod.io/v1", "ftp://x", "https://x y"])
def test_config_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        config(url=url)


# --- batched ---------------------------------------------------------------------------------


async def test_v2_batch_is_one_list_plus_one_workers_call_per_target() -> None:
    fake = FakeRunPod(["a", "b", "c", "unrelated"])
    fake.summaries["b"] = summary(unhealthy=1)
    fake.endpoints["c"]["workers"] = {"min": 2, "max": 5}
    results = await observe(fake, [target("a"), target("b"), target("c")])
    assert ok(results["ns/a"]).phase is Phase.RUNNING
    assert ok(results["ns/b"]).phase is Phase.FAILED
    assert ok(results["ns/c"]).workers == Workers(ready=1, total=1, min=2, max=5)
    assert fake.urls()[0] == f"{V2}/serverless"
    assert sorted(fake.urls()[1:]) == [f"{V2}/serverless/{i}/workers" for i in "abc"]


async def test_v2_target_missing_from_the_list_falls_back() -> None:
    fake = FakeRunPod(["a", "hidden"])
    fake.unlisted = {"hidden"}
    results = await observe(fake, [target("a"), target("hidden"), target("gone")])
    assert ok(results["ns/a"]).phase is Phase.RUNNING
    assert ok(results["ns/hidden"]).phase is Phase.RUNNING
    assert failed(results["ns/gone"]).reason is ErrorReason.NOT_FOUND
    assert sorted(fake.urls()) == sorted(
        [
            f"{V2}/serverless",
            f"{V2}/serverless/a/workers",
            f"{V2}/serverless/hidden",
            f"{V2}/serverless/hidden/workers",
            f"{V2}/serverless/gone",
        ]
    )


async def test_v2_malformed_list_entry_falls_back() -> None:
    fake = FakeRunPod(["a", "b"])
    fake.overrides["/v2/serverless"] = httpx.Response(
        200, json={"endpoints": [fake.endpoints["a"], {"id": "b", "workers": "x"}, "junk"]}
    )
    results = await observe(fake, [target("a"), target("b")])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert f"{V2}/serverless/b" in fake.urls()
    assert f"{V2}/serverless/a" not in fake.urls()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"title": "Internal", "status": 500}),
        httpx.Response(403, json={"title": "Forbidden", "status": 403}),
        httpx.Response(200, json={"endpoints": "nope"}),
        httpx.Response(200, text="<html>"),
    ],
    ids=["500", "403", "wrong-shape", "html"],
)
async def test_v2_failing_list_falls_back_per_endpoint(response: httpx.Response) -> None:
    fake = FakeRunPod(["a", "b", "c"])
    fake.overrides["/v2/serverless"] = response
    results = await observe(fake, [target(i) for i in "abc"])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert len(fake.requests) == 1 + 2 * 3


async def test_v2_rate_limited_list_fails_the_batch_without_more_requests() -> None:
    fake = FakeRunPod(["a", "b"])
    fake.overrides["/v2/serverless"] = httpx.Response(429, headers={"Retry-After": "9"})
    results = await observe(fake, [target("a"), target("b")])
    for result in results.values():
        err = failed(result)
        assert err.reason is ErrorReason.RATE_LIMITED
        assert err.retry_after == 9
    assert len(fake.requests) == 1


async def test_v2_batch_workers_failure_fails_only_that_target() -> None:
    fake = FakeRunPod(["a", "b"])
    fake.overrides["/v2/serverless/b/workers"] = httpx.Response(502)
    results = await observe(fake, [target("a"), target("b")])
    assert ok(results["ns/a"]).phase is Phase.RUNNING
    assert failed(results["ns/b"]).reason is ErrorReason.UNREACHABLE


async def test_v1_batch_is_one_request() -> None:
    fake = FakeRunPod(["a", "b", "c", "unrelated"])
    fake.v1_workers["b"] = []
    fake.v1_workers["c"] = [{"desiredStatus": "SOMETHING_NEW"}]
    results = await observe(fake, [target(i, api="v1") for i in "abc"])
    assert ok(results["ns/a"]).phase is Phase.RUNNING
    assert ok(results["ns/b"]).phase is Phase.IDLE
    assert ok(results["ns/c"]).phase is Phase.UNKNOWN
    assert fake.urls() == [f"{V1}/endpoints?includeWorkers=true"]


async def test_v1_malformed_list_entry_falls_back_alone() -> None:
    fake = FakeRunPod(["a", "b", "c"])
    listed = [fake._v1("a"), {"id": "b", "workersMin": "many"}, "junk", fake._v1("c")]
    fake.overrides["/v1/endpoints"] = httpx.Response(200, json=listed)
    results = await observe(fake, [target(i, api="v1") for i in "abc"])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert sorted(fake.urls()) == [
        f"{V1}/endpoints/b?includeWorkers=true",
        f"{V1}/endpoints?includeWorkers=true",
    ], "only the endpoint whose entry was rejected is asked for on its own"


async def test_v1_target_missing_from_the_list_falls_back() -> None:
    fake = FakeRunPod(["a", "hidden"])
    fake.unlisted = {"hidden"}
    results = await observe(fake, [target(i, api="v1") for i in ("a", "hidden", "gone")])
    assert ok(results["ns/a"]).phase is Phase.RUNNING
    assert ok(results["ns/hidden"]).phase is Phase.RUNNING
    err = failed(results["ns/gone"])
    assert err.reason is ErrorReason.NOT_FOUND
    assert "endpoint not found" in err.message
    assert sorted(fake.urls()) == [
        f"{V1}/endpoints/gone?includeWorkers=true",
        f"{V1}/endpoints/hidden?includeWorkers=true",
        f"{V1}/endpoints?includeWorkers=true",
    ]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"message": "boom"}),
        httpx.Response(200, json={"endpoints": []}),
        httpx.Response(200, text="<html>"),
    ],
    ids=["500", "object-not-list", "html"],
)
async def test_v1_failing_list_falls_back_per_endpoint(response: httpx.Response) -> None:
    fake = FakeRunPod(["a", "b"])
    fake.overrides["/v1/endpoints"] = response
    results = await observe(fake, [target(i, api="v1") for i in "ab"])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert len(fake.requests) == 3


async def test_v1_rate_limited_list_fails_the_batch_without_more_requests() -> None:
    fake = FakeRunPod(["a", "b"])
    fake.overrides["/v1/endpoints"] = httpx.Response(429, headers={"Retry-After": "4"})
    results = await observe(fake, [target(i, api="v1") for i in "ab"])
    assert all(failed(r).reason is ErrorReason.RATE_LIMITED for r in results.values())
    assert len(fake.requests) == 1


async def test_targets_sharing_an_endpoint_share_requests() -> None:
    fake = FakeRunPod()
    results = await observe(fake, [target(key="ns/a"), target(key="ns/b")])
    assert ok(results["ns/a"]) == ok(results["ns/b"])
    assert len(fake.requests) == 2


async def test_v1_and_v2_targets_in_one_call_are_polled_separately() -> None:
    fake = FakeRunPod(["a", "b"])
    results = await observe(fake, [target("a", api="v1"), target("b")])
    assert ok(results["ns/a"]).provider_status == "workers running=1 total=1"
    assert ok(results["ns/b"]).provider_status.startswith("running=1 ")
    assert sorted(fake.urls()) == sorted(
        [
            f"{V1}/endpoints/a?includeWorkers=true",
            f"{V2}/serverless/b",
            f"{V2}/serverless/b/workers",
        ]
    )


# --- the official examples and every documented status value -------------------------------

OFFICIAL = official("runpod")
V2_WORKER_STATUSES = OFFICIAL["v2_worker_status"]
V1_DESIRED_STATUSES = OFFICIAL["v1_desired_status"]


def official_v2(workers: list[str], max_workers: int = 5) -> FakeRunPod:
    """RunPod v2 answering with its own examples, the workers' statuses replaced by `workers`."""
    fake = FakeRunPod()
    examples = official("runpod")["v2"]
    endpoint = examples["GET /v2/serverless/{id} 200"] | {"id": "ep1"}
    endpoint["workers"]["max"] = max_workers
    listing = examples["GET /v2/serverless/{id}/workers 200"]
    template = listing["workers"][0]
    listing["workers"] = [template | {"id": f"w{n}", "status": s} for n, s in enumerate(workers)]
    listing["summary"] = summary(**{s.lower(): workers.count(s) for s in set(workers)})
    fake.overrides["/v2/serverless/ep1"] = httpx.Response(200, json=endpoint)
    fake.overrides["/v2/serverless/ep1/workers"] = httpx.Response(200, json=listing)
    return fake


def official_v1(desired: list[str], max_workers: int = 3) -> FakeRunPod:
    """RunPod v1 answering with its own example, the workers' desiredStatus replaced."""
    fake = FakeRunPod()
    endpoint = official("runpod")["v1"]["GET /endpoints/{endpointId}?includeWorkers=true 200"]
    endpoint |= {"id": "ep1", "workersMax": max_workers}
    template = endpoint["workers"][0]
    endpoint["workers"] = [
        template | {"id": f"w{n}", "desiredStatus": s} for n, s in enumerate(desired)
    ]
    fake.overrides["/v1/endpoints/ep1"] = httpx.Response(200, json=endpoint)
    return fake


def ready_condition(obs: Observation) -> dict[str, Any]:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    resource = st.Resource(
        generation=1, provider="runpod", endpoint="ep1", poll_interval=30.0, now=now
    )
    found = st.condition(st.after_observation(None, obs, resource), "Ready")
    assert found is not None
    return dict(found)


async def test_official_v2_examples_read_as_running() -> None:
    fake = FakeRunPod()
    endpoint = OFFICIAL["v2"]["GET /v2/serverless/{id} 200"] | {"id": "ep1"}
    fake.overrides["/v2/serverless/ep1"] = httpx.Response(200, json=endpoint)
    fake.overrides["/v2/serverless/ep1/workers"] = httpx.Response(
        200, json=OFFICIAL["v2"]["GET /v2/serverless/{id}/workers 200"]
    )
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.RUNNING
    # The example's summary says 2 although it lists one worker; the summary is what counts.
    assert obs.workers == Workers(ready=2, total=2, min=0, max=5)


async def test_official_v1_example_reads_as_running() -> None:
    fake = FakeRunPod(["jpnw0v75y3qoql"])
    fake.overrides["/v1/endpoints/jpnw0v75y3qoql"] = httpx.Response(
        200, json=OFFICIAL["v1"]["GET /endpoints/{endpointId}?includeWorkers=true 200"]
    )
    obs = ok(await observe_one(fake, target("jpnw0v75y3qoql", api="v1")))
    assert obs.phase is Phase.RUNNING
    assert obs.workers == Workers(ready=1, total=1, min=0, max=3)


V2_STATUS_PHASES = {
    "RUNNING": Phase.RUNNING,
    "IDLE": Phase.RUNNING,
    "INITIALIZING": Phase.PROVISIONING,
    "THROTTLED": Phase.PROVISIONING,
    "UNHEALTHY": Phase.FAILED,
}


def test_every_documented_v2_worker_status_has_a_row() -> None:
    assert set(V2_WORKER_STATUSES) == set(V2_STATUS_PHASES)


@pytest.mark.parametrize("with_summary", [True, False])
@pytest.mark.parametrize("status", V2_WORKER_STATUSES)
async def test_v2_each_documented_worker_status(status: str, with_summary: bool) -> None:
    fake = official_v2([status, status])
    if not with_summary:
        body = fake.overrides["/v2/serverless/ep1/workers"].read()
        listing = {k: v for k, v in json.loads(body).items() if k != "summary"}
        fake.overrides["/v2/serverless/ep1/workers"] = httpx.Response(200, json=listing)
    obs = ok(await observe_one(fake))
    assert obs.phase is V2_STATUS_PHASES[status]
    ready = 2 if status in ("RUNNING", "IDLE") else 0
    assert obs.workers == Workers(ready=ready, total=2, min=0, max=5)


V1_STATUS_PHASES = {"RUNNING": Phase.RUNNING, "EXITED": Phase.IDLE, "TERMINATED": Phase.IDLE}


def test_every_documented_v1_desired_status_has_a_row() -> None:
    assert set(V1_DESIRED_STATUSES) == set(V1_STATUS_PHASES)


@pytest.mark.parametrize("desired", V1_DESIRED_STATUSES)
async def test_v1_each_documented_desired_status(desired: str) -> None:
    obs = ok(await observe_one(official_v1([desired, desired]), target(api="v1")))
    assert obs.phase is V1_STATUS_PHASES[desired]
    ready = 2 if desired == "RUNNING" else 0
    assert obs.workers == Workers(ready=ready, total=2, min=0, max=3)
    assert obs.error_code is None


async def test_v1_workers_going_away_are_idle_not_provisioning() -> None:
    obs = ok(await observe_one(official_v1(["EXITED", "TERMINATED"]), target(api="v1")))
    assert obs.phase is Phase.IDLE
    assert ready_condition(obs)["status"] == "True"


@pytest.mark.parametrize("workers", [[], ["RUNNING"], ["IDLE", "UNHEALTHY"], ["UNHEALTHY"]])
async def test_v2_max_workers_zero_is_suspended_and_not_ready(workers: list[str]) -> None:
    obs = ok(await observe_one(official_v2(workers, max_workers=0)))
    assert obs.phase is Phase.SUSPENDED
    assert obs.error_code == "MaxWorkersZero"
    assert obs.workers is not None and obs.workers.max == 0
    assert obs.workers.total == len(workers)
    ready = ready_condition(obs)
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert "7 days without requests" in ready["message"]
    assert "raise max workers in the RunPod console or API" in ready["message"]


@pytest.mark.parametrize("desired", [[], ["RUNNING"], ["EXITED"]])
async def test_v1_max_workers_zero_is_suspended_and_not_ready(desired: list[str]) -> None:
    obs = ok(await observe_one(official_v1(desired, max_workers=0), target(api="v1")))
    assert obs.phase is Phase.SUSPENDED
    assert obs.error_code == "MaxWorkersZero"
    ready = ready_condition(obs)
    assert (ready["status"], ready["reason"]) == ("False", "Suspended")
    assert "raise max workers in the RunPod console or API" in ready["message"]


async def test_max_workers_lowered_to_two_still_serves() -> None:
    # The 3-day step (max 2) leaves an endpoint that can start workers: not Suspended.
    assert ok(await observe_one(official_v2([], max_workers=2))).phase is Phase.IDLE
    v1 = ok(await observe_one(official_v1([], max_workers=2), target(api="v1")))
    assert v1.phase is Phase.IDLE


# --- rollouts: workers on an older endpoint version -------------------------------------------


def rollout(workers: list[tuple[str, bool, int | None]], max_workers: int = 5) -> FakeRunPod:
    """The official /workers example (endpointVersion 4) with (status, isStale, version)."""
    fake = official_v2([status for status, _, _ in workers], max_workers)
    listing = json.loads(fake.overrides["/v2/serverless/ep1/workers"].read())
    for worker, (_, is_stale, version) in zip(listing["workers"], workers, strict=True):
        worker |= {"isStale": is_stale, "version": version}
    fake.overrides["/v2/serverless/ep1/workers"] = httpx.Response(200, json=listing)
    return fake


@pytest.mark.parametrize(
    ("workers", "progress", "updated"),
    [
        ([("RUNNING", True, 3), ("IDLE", False, 4)], 50, "1/2"),
        ([("RUNNING", True, 3), ("RUNNING", True, 3), ("INITIALIZING", False, 4)], 33, "1/3"),
        # isStale false, but a version other than the endpoint's: either one makes it stale.
        ([("IDLE", False, 3), ("RUNNING", False, 4), ("RUNNING", False, 4)], 66, "2/3"),
        ([("IDLE", True, 3), ("UNHEALTHY", False, 4)], 50, "1/2"),
        ([("INITIALIZING", True, 3)], 0, "0/1"),
    ],
)
async def test_v2_stale_workers_are_a_rollout(
    workers: list[tuple[str, bool, int | None]], progress: int, updated: str
) -> None:
    obs = ok(await observe_one(rollout(workers)))
    assert obs.phase is Phase.UPDATING
    assert obs.progress == progress
    assert obs.provider_phase == f"rolling update: {updated} workers on version 4"
    assert f"(rolling update: {updated} workers on version 4)" in ready_condition(obs)["message"]


@pytest.mark.parametrize(
    ("workers", "phase"),
    [
        ([("RUNNING", False, 4), ("IDLE", False, 4)], Phase.RUNNING),
        ([("RUNNING", False, None)], Phase.RUNNING),
        # Nothing but unhealthy workers is a failure, rollout or not.
        ([("UNHEALTHY", True, 3), ("UNHEALTHY", False, 4)], Phase.FAILED),
    ],
)
async def test_v2_no_rollout_to_report(
    workers: list[tuple[str, bool, int | None]], phase: Phase
) -> None:
    obs = ok(await observe_one(rollout(workers)))
    assert obs.phase is phase
    assert (obs.progress, obs.provider_phase) == (None, None)


async def test_v2_max_workers_zero_wins_over_a_rollout() -> None:
    obs = ok(await observe_one(rollout([("RUNNING", True, 3)], max_workers=0)))
    assert obs.phase is Phase.SUSPENDED


# --- LOAD_BALANCER endpoints and the opt-in queue ----------------------------------------------


def official_endpoint(kind: str) -> FakeRunPod:
    """RunPod v2 answering with its official endpoint and workers examples, of type `kind`."""
    fake = FakeRunPod()
    endpoint = official("runpod")["v2"]["GET /v2/serverless/{id} 200"] | {"id": "ep1", "type": kind}
    fake.overrides["/v2/serverless/ep1"] = httpx.Response(200, json=endpoint)
    fake.overrides["/v2/serverless/ep1/workers"] = httpx.Response(
        200, json=OFFICIAL["v2"]["GET /v2/serverless/{id}/workers 200"]
    )
    return fake


@pytest.mark.parametrize("kind", ["LOAD_BALANCER", "QUEUE"])
async def test_load_balancer_endpoints_map_by_their_workers_as_queue_ones_do(kind: str) -> None:
    # One worker-status enum and one /workers route serve both types: an IDLE worker of a load
    # balancer is as ready to serve as one polling a queue.
    obs = ok(await observe_one(official_endpoint(kind)))
    assert (obs.phase, obs.workers) == (Phase.RUNNING, Workers(ready=2, total=2, min=0, max=5))
    assert obs.queue is None


async def test_queue_metrics_are_off_by_default_and_cost_no_request() -> None:
    fake = FakeRunPod()
    assert config().queue_metrics is False
    assert ok(await observe_one(fake)).queue is None
    assert not any(u.endswith("/health") for u in fake.urls())


async def test_queue_metrics_read_the_official_health_example() -> None:
    fake = official_endpoint("QUEUE")
    obs = ok(await observe_one(fake, target(queueMetrics=True)))
    assert obs.queue == Queue(in_queue=2, in_progress=0, failed=5)
    assert obs.phase is Phase.RUNNING
    # /health is the serverless endpoint API on api.runpod.ai, not REST v2 on api.runpod.io.
    assert fake.urls() == [
        f"{V2}/serverless/ep1",
        f"{V2}/serverless/ep1/workers",
        f"{QUEUE_URL}/ep1/health",
    ]
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"


async def test_queue_url_is_its_own_base() -> None:
    fake = FakeRunPod()
    t = target(url="http://runpod.mock:9000/v2", queueMetrics=True, queueUrl="http://q.mock/v2/")
    await observe_one(fake, t)
    assert fake.urls()[-1] == "http://q.mock/v2/ep1/health"


async def test_load_balancer_endpoint_is_never_asked_for_a_queue() -> None:
    # Its health URL is a worker's /ping: asking it would be traffic to the user's workers.
    fake = official_endpoint("LOAD_BALANCER")
    obs = ok(await observe_one(fake, target(queueMetrics=True)))
    assert obs.queue is None
    assert fake.urls() == [f"{V2}/serverless/ep1", f"{V2}/serverless/ep1/workers"]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, json={"error": "not found"}),
        httpx.Response(500, text="boom"),
        httpx.Response(401, json={"error": "no"}),
        httpx.Response(429, headers={"Retry-After": "5"}),
        httpx.Response(200, text="<html>oops</html>"),
        httpx.Response(200, json={"workers": {"idle": 1}}),
        httpx.Response(200, json={"jobs": {"inQueue": -1}}),
    ],
    ids=["404", "500", "401", "429", "html", "no-jobs", "negative"],
)
async def test_failing_health_keeps_the_observation_without_a_queue(
    response: httpx.Response,
) -> None:
    fake = FakeRunPod()
    fake.health["ep1"] = response
    obs = ok(await observe_one(fake, target(queueMetrics=True)))
    assert (obs.phase, obs.queue) == (Phase.RUNNING, None)


async def test_health_without_some_counts_keeps_the_others() -> None:
    fake = FakeRunPod()
    fake.health["ep1"] = httpx.Response(200, json={"jobs": {"inQueue": 4}})
    obs = ok(await observe_one(fake, target(queueMetrics=True)))
    assert obs.queue == Queue(in_queue=4)


async def test_batch_asks_only_opted_in_endpoints_and_answers_only_opted_in_targets() -> None:
    fake = FakeRunPod(["a", "b"])
    targets = [
        target("a", queueMetrics=True),
        target("a", key="other/a"),  # the same endpoint, not opted in
        target("b"),
    ]
    results = await observe(fake, targets)
    assert ok(results["ns/a"]).queue == Queue(in_queue=2, in_progress=0, failed=5)
    assert ok(results["other/a"]).queue is None
    assert ok(results["ns/b"]).queue is None
    assert [u for u in fake.urls() if u.endswith("/health")] == [f"{QUEUE_URL}/a/health"]


def test_queue_metrics_config() -> None:
    c = config(queueMetrics=True)
    assert (c.queue_metrics, c.queue_url, c.queue_base_url()) == (True, None, QUEUE_URL)
    assert config(queueUrl="https://proxy.test/rp/").queue_base_url() == "https://proxy.test/rp"
    with pytest.raises(ValidationError, match="queueMetrics needs api v2"):
        config(api="v1", queueMetrics=True)
    with pytest.raises(ValidationError):
        config(queueUrl="https://user:pw@proxy.test/v2")
