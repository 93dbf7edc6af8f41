"""DataArts Fabric adapter: status mapping, workers, error codes, paging and batched listing."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from inferenceops.providers import (
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    SecretKeyRef,
    Target,
    Workers,
)
from inferenceops.providers.dataarts import PROVIDER, DataArtsFabricConfig

from .support import TOKEN, failed, official, ok

URL = "https://fabric.cn-north-4.myhuaweicloud.com"
WS = "ws-1"
PATH = f"/v1/workspaces/{WS}/endpoints"


def eid(i: int) -> str:
    return f"0b5633ba2b904511ad514346f4{i:06d}"


def entry(i: int, status: str = "RUNNING", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "visibility": "PRIVATE",
        "id": eid(i),
        "name": f"endpoint{i}",
        "type": "inference",
        "status": status,
        "reserved_resource": {"apu": {"spec_code": "a1x", "warm_up_num": 1, "max_num": 3}},
    }
    body.update(extra)
    return body


def config(i: int) -> DataArtsFabricConfig:
    return DataArtsFabricConfig(
        url=URL,
        workspace_id=WS,
        endpoint_id=eid(i),
        credentials_secret_ref=SecretKeyRef(name="fabric", key="token"),
    )


def target(i: int, key: str | None = None) -> Target[DataArtsFabricConfig]:
    return Target(key=key or f"ns/ep{i}", config=config(i), credential=TOKEN)


class Fabric:
    """A workspace listing that pages like the documented API, recording every request."""

    def __init__(
        self,
        endpoints: Sequence[dict[str, Any]],
        *,
        honour_filter: bool = True,
        fail: Callable[[httpx.Request, int], httpx.Response | None] | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.honour_filter = honour_filter
        self.fail = fail
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.method == "GET"
        assert request.url.path == PATH
        assert request.headers["X-Auth-Token"] == TOKEN
        if self.fail is not None:
            failed = self.fail(request, len(self.requests))
            if failed is not None:
                return failed
        offset = int(request.url.params.get("offset", "0"))
        limit = int(request.url.params.get("limit", "10"))
        assert 1 <= limit <= 100
        items = self.endpoints
        wanted = request.url.params.get("endpoint_id")
        if wanted is not None and self.honour_filter:
            items = [e for e in items if e.get("id") == wanted]
        return httpx.Response(
            200, json={"total": len(items), "endpoints": items[offset : offset + limit]}
        )

    def params(self, name: str) -> list[str | None]:
        return [r.url.params.get(name) for r in self.requests]


async def observe(
    handler: Callable[[httpx.Request], httpx.Response], targets: Sequence[Target[Any]]
) -> dict[str, PollResult]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        results = dict(await PROVIDER.observe(client, list(targets)))
    assert set(results) == {t.key for t in targets}
    return results


async def observe_one(handler: Callable[[httpx.Request], httpx.Response]) -> PollResult:
    return (await observe(handler, [target(1)]))["ns/ep1"]


def error_body(
    status: int, code: Any, msg: str = "oops"
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error_code": code, "error_msg": msg})

    return handler


# --- mapping ------------------------------------------------------------------------------------


OFFICIAL = official("dataArtsFabric")
#: Every documented status (the API reference's enum; the SDK's lacks TRIAL_ENDED).
DOCUMENTED_STATUS_PHASES = {
    "CREATING": Phase.PROVISIONING,
    "RUNNING": Phase.RUNNING,
    "UPDATING": Phase.UPDATING,
    "CREATE_FAILED": Phase.FAILED,
    "UPDATE_FAILED": Phase.FAILED,
    "DELETE_FAILED": Phase.FAILED,
    "DELETING": Phase.TERMINATING,
    "DELETED": Phase.TERMINATED,
    "FROZEN": Phase.SUSPENDED,
    "INACTIVE": Phase.SUSPENDED,
    "TRIAL_ENDED": Phase.SUSPENDED,
}


def test_every_documented_status_has_a_row() -> None:
    assert set(OFFICIAL["status"]) == set(DOCUMENTED_STATUS_PHASES)


@pytest.mark.parametrize(
    ("status", "phase"),
    [*DOCUMENTED_STATUS_PHASES.items(), ("MIGRATING", Phase.UNKNOWN), ("running", Phase.UNKNOWN)],
)
async def test_status_mapping(status: str, phase: Phase) -> None:
    obs = ok(await observe_one(Fabric([entry(1, status)])))
    assert obs.phase is phase
    assert obs.provider_status == status
    assert obs.provider_phase is None
    if phase is not Phase.FAILED:
        assert obs.error_code is None
        assert obs.error_message is None


@pytest.mark.parametrize("status", OFFICIAL["status"])
async def test_official_example_with_each_documented_status(status: str) -> None:
    example = OFFICIAL["examples"]["200"]["endpoints"][0] | {"status": status}
    official_target = Target(
        key="ns/official",
        config=config(1).model_copy(update={"endpoint_id": example["id"]}),
        credential=TOKEN,
    )
    obs = ok((await observe(Fabric([example]), [official_target]))["ns/official"])
    assert obs.phase is DOCUMENTED_STATUS_PHASES[status]
    # The example is a `job` with reserved APUs: warm-up 1, at most 100.
    assert obs.workers == Workers(min=1, max=100)
    if obs.phase is Phase.FAILED:
        assert (obs.error_code, obs.error_message) == ("string", "string")
    else:
        # The example carries error_code/error_msg whatever its status: only a failure shows it.
        assert obs.error_code is None and obs.error_message is None


@pytest.mark.parametrize("status", ["CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"])
async def test_failed_carries_error_code_and_message(status: str) -> None:
    body = entry(1, status, error_code="DLF.0001", error_msg="quota exceeded")
    obs = ok(await observe_one(Fabric([body])))
    assert obs.error_code == "DLF.0001"
    assert obs.error_message == "quota exceeded"


async def test_failed_without_error_code_uses_status() -> None:
    obs = ok(await observe_one(Fabric([entry(1, "CREATE_FAILED")])))
    assert obs.error_code == "CREATE_FAILED"
    assert obs.error_message is None


async def test_stale_error_on_running_endpoint_is_not_reported() -> None:
    body = entry(1, "RUNNING", error_code="DLF.0001", error_msg="old failure")
    obs = ok(await observe_one(Fabric([body])))
    assert obs.error_code is None
    assert obs.error_message is None


# --- workers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("apu", "workers"),
    [
        ({"warm_up_num": 2, "max_num": 8}, Workers(min=2, max=8)),
        ({"warm_up_num": 2}, Workers(min=2, max=2)),
        ({"warm_up_num": 2, "max_num": None}, Workers(min=2, max=2)),
        ({"spec_code": "a1x"}, None),
        (None, None),
    ],
    ids=["both", "max-absent", "max-null", "neither", "no-apu"],
)
async def test_apu_workers(apu: dict[str, Any] | None, workers: Workers | None) -> None:
    body = entry(1, reserved_resource={"apu": apu} if apu is not None else {})
    obs = ok(await observe_one(Fabric([body])))
    assert obs.workers == workers
    if obs.workers is not None:
        assert obs.workers.ready is None
        assert obs.workers.total is None


async def test_dpu_endpoint_reports_its_dpu_counts() -> None:
    # The official example reserves both; an endpoint reserving only DPUs keeps its dpu block.
    body = official("dataArtsFabric")["examples"]["200"]["endpoints"][0]
    body |= {"id": eid(1), "status": "RUNNING"}
    body["reserved_resource"] = {"dpu": {"spec_code": "d1x", "warm_up_num": 2, "max_num": 6}}
    assert ok(await observe_one(Fabric([body]))).workers == Workers(min=2, max=6)


async def test_dpu_without_max_num_has_no_elastic_resources() -> None:
    body = entry(1, type="job", reserved_resource={"dpu": {"warm_up_num": 2}})
    assert ok(await observe_one(Fabric([body]))).workers == Workers(min=2, max=2)


async def test_apu_wins_over_dpu_when_both_are_reserved() -> None:
    # The official example: apu 1..100, dpu 1..100; make them differ to see which is read.
    body = official("dataArtsFabric")["examples"]["200"]["endpoints"][0]
    body |= {"id": eid(1), "status": "RUNNING"}
    body["reserved_resource"]["dpu"] |= {"warm_up_num": 7, "max_num": 9}
    assert ok(await observe_one(Fabric([body]))).workers == Workers(min=1, max=100)


async def test_no_reserved_resource_means_no_workers() -> None:
    body = entry(1)
    del body["reserved_resource"]
    assert ok(await observe_one(Fabric([body]))).workers is None


@pytest.mark.parametrize("kind", ["ray", "ray_service"])
async def test_ray_workers_are_summed_over_groups(kind: str) -> None:
    body = entry(
        1,
        type=kind,
        # Ray endpoints' apu numbers are not the worker counts; the groups are.
        reserved_resource={"apu": {"warm_up_num": 99, "max_num": 99}},
        ray_resource={
            "head_group_spec": {"spec_code": "h"},
            "worker_group_spec": [
                {"name": "a", "spec_code": "s", "min_replicas": 1, "max_replicas": 4},
                {"name": "b", "spec_code": "s", "min_replicas": 0, "max_replicas": 2},
                {"name": "c", "spec_code": "s", "min_replicas": 2, "max_replicas": 2},
            ],
        },
    )
    obs = ok(await observe_one(Fabric([body])))
    assert obs.workers == Workers(min=3, max=8)


async def test_ray_group_without_a_bound_makes_that_bound_unknown() -> None:
    body = entry(
        1,
        type="ray",
        ray_resource={
            "worker_group_spec": [
                {"min_replicas": 1, "max_replicas": 4},
                {"min_replicas": 1},
            ]
        },
    )
    assert ok(await observe_one(Fabric([body]))).workers == Workers(min=2, max=None)


async def test_ray_without_groups_has_no_workers() -> None:
    body = entry(1, type="ray", ray_resource={"worker_group_spec": []})
    assert ok(await observe_one(Fabric([body]))).workers is None


# --- single target: one filtered request -------------------------------------------------------


async def test_single_target_sends_one_filtered_request() -> None:
    fabric = Fabric([entry(i) for i in range(50)])
    assert ok(await observe_one(fabric)).phase is Phase.RUNNING
    assert len(fabric.requests) == 1
    request = fabric.requests[0]
    assert request.url.params["endpoint_id"] == eid(1)
    assert request.url.params["offset"] == "0"
    assert int(request.url.params["limit"]) <= 100
    assert str(request.url).startswith(f"{URL}{PATH}?")


async def test_single_target_absent_is_not_found() -> None:
    fabric = Fabric([entry(2)])
    e = failed(await observe_one(fabric))
    assert e.reason is ErrorReason.NOT_FOUND
    assert e.message == f"endpoint {eid(1)} not found in workspace {WS}"
    assert len(fabric.requests) == 1


async def test_single_target_pages_when_filter_is_ignored() -> None:
    # 250 endpoints, the target on page 3: offsets 0, 100, 200 at limit 100.
    fabric = Fabric([entry(i) for i in range(250)], honour_filter=False)
    obs = ok((await observe(fabric, [target(230)]))["ns/ep230"])
    assert obs.phase is Phase.RUNNING
    assert fabric.params("offset") == ["0", "100", "200"]
    assert fabric.params("limit") == ["100", "100", "100"]
    assert fabric.params("endpoint_id") == [eid(230)] * 3


async def test_single_target_stops_on_total() -> None:
    fabric = Fabric([entry(i) for i in range(250)], honour_filter=False)
    e = failed((await observe(fabric, [target(999)]))["ns/ep999"])
    assert e.reason is ErrorReason.NOT_FOUND
    assert len(fabric.requests) == 3


async def test_paging_stops_on_an_empty_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        page = [entry(i) for i in range(offset, offset + 100)] if offset == 0 else []
        return httpx.Response(200, json={"total": 10_000, "endpoints": page})

    fabric = Fabric([], fail=lambda request, n: handler(request))
    e = failed((await observe(fabric, [target(999)]))["ns/ep999"])
    assert e.reason is ErrorReason.NOT_FOUND
    assert fabric.params("offset") == ["0", "100"]


async def test_paging_without_total_stops_on_a_short_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        page = [entry(i) for i in range(offset, min(offset + 100, 150))]
        return httpx.Response(200, json={"endpoints": page})

    fabric = Fabric([], fail=lambda request, n: handler(request))
    e = failed((await observe(fabric, [target(999)]))["ns/ep999"])
    assert e.reason is ErrorReason.NOT_FOUND
    assert fabric.params("offset") == ["0", "100"]


async def test_paging_that_never_ends_is_cut_off() -> None:
    # A server that ignores offset: always the same full page, an ever-large total.
    def handler(request: httpx.Request) -> httpx.Response:
        page = [entry(i) for i in range(100, 200)]
        return httpx.Response(200, json={"total": 10**9, "endpoints": page})

    fabric = Fabric([], fail=lambda request, n: handler(request))
    e = failed((await observe(fabric, [target(999)]))["ns/ep999"])
    assert e.reason is ErrorReason.BAD_RESPONSE
    assert len(fabric.requests) == 100


async def test_short_pages_advance_by_what_came_back() -> None:
    # A server that caps pages at 40 despite limit=100 must not make us skip entries 40..99.
    everything = [entry(i) for i in range(130)]

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return httpx.Response(
            200, json={"total": 130, "endpoints": everything[offset : offset + 40]}
        )

    fabric = Fabric([], fail=lambda request, n: handler(request))
    assert ok((await observe(fabric, [target(70)]))["ns/ep70"]).phase is Phase.RUNNING
    assert fabric.params("offset") == ["0", "40"]


# --- errors ------------------------------------------------------------------------------------


async def test_400_does_not_exist_is_not_found() -> None:
    e = failed(await observe_one(error_body(400, "DataArtsFabric.00010009", "endpoint not exist")))
    assert e.reason is ErrorReason.NOT_FOUND
    assert eid(1) in e.message
    assert "00010009" in e.message


async def test_400_workspace_missing_is_not_found_naming_the_workspace() -> None:
    e = failed(await observe_one(error_body(400, "DataArtsFabric.00010003", "workspace not exist")))
    assert e.reason is ErrorReason.NOT_FOUND
    assert f"workspace {WS} does not exist" in e.message


async def test_500_busy_is_unreachable_retry() -> None:
    e = failed(await observe_one(error_body(500, "common.00000001", "Service unavailable.")))
    assert e.reason is ErrorReason.UNREACHABLE
    assert "busy, retry" in e.message
    assert "500" in e.message


async def test_other_400_is_bad_response() -> None:
    e = failed(await observe_one(error_body(400, "common.01000001", "Type mismatch.")))
    assert e.reason is ErrorReason.BAD_RESPONSE
    assert "400" in e.message


async def test_other_500_is_unreachable() -> None:
    e = failed(await observe_one(error_body(500, "common.00000500", "internal error")))
    assert e.reason is ErrorReason.UNREACHABLE


def official_error(status: int, **extra: str) -> Callable[[httpx.Request], httpx.Response]:
    body = official("dataArtsFabric")["examples"][str(status)] | extra

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return handler


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (
            400,
            ErrorReason.BAD_RESPONSE,
            "unexpected HTTP 400: common.01000001: failed to read http request, please check "
            "your input, code: 400, reason: Type mismatch., cause: TypeMismatchException",
        ),
        (
            401,
            ErrorReason.UNAUTHORIZED,
            "provider rejected the credential (HTTP 401): APIG.1002: Incorrect token or token "
            "resolution failed",
        ),
        (
            403,
            ErrorReason.UNAUTHORIZED,
            "provider rejected the credential (HTTP 403): 403: X-Auth-Token is invalid in the "
            "request",
        ),
        (
            408,
            ErrorReason.TIMEOUT,
            "provider timed out (HTTP 408): common.00000408: timeout exception occurred",
        ),
        (
            500,
            ErrorReason.UNREACHABLE,
            "provider failed (HTTP 500): common.00000500: internal error",
        ),
    ],
)
async def test_official_error_bodies_are_told_in_their_own_words(
    status: int, reason: ErrorReason, message: str
) -> None:
    e = failed(await observe_one(official_error(status)))
    assert (e.reason, e.message, e.http_status) == (reason, message, status)


async def test_solution_msg_is_in_the_message() -> None:
    # The official 401 example plus the ErrorBody schema's third member, solution_msg.
    handler = official_error(401, solution_msg="Obtain a new token from IAM and retry.")
    e = failed(await observe_one(handler))
    assert e.reason is ErrorReason.UNAUTHORIZED
    assert e.message.endswith(
        "APIG.1002: Incorrect token or token resolution failed; "
        "solution: Obtain a new token from IAM and retry."
    )


async def test_not_found_keeps_the_solution_msg() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "error_code": "DataArtsFabric.00010009",
            "error_msg": "endpoint not exist",
            "solution_msg": "Check the endpoint ID.",
        }
        return httpx.Response(400, json=body)

    e = failed(await observe_one(handler))
    assert e.reason is ErrorReason.NOT_FOUND
    assert e.message.endswith(
        "(DataArtsFabric.00010009: endpoint not exist; solution: Check the endpoint ID.)"
    )


async def test_429_error_body_still_honours_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error_code": "APIG.0308", "error_msg": "too many requests"}
        return httpx.Response(429, json=body, headers={"Retry-After": "7"})

    e = failed(await observe_one(handler))
    assert (e.reason, e.retry_after) == (ErrorReason.RATE_LIMITED, 7.0)


async def test_error_body_without_readable_parts_is_excerpted_raw() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"title": "Unauthorized"})

    e = failed(await observe_one(handler))
    assert e.message == 'provider rejected the credential (HTTP 401): {"title":"Unauthorized"}'


async def test_plain_404_is_not_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="<html>not here</html>")

    assert failed(await observe_one(handler)).reason is ErrorReason.NOT_FOUND


async def test_403_with_numeric_error_code_is_unauthorized() -> None:
    assert failed(await observe_one(error_body(403, 403))).reason is ErrorReason.UNAUTHORIZED


async def test_400_with_unparsable_body_is_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text="bad request")

    assert failed(await observe_one(handler)).reason is ErrorReason.BAD_RESPONSE


async def test_malformed_entry_for_the_target_is_bad_response() -> None:
    body = entry(1)
    del body["status"]
    e = failed(await observe_one(Fabric([body])))
    assert e.reason is ErrorReason.BAD_RESPONSE
    assert "status" in e.message


# --- batched: several targets, one workspace listing --------------------------------------------


@pytest.mark.parametrize("total", [2, 100, 101, 250, 300])
async def test_batched_listing_costs_ceil_total_over_100(total: int) -> None:
    fabric = Fabric([entry(i) for i in range(total)])
    # Targets spread so that one sits on every page: nothing can be skipped.
    wanted = sorted({min(p * 100, total - 1) for p in range(math.ceil(total / 100))} | {total - 1})
    if len(wanted) < 2:
        wanted = [0, total - 1]
    results = await observe(fabric, [target(i) for i in wanted])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert len(fabric.requests) == math.ceil(total / 100)
    assert fabric.params("endpoint_id") == [None] * len(fabric.requests)
    assert fabric.params("limit") == ["100"] * len(fabric.requests)
    assert fabric.params("offset") == [str(100 * p) for p in range(len(fabric.requests))]


async def test_batched_250_endpoints_target_on_page_3() -> None:
    fabric = Fabric([entry(i, "CREATING" if i == 242 else "RUNNING") for i in range(250)])
    results = await observe(fabric, [target(5), target(120), target(242)])
    assert ok(results["ns/ep242"]).phase is Phase.PROVISIONING
    assert ok(results["ns/ep5"]).phase is Phase.RUNNING
    assert fabric.params("offset") == ["0", "100", "200"]


async def test_batched_stops_once_every_target_is_found() -> None:
    fabric = Fabric([entry(i) for i in range(250)])
    await observe(fabric, [target(3), target(40)])
    assert len(fabric.requests) == 1


async def test_batched_without_total_stops_once_every_target_is_found() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        page = [entry(i) for i in range(offset, min(offset + 100, 250))]
        return httpx.Response(200, json={"endpoints": page})

    fabric = Fabric([], fail=lambda request, n: handler(request))
    await observe(fabric, [target(3), target(40)])
    assert len(fabric.requests) == 1


async def test_few_targets_in_a_huge_workspace_use_filtered_requests() -> None:
    # 1000 endpoints, 2 targets near the end: 1 listing page + 2 filtered beats 10 pages.
    fabric = Fabric([entry(i) for i in range(1000)])
    results = await observe(fabric, [target(990), target(995)])
    assert all(isinstance(r, Observation) for r in results.values())
    assert len(fabric.requests) == 3
    assert fabric.params("endpoint_id")[0] is None
    assert sorted(p or "" for p in fabric.params("endpoint_id")[1:]) == [eid(990), eid(995)]


async def test_same_endpoint_watched_twice() -> None:
    fabric = Fabric([entry(1), entry(2)])
    results = await observe(fabric, [target(1, "a/x"), target(1, "b/y")])
    assert ok(results["a/x"]).phase is ok(results["b/y"]).phase is Phase.RUNNING
    assert len(fabric.requests) == 1


async def test_missing_from_listing_falls_back_to_filtered_request() -> None:
    # The listing misses endpoint 7 (created between pages); its own request finds it.
    listed = [entry(i) for i in range(5)]
    late = entry(7, "CREATING")

    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("endpoint_id") == eid(7):
            return httpx.Response(200, json={"total": 1, "endpoints": [late]})
        return None

    fabric = Fabric(listed, fail=lambda request, n: handler(request))
    results = await observe(fabric, [target(1), target(7)])
    assert ok(results["ns/ep1"]).phase is Phase.RUNNING
    assert ok(results["ns/ep7"]).phase is Phase.PROVISIONING
    assert fabric.params("endpoint_id") == [None, eid(7)]


async def test_truly_absent_target_is_not_found_after_fallback() -> None:
    fabric = Fabric([entry(i) for i in range(5)])
    results = await observe(fabric, [target(1), target(9)])
    assert ok(results["ns/ep1"]).phase is Phase.RUNNING
    e = failed(results["ns/ep9"])
    assert e.reason is ErrorReason.NOT_FOUND
    assert "not found in workspace" in e.message
    assert len(fabric.requests) == 2


def _fail_unfiltered(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None, page: int = 0
) -> Callable[[httpx.Request, int], httpx.Response | None]:
    def fail(request: httpx.Request, n: int) -> httpx.Response | None:
        unfiltered = "endpoint_id" not in request.url.params
        if unfiltered and int(request.url.params["offset"]) >= page * 100:
            return httpx.Response(status, json=body, headers=headers)
        return None

    return fail


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, ErrorReason.UNAUTHORIZED), (403, ErrorReason.UNAUTHORIZED)],
)
async def test_listing_auth_failure_applies_to_all_without_fallback(
    status: int, reason: ErrorReason
) -> None:
    body = {"error_code": "APIG.1002", "error_msg": "Incorrect token or token resolution failed"}
    fabric = Fabric([entry(i) for i in range(5)], fail=_fail_unfiltered(status, body))
    results = await observe(fabric, [target(i) for i in range(4)])
    assert {failed(r).reason for r in results.values()} == {reason}
    assert len(fabric.requests) == 1


async def test_listing_rate_limit_applies_to_all_without_fallback() -> None:
    fail = _fail_unfiltered(429, {}, {"Retry-After": "30"})
    fabric = Fabric([entry(i) for i in range(5)], fail=fail)
    results = await observe(fabric, [target(i) for i in range(4)])
    for result in results.values():
        e = failed(result)
        assert e.reason is ErrorReason.RATE_LIMITED
        assert e.retry_after == 30
    assert len(fabric.requests) == 1


async def test_listing_workspace_missing_applies_to_all() -> None:
    body = {"error_code": "DataArtsFabric.00010003", "error_msg": "workspace does not exist"}
    fabric = Fabric([], fail=_fail_unfiltered(400, body))
    results = await observe(fabric, [target(i) for i in range(3)])
    for result in results.values():
        e = failed(result)
        assert e.reason is ErrorReason.NOT_FOUND
        assert f"workspace {WS}" in e.message
    assert len(fabric.requests) == 1


async def test_listing_server_error_falls_back_per_endpoint() -> None:
    body = {"error_code": "common.00000500", "error_msg": "internal error"}
    fabric = Fabric([entry(i) for i in range(5)], fail=_fail_unfiltered(500, body))
    results = await observe(fabric, [target(i) for i in range(3)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert fabric.params("endpoint_id")[0] is None
    assert sorted(p or "" for p in fabric.params("endpoint_id")[1:]) == [eid(i) for i in range(3)]


async def test_listing_garbage_falls_back_per_endpoint() -> None:
    def fail(request: httpx.Request, n: int) -> httpx.Response | None:
        if "endpoint_id" not in request.url.params:
            return httpx.Response(200, text="<html>gateway</html>")
        return None

    fabric = Fabric([entry(i) for i in range(5)], fail=fail)
    results = await observe(fabric, [target(1), target(2)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert len(fabric.requests) == 3


async def test_listing_failing_on_page_2_keeps_page_1_answers() -> None:
    body = {"error_code": "common.00000500", "error_msg": "internal error"}
    fabric = Fabric([entry(i) for i in range(250)], fail=_fail_unfiltered(500, body, page=1))
    results = await observe(fabric, [target(10), target(150), target(240)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    # Page 1, the failing page 2, then one filtered request for each of the two unanswered.
    assert len(fabric.requests) == 4
    assert sorted(p for p in fabric.params("endpoint_id") if p) == [eid(150), eid(240)]


async def test_listing_rate_limited_on_page_2_keeps_page_1_answers() -> None:
    fabric = Fabric([entry(i) for i in range(250)], fail=_fail_unfiltered(429, {}, page=1))
    results = await observe(fabric, [target(10), target(150), target(240)])
    assert ok(results["ns/ep10"]).phase is Phase.RUNNING
    assert failed(results["ns/ep150"]).reason is ErrorReason.RATE_LIMITED
    assert failed(results["ns/ep240"]).reason is ErrorReason.RATE_LIMITED
    assert len(fabric.requests) == 2


async def test_malformed_neighbour_does_not_fail_the_listing() -> None:
    broken = {"id": eid(3), "status": {"nested": "wrong"}, "reserved_resource": "x"}
    fabric = Fabric([entry(1), broken, entry(2), {"no": "id"}])
    results = await observe(fabric, [target(1), target(2)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert len(fabric.requests) == 1


async def test_every_request_carries_the_token() -> None:
    fabric = Fabric([entry(i) for i in range(250)])
    await observe(fabric, [target(1), target(249)])
    assert fabric.requests
    assert all(r.headers["X-Auth-Token"] == TOKEN for r in fabric.requests)


# --- config -------------------------------------------------------------------------------------

_SPEC = {
    "url": URL,
    "workspaceId": WS,
    "endpointId": eid(1),
    "credentialsSecretRef": {"name": "fabric", "key": "token"},
}


def test_config_from_camel_case_yaml() -> None:
    cfg = DataArtsFabricConfig.model_validate(_SPEC)
    assert cfg.workspace_id == WS
    assert cfg.endpoint_id == eid(1)
    assert cfg.credentials_secret_ref.name == "fabric"
    assert PROVIDER.endpoint_label(cfg) == eid(1)
    assert PROVIDER.account_key(cfg) == ("dataArtsFabric", URL, WS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workspaceId", ""),
        ("workspaceId", "w" * 37),
        ("workspaceId", "ws_1"),
        ("workspaceId", "ws/1"),
        ("endpointId", "a" * 31),
        ("endpointId", "a" * 37),
        ("endpointId", "0b5633ba2b904511ad514346f4dxxxx_"),
        ("endpointId", "../0b5633ba2b904511ad514346f4dxxxx"),
        ("url", "fabric.cn-north-4.myhuaweicloud.com"),
        ("credentialsSecretRef", None),
    ],
)
def test_config_rejects(field: str, value: Any) -> None:
    spec = dict(_SPEC)
    if value is None:
        del spec[field]
    else:
        spec[field] = value
    with pytest.raises(ValidationError):
        DataArtsFabricConfig.model_validate(spec)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("workspaceId", "w"),
        ("workspaceId", "w" * 36),
        ("endpointId", "a" * 32),
        ("endpointId", "0b5633ba-2b90-4511-ad51-4346f4d00001"),
    ],
)
def test_config_accepts(field: str, value: str) -> None:
    DataArtsFabricConfig.model_validate({**_SPEC, field: value})


def test_registered() -> None:
    from inferenceops.providers import get

    assert get("dataArtsFabric") is PROVIDER
    assert PROVIDER.display_name == "DataArts Fabric"
