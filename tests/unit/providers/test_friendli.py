"""FriendliAI adapter: mapping, details, headers, config, and the batched (list) path."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from inferenceops.providers import (
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    Target,
    Workers,
)
from inferenceops.providers.friendli import FriendliConfig, FriendliProvider

from .support import failed, official, ok

TOKEN = "flp_test_token"
BASE = "https://api.friendli.ai/dedicated/beta/endpoint"
SECRET_REF = {"name": "friendli", "key": "token"}

Handler = (
    Callable[[httpx.Request], httpx.Response]
    | Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
)


def config(endpoint_id: str = "ep1", **extra: Any) -> FriendliConfig:
    return FriendliConfig.model_validate(
        {"endpointId": endpoint_id, "credentialsSecretRef": SECRET_REF, **extra}
    )


def target(
    endpoint_id: str = "ep1", key: str | None = None, **extra: Any
) -> Target[FriendliConfig]:
    return Target(
        key=key or f"ns/{endpoint_id}", config=config(endpoint_id, **extra), credential=TOKEN
    )


def status_doc(status: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    return {"status": status, "createdAt": "2025-01-01T00:00:00Z", **extra}


def details_doc(**extra: Any) -> dict[str, Any]:
    return {
        "id": "ep1",
        "currReplicaCnt": 1,
        "desiredReplicaCnt": 2,
        "updatedReplicaCnt": 1,
        "autoscalingMin": 0,
        "autoscalingMax": 4,
        **extra,
    }


class FakeFriendli:
    """Answers like Friendli from in-memory state and records every request."""

    def __init__(self, statuses: dict[str, dict[str, Any]] | None = None) -> None:
        self.statuses = statuses if statuses is not None else {"ep1": status_doc()}
        self.details: dict[str, httpx.Response] = {}
        self.requests: list[httpx.Request] = []
        self.page_size: int | None = None
        self.list_response: httpx.Response | None = None
        self.status_response: httpx.Response | None = None
        self.listed: set[str] | None = None

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def count(self, kind: str) -> int:
        return sum(1 for r in self.requests if _kind(r) == kind)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        kind = _kind(request)
        endpoint_id = request.url.path.removeprefix("/dedicated/beta/endpoint/").split("/")[0]
        if kind == "list":
            return self.list_response or self._page(request)
        if kind == "status":
            if self.status_response is not None:
                return self.status_response
            if endpoint_id not in self.statuses:
                return httpx.Response(404, json={"detail": "Not Found"})
            return httpx.Response(200, json=self.statuses[endpoint_id])
        if endpoint_id in self.details:
            return self.details[endpoint_id]
        if endpoint_id not in self.statuses:
            return httpx.Response(404, json={"detail": "Not Found"})
        return httpx.Response(200, json=details_doc(id=endpoint_id))

    def _page(self, request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        size = min(limit, self.page_size or limit)
        ids = sorted(i for i in self.statuses if self.listed is None or i in self.listed)
        start = int(request.url.params.get("cursor", "0"))
        chunk = ids[start : start + size]
        more = start + size < len(ids)
        return httpx.Response(
            200,
            json={
                "data": {i: self.statuses[i] for i in chunk},
                "nextCursor": str(start + size) if more else None,
            },
        )


def _kind(request: httpx.Request) -> str:
    path = request.url.path
    if path == "/dedicated/beta/endpoint":
        return "list"
    return "status" if path.endswith("/status") else "details"


async def observe(
    handler: Handler,
    targets: Sequence[Target[FriendliConfig]],
    provider: FriendliProvider | None = None,
) -> dict[str, PollResult]:
    provider = provider or FriendliProvider()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return dict(await provider.observe(client, targets))


async def observe_one(handler: Handler, t: Target[FriendliConfig] | None = None) -> PollResult:
    t = t or target()
    return (await observe(handler, [t]))[t.key]


# --- mapping ---------------------------------------------------------------------------------


OFFICIAL = official("friendli")
STATUS_EXAMPLE = OFFICIAL["examples"]["GET /dedicated/beta/endpoint/{endpoint_id}/status 200"]
DETAILS_EXAMPLE = OFFICIAL["examples"]["GET /dedicated/beta/endpoint/{endpoint_id} 200"]
#: Every documented status (InferenceDeploymentStatus) and what it maps to.
DOCUMENTED_STATUS_PHASES = {
    "INITIALIZING": Phase.PROVISIONING,
    "RUNNING": Phase.RUNNING,
    "READY": Phase.RUNNING,
    "UPDATING": Phase.UPDATING,
    "SLEEPING": Phase.SLEEPING,
    "AWAKING": Phase.WAKING,
    "FAILED": Phase.FAILED,
    "STOPPING": Phase.TERMINATING,
    "TERMINATING": Phase.TERMINATING,
    "TERMINATED": Phase.TERMINATED,
    "UNKNOWN": Phase.UNKNOWN,
}


def test_every_documented_status_has_a_row() -> None:
    assert set(OFFICIAL["status"]) == set(DOCUMENTED_STATUS_PHASES)


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        *DOCUMENTED_STATUS_PHASES.items(),
        ("HIBERNATING", Phase.UNKNOWN),
        ("running", Phase.UNKNOWN),
    ],
)
async def test_status_maps_to_phase(status: str, phase: Phase) -> None:
    obs = ok(await observe_one(FakeFriendli({"ep1": status_doc(status)})))
    assert obs.phase is phase
    assert obs.provider_status == status
    if phase is not Phase.FAILED:
        assert obs.error_code is None


@pytest.mark.parametrize("status", OFFICIAL["status"])
async def test_official_example_with_each_documented_status(status: str) -> None:
    fake = FakeFriendli({"ep1": STATUS_EXAMPLE | {"status": status}})
    fake.details["ep1"] = httpx.Response(200, json=DETAILS_EXAMPLE)
    obs = ok(await observe_one(fake))
    assert obs.phase is DOCUMENTED_STATUS_PHASES[status]
    assert obs.provider_status == status
    assert obs.workers == Workers(ready=1, total=1, min=0, max=1)


@pytest.mark.parametrize("phase", OFFICIAL["phase"])
async def test_each_documented_initializing_phase_is_the_provider_phase(phase: str) -> None:
    fake = FakeFriendli({"ep1": STATUS_EXAMPLE | {"phase": phase}})
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.PROVISIONING
    assert obs.provider_phase == phase


@pytest.mark.parametrize("code", OFFICIAL["error_codes"])
async def test_each_documented_error_code_is_the_error_code(code: str) -> None:
    fake = FakeFriendli({"ep1": STATUS_EXAMPLE | {"status": "FAILED", "errorCode": code}})
    obs = ok(await observe_one(fake))
    assert (obs.phase, obs.error_code) == (Phase.FAILED, code)


async def test_initializing_reports_the_phase_field() -> None:
    fake = FakeFriendli({"ep1": status_doc("INITIALIZING", phase="DOWNLOADING_MODEL")})
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.PROVISIONING
    assert obs.provider_phase == "DOWNLOADING_MODEL"


async def test_unlisted_phase_value_passes_through() -> None:
    fake = FakeFriendli({"ep1": status_doc("INITIALIZING", phase="PULLING_IMAGE")})
    assert ok(await observe_one(fake)).provider_phase == "PULLING_IMAGE"


async def test_null_phase_is_none() -> None:
    fake = FakeFriendli({"ep1": status_doc("RUNNING", phase=None)})
    assert ok(await observe_one(fake)).provider_phase is None


async def test_failed_carries_error_code() -> None:
    fake = FakeFriendli(
        {"ep1": status_doc("FAILED", errorCode="WORKLOAD_INIT_INSUFFICIENT_DISK_ERROR")}
    )
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.FAILED
    assert obs.error_code == "WORKLOAD_INIT_INSUFFICIENT_DISK_ERROR"


async def test_failed_without_error_code_still_has_one() -> None:
    obs = ok(await observe_one(FakeFriendli({"ep1": status_doc("FAILED", errorCode=None)})))
    assert obs.error_code == "FAILED"


async def test_unlisted_error_code_passes_through() -> None:
    obs = ok(await observe_one(FakeFriendli({"ep1": status_doc("FAILED", errorCode="NEW_ERR")})))
    assert obs.error_code == "NEW_ERR"


async def test_error_code_ignored_unless_failed() -> None:
    fake = FakeFriendli({"ep1": status_doc("RUNNING", errorCode="WORKLOAD_INIT_GRPC_ERROR")})
    assert ok(await observe_one(fake)).error_code is None


@pytest.mark.parametrize("body", [{}, {"status": None}, {"status": 3}, {"phase": "X"}])
async def test_status_without_a_status_string_is_bad_response(body: dict[str, Any]) -> None:
    fake = FakeFriendli()
    fake.status_response = httpx.Response(200, json=body)
    assert failed(await observe_one(fake)).reason is ErrorReason.BAD_RESPONSE


# --- workers from details --------------------------------------------------------------------


def official_details(**counts: int | None) -> httpx.Response:
    return httpx.Response(
        200, json=OFFICIAL["examples"]["GET /dedicated/beta/endpoint/{endpoint_id} 200"] | counts
    )


async def test_updating_shows_the_rollout_from_updated_replicas() -> None:
    fake = FakeFriendli({"ep1": status_doc("UPDATING")})
    fake.details["ep1"] = official_details(desiredReplicaCnt=4, updatedReplicaCnt=1)
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.UPDATING
    assert obs.provider_phase == "rolling update: 1/4 replicas updated"
    assert obs.progress == 25


async def test_official_details_while_updating_is_a_finished_rollout() -> None:
    fake = FakeFriendli({"ep1": status_doc("UPDATING")})
    fake.details["ep1"] = official_details()  # 1 desired, 1 updated
    obs = ok(await observe_one(fake))
    assert (obs.provider_phase, obs.progress) == ("rolling update: 1/1 replicas updated", 100)


async def test_more_updated_than_desired_is_capped_at_done() -> None:
    # Scaling down mid-rollout can leave the old count above the new desired one.
    fake = FakeFriendli({"ep1": status_doc("UPDATING")})
    fake.details["ep1"] = official_details(desiredReplicaCnt=2, updatedReplicaCnt=3)
    obs = ok(await observe_one(fake))
    assert (obs.provider_phase, obs.progress) == ("rolling update: 2/2 replicas updated", 100)


@pytest.mark.parametrize(
    "counts",
    [
        {"updatedReplicaCnt": None},
        {"desiredReplicaCnt": None},
        {"desiredReplicaCnt": 0, "updatedReplicaCnt": 0},
    ],
    ids=["updated-null", "desired-null", "desired-zero"],
)
async def test_updating_without_usable_counts_has_no_progress(counts: dict[str, Any]) -> None:
    fake = FakeFriendli({"ep1": status_doc("UPDATING")})
    fake.details["ep1"] = official_details(**counts)
    obs = ok(await observe_one(fake))
    assert (obs.phase, obs.provider_phase, obs.progress) == (Phase.UPDATING, None, None)


async def test_updated_replicas_mean_nothing_outside_updating() -> None:
    fake = FakeFriendli({"ep1": status_doc("RUNNING")})
    fake.details["ep1"] = official_details(desiredReplicaCnt=4, updatedReplicaCnt=1)
    obs = ok(await observe_one(fake))
    assert (obs.provider_phase, obs.progress) == (None, None)


async def test_updating_with_a_documented_phase_keeps_it() -> None:
    fake = FakeFriendli({"ep1": status_doc("UPDATING", phase="DOWNLOADING_MODEL")})
    fake.details["ep1"] = official_details(desiredReplicaCnt=4, updatedReplicaCnt=1)
    obs = ok(await observe_one(fake))
    assert (obs.provider_phase, obs.progress) == ("DOWNLOADING_MODEL", 25)


async def test_workers_come_from_details() -> None:
    obs = ok(await observe_one(FakeFriendli()))
    assert obs.workers == Workers(ready=1, total=2, min=0, max=4)


async def test_null_replica_counts_stay_none() -> None:
    fake = FakeFriendli()
    fake.details["ep1"] = httpx.Response(
        200,
        json=details_doc(
            currReplicaCnt=None, desiredReplicaCnt=None, autoscalingMin=None, autoscalingMax=None
        ),
    )
    assert ok(await observe_one(fake)).workers == Workers()


async def test_missing_replica_counts_stay_none() -> None:
    fake = FakeFriendli()
    fake.details["ep1"] = httpx.Response(200, json={"id": "ep1", "currReplicaCnt": 3})
    assert ok(await observe_one(fake)).workers == Workers(ready=3)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(404, json={"detail": "Not Found"}),
        httpx.Response(500, text="boom"),
        httpx.Response(401, json={"detail": "no"}),
        httpx.Response(429, headers={"Retry-After": "5"}),
        httpx.Response(200, text="<html>oops</html>"),
        httpx.Response(200, json=["a"]),
        httpx.Response(200, json={"currReplicaCnt": "lots"}),
        httpx.Response(200, json={"currReplicaCnt": -1}),
    ],
    ids=["404", "500", "401", "429", "html", "list", "wrong-type", "negative"],
)
async def test_failing_details_keep_the_observation_without_workers(
    response: httpx.Response,
) -> None:
    fake = FakeFriendli({"ep1": status_doc("SLEEPING")})
    fake.details["ep1"] = response
    obs = ok(await observe_one(fake))
    assert obs.phase is Phase.SLEEPING
    assert obs.workers is None


async def test_details_timeout_keeps_the_observation() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if _kind(request) == "details":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json=status_doc())

    obs = ok(await observe_one(handler))
    assert obs.phase is Phase.RUNNING
    assert obs.workers is None


async def test_status_error_fails_the_poll_and_skips_details() -> None:
    fake = FakeFriendli()
    fake.status_response = httpx.Response(503, json={"detail": "maintenance"})
    err = failed(await observe_one(fake))
    assert err.reason is ErrorReason.UNREACHABLE
    assert "maintenance" in err.message
    assert fake.count("details") == 0


async def test_unknown_endpoint_is_not_found() -> None:
    assert failed(await observe_one(FakeFriendli({}))).reason is ErrorReason.NOT_FOUND


async def test_single_target_calls_details_every_poll() -> None:
    fake = FakeFriendli()
    provider = FriendliProvider()
    for _ in range(3):
        await observe(fake, [target()], provider)
    assert fake.count("status") == 3
    assert fake.count("details") == 3
    assert fake.count("list") == 0


# --- requests --------------------------------------------------------------------------------


async def test_requests_default_url_and_bearer_token_without_team() -> None:
    fake = FakeFriendli()
    await observe_one(fake)
    assert [str(r.url) for r in fake.requests] == [f"{BASE}/ep1/status", f"{BASE}/ep1"]
    for request in fake.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert "x-friendli-team" not in request.headers


async def test_team_header_sent_when_set() -> None:
    fake = FakeFriendli({"a": status_doc(), "b": status_doc()})
    await observe(fake, [target("a", teamId="team-42"), target("b", teamId="team-42")])
    await observe(fake, [target("a", teamId="team-42")])
    assert {_kind(r) for r in fake.requests} == {"list", "status", "details"}
    assert all(r.headers["x-friendli-team"] == "team-42" for r in fake.requests)


async def test_custom_url_trailing_slash() -> None:
    fake = FakeFriendli()
    await observe_one(fake, target(url="http://friendli.internal:8080/api/"))
    assert (
        str(fake.requests[0].url)
        == "http://friendli.internal:8080/api/dedicated/beta/endpoint/ep1/status"
    )


async def test_targets_sharing_an_endpoint_share_requests() -> None:
    fake = FakeFriendli()
    results = await observe(fake, [target(key="ns/a"), target(key="ns/b")])
    assert ok(results["ns/a"]) == ok(results["ns/b"])
    assert fake.paths() == ["/dedicated/beta/endpoint/ep1/status", "/dedicated/beta/endpoint/ep1"]


async def test_targets_of_different_teams_are_polled_separately() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        team = request.headers.get("x-friendli-team")
        seen.append((request.url.path, team))
        status = "RUNNING" if team == "t1" else "SLEEPING"
        if _kind(request) == "status":
            return httpx.Response(200, json=status_doc(status))
        return httpx.Response(200, json=details_doc())

    results = await observe(
        handler, [target("ep1", key="a", teamId="t1"), target("ep1", key="b", teamId="t2")]
    )
    assert ok(results["a"]).phase is Phase.RUNNING
    assert ok(results["b"]).phase is Phase.SLEEPING
    assert ("/dedicated/beta/endpoint/ep1/status", "t1") in seen
    assert ("/dedicated/beta/endpoint/ep1/status", "t2") in seen


def test_account_key_and_label() -> None:
    provider = FriendliProvider()
    assert provider.account_key(config()) == ("friendli", "https://api.friendli.ai", None)
    assert provider.account_key(config(teamId="t", url="https://x.test/")) == (
        "friendli",
        "https://x.test",
        "t",
    )
    assert provider.endpoint_label(config("abc")) == "abc"


# --- config ----------------------------------------------------------------------------------


def test_config_defaults_and_aliases() -> None:
    c = config("ep_1-x")
    assert c.endpoint_id == "ep_1-x"
    assert c.team_id is None
    assert c.url == "https://api.friendli.ai"
    assert c.credentials_secret_ref.name == "friendli"


@pytest.mark.parametrize(
    "endpoint_id", ["", "-ep", "_ep", "ep/1", "../x", "ep 1", "ep\n", "é", "x" * 129]
)
def test_config_rejects_bad_endpoint_ids(endpoint_id: str) -> None:
    with pytest.raises(ValidationError):
        config(endpoint_id)


def test_config_accepts_longest_endpoint_id() -> None:
    assert config("x" * 128).endpoint_id == "x" * 128


@pytest.mark.parametrize("team", ["", "a b", "t\r\nX-Evil: 1", "x" * 257])
def test_config_rejects_bad_team_ids(team: str) -> None:
    with pytest.raises(ValidationError):
        config(teamId=team)


@pytest.mark.parametrize("url", ["api.friendli.ai", "ftp://x", "https://", "https://x y"])
def test_config_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        config(url=url)


def test_config_requires_endpoint_id_and_secret() -> None:
    with pytest.raises(ValidationError):
        FriendliConfig.model_validate({"credentialsSecretRef": SECRET_REF})
    with pytest.raises(ValidationError):
        FriendliConfig.model_validate({"endpointId": "ep1"})


# --- batched ---------------------------------------------------------------------------------


def many(n: int, status: str = "RUNNING") -> dict[str, dict[str, Any]]:
    return {f"ep{i}": status_doc(status) for i in range(n)}


async def test_batch_answers_every_target_from_one_list_page() -> None:
    fake = FakeFriendli(many(3) | {"other": status_doc("FAILED")})
    results = await observe(fake, [target(f"ep{i}") for i in range(3)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert ok(results["ns/ep0"]).workers == Workers(ready=1, total=2, min=0, max=4)
    assert fake.count("list") == 1
    assert fake.count("status") == 0
    assert fake.count("details") == 3
    assert fake.requests[0].url.params["limit"] == "100"
    assert "cursor" not in fake.requests[0].url.params


async def test_batch_pages_with_cursor() -> None:
    fake = FakeFriendli(many(25))
    fake.page_size = 10
    # Ids sort as text, so ep9 is on the last page.
    results = await observe(fake, [target("ep1"), target("ep9")])
    assert all(isinstance(r, Observation) for r in results.values())
    lists = [r for r in fake.requests if _kind(r) == "list"]
    assert [r.url.params.get("cursor") for r in lists] == [None, "10", "20"]
    assert fake.count("status") == 0


async def test_batch_stops_paging_once_every_target_is_found() -> None:
    fake = FakeFriendli(many(50))
    fake.page_size = 10
    await observe(fake, [target("ep0"), target("ep1")])
    assert fake.count("list") == 1


async def test_batch_stops_on_a_repeated_cursor() -> None:
    fake = FakeFriendli({"ep0": status_doc(), "ep1": status_doc("SLEEPING")})
    fake.list_response = httpx.Response(
        200, json={"data": {"ep0": status_doc()}, "nextCursor": "same"}
    )
    results = await observe(fake, [target("ep0"), target("ep1")])
    assert ok(results["ns/ep1"]).phase is Phase.SLEEPING
    assert fake.count("list") == 2
    assert fake.count("status") == 1


async def test_target_missing_from_the_list_is_answered_by_the_fallback() -> None:
    fake = FakeFriendli(many(3) | {"hidden": status_doc("AWAKING")})
    fake.listed = {"ep0", "ep1", "ep2"}
    results = await observe(fake, [target("ep0"), target("hidden"), target("gone")])
    assert ok(results["ns/ep0"]).phase is Phase.RUNNING
    assert ok(results["ns/hidden"]).phase is Phase.WAKING
    assert failed(results["ns/gone"]).reason is ErrorReason.NOT_FOUND
    assert fake.count("list") == 1
    assert sorted(r.url.path for r in fake.requests if _kind(r) == "status") == [
        "/dedicated/beta/endpoint/gone/status",
        "/dedicated/beta/endpoint/hidden/status",
    ]


async def test_malformed_list_entry_goes_to_the_fallback() -> None:
    fake = FakeFriendli(many(2))
    fake.list_response = httpx.Response(
        200, json={"data": {"ep0": status_doc(), "ep1": {"status": 7}}, "nextCursor": None}
    )
    results = await observe(fake, [target("ep0"), target("ep1")])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert [r.url.path for r in fake.requests if _kind(r) == "status"] == [
        "/dedicated/beta/endpoint/ep1/status"
    ]


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(404, json={"detail": "Not Found"}),
        httpx.Response(422, json={"detail": "limit"}),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json={"data": []}),
    ],
    ids=["500", "404", "422", "html", "wrong-shape"],
)
async def test_failing_list_falls_back_per_endpoint(response: httpx.Response) -> None:
    fake = FakeFriendli(many(3))
    fake.list_response = response
    results = await observe(fake, [target(f"ep{i}") for i in range(3)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert fake.count("list") == 1
    assert fake.count("status") == 3


async def test_list_failing_on_a_later_page_keeps_earlier_pages() -> None:
    fake = FakeFriendli(many(20))
    fake.page_size = 10

    def handler(request: httpx.Request) -> httpx.Response:
        if _kind(request) == "list" and "cursor" in request.url.params:
            fake.requests.append(request)
            return httpx.Response(502)
        return fake(request)

    # Ids sort as text, so ep9 is on the second page.
    results = await observe(handler, [target("ep1"), target("ep9")])
    assert all(isinstance(r, Observation) for r in results.values())
    assert [r.url.path for r in fake.requests if _kind(r) == "status"] == [
        "/dedicated/beta/endpoint/ep9/status"
    ]


async def test_rate_limited_list_fails_the_batch_without_more_requests() -> None:
    fake = FakeFriendli(many(3))
    fake.list_response = httpx.Response(429, headers={"Retry-After": "30"})
    results = await observe(fake, [target(f"ep{i}") for i in range(3)])
    for result in results.values():
        err = failed(result)
        assert err.reason is ErrorReason.RATE_LIMITED
        assert err.retry_after == 30
    assert len(fake.requests) == 1


async def test_unauthorized_list_and_fallback_report_unauthorized() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "bad key"})

    results = await observe(handler, [target("ep0"), target("ep1")])
    assert all(failed(r).reason is ErrorReason.UNAUTHORIZED for r in results.values())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_batch_reuses_details_until_status_changes_or_they_age() -> None:
    clock = Clock()
    provider = FriendliProvider(details_max_age=300, clock=clock, rng=lambda: 0.5)
    fake = FakeFriendli(many(3))
    targets = [target(f"ep{i}") for i in range(3)]

    await observe(fake, targets, provider)
    assert (fake.count("list"), fake.count("details")) == (1, 3)

    clock.now += 60
    results = await observe(fake, targets, provider)
    assert (fake.count("list"), fake.count("details")) == (2, 3)
    assert ok(results["ns/ep2"]).workers == Workers(ready=1, total=2, min=0, max=4)

    fake.statuses["ep1"] = status_doc("UPDATING")
    clock.now += 60
    results = await observe(fake, targets, provider)
    assert ok(results["ns/ep1"]).phase is Phase.UPDATING
    assert [r.url.path for r in fake.requests[-1:]] == ["/dedicated/beta/endpoint/ep1"]
    assert fake.count("details") == 4

    clock.now += 300
    await observe(fake, targets, provider)
    assert fake.count("details") == 7


async def test_details_fetched_together_come_due_spread_out() -> None:
    # Start-up fetches every endpoint's details at once; their refreshes must not all land in the
    # same later cycle.
    clock = Clock()
    # Ten start-up draws spread the ten ages; every later one is the middle.
    draws = itertools.chain((i / 10 for i in range(10)), itertools.repeat(0.5))
    provider = FriendliProvider(details_max_age=100, clock=clock, rng=lambda: next(draws))
    fake = FakeFriendli(many(10))
    targets = [target(f"ep{i}") for i in range(10)]
    await observe(fake, targets, provider)
    assert fake.count("details") == 10

    refreshed = []
    for _ in range(10):
        clock.now += 10
        before = fake.count("details")
        await observe(fake, targets, provider)
        refreshed.append(fake.count("details") - before)
    # Ages 50, 60, ... 140 s: one endpoint per 10 s step from 50 s on, never all ten at once.
    assert refreshed == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]


async def test_batch_failed_details_drop_the_cache_and_retry_next_poll() -> None:
    clock = Clock()
    provider = FriendliProvider(clock=clock)
    fake = FakeFriendli(many(2))
    targets = [target("ep0"), target("ep1")]
    await observe(fake, targets, provider)

    fake.statuses["ep0"] = status_doc("UPDATING")
    fake.details["ep0"] = httpx.Response(500)
    results = await observe(fake, targets, provider)
    assert ok(results["ns/ep0"]).workers is None
    assert ok(results["ns/ep1"]).workers is not None

    del fake.details["ep0"]
    before = fake.count("details")
    results = await observe(fake, targets, provider)
    assert fake.count("details") == before + 1
    assert ok(results["ns/ep0"]).workers == Workers(ready=1, total=2, min=0, max=4)


async def test_cache_forgets_endpoints_not_seen_for_an_hour() -> None:
    clock = Clock()
    provider = FriendliProvider(details_max_age=10**9, clock=clock)
    fake = FakeFriendli(many(3))

    def details_for() -> list[str]:
        return [r.url.path.rsplit("/", 1)[1] for r in fake.requests if _kind(r) == "details"]

    await observe(fake, [target("ep0"), target("ep1")], provider)
    clock.now += 3000
    await observe(fake, [target("ep0"), target("ep2")], provider)
    assert details_for() == ["ep0", "ep1", "ep2"]
    clock.now += 1000
    await observe(fake, [target("ep0"), target("ep1")], provider)
    # ep1 was last seen 4000 s ago: forgotten, so asked again although its status is unchanged.
    assert details_for() == ["ep0", "ep1", "ep2", "ep1"]


async def test_batch_details_calls_run_concurrently() -> None:
    fake = FakeFriendli(many(3))
    in_flight = 0
    all_in = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight
        if _kind(request) == "details":
            in_flight += 1
            if in_flight == 3:
                all_in.set()
            await all_in.wait()
        return fake(request)

    results = await asyncio.wait_for(observe(handler, [target(f"ep{i}") for i in range(3)]), 2)
    assert all(ok(r).workers is not None for r in results.values())
