"""What the emulator serves, checked against the providers' official schemas (issue 15).

For every route the operator's adapters call, in every documented state (each status value of
each provider), and for the error answers whose body the official files document, the body must
validate against the official schema in inferenceops_emulator/contracts/. The check is closed:
an object may carry only the members its schema lists, so that no adapter can come to rely on a
field the real API does not send.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

import inferenceops_emulator
from inferenceops_emulator import Emulator

CONTRACTS = Path(inferenceops_emulator.__file__).parent / "contracts"
TOKEN = "contract-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DA_AUTH = {"X-Auth-Token": TOKEN}
WS = "ws-contract"
#: DataArts ids are 32 to 36 letters, digits and hyphens (the official pattern).
DA_ID = "0b5633ba2b904511ad514346f4d0c001"


def _official(name: str) -> dict[str, Any]:
    return dict(json.loads((CONTRACTS / name).read_text()))


FRIENDLI = _official("friendli.json")
RUNPOD = _official("runpod.json")
TAKEOFF = _official("takeoff.json")
NS = _official("ns-model-server.json")
DATAARTS = _official("dataarts-fabric.json")


def _closed(schema: Any) -> Any:
    """Every object schema that lists its members admits no others."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _validator(document: dict[str, Any], pointer: str) -> Draft202012Validator:
    # The whole file is the root, so the files' own "#/..." references resolve.
    root = {"$ref": pointer, **{k: _closed(v) for k, v in document.items() if k != "examples"}}
    return Draft202012Validator(copy.deepcopy(root))


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Emulator], Any]
    path: str
    document: dict[str, Any]
    schema: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


def _friendli_cases() -> list[Case]:
    statuses = FRIENDLI["enums"]["InferenceDeploymentStatus"]
    phases = [*FRIENDLI["enums"]["phase"], None]
    codes = FRIENDLI["enums"]["InferenceDeploymentErrorCode"]
    base = "/friendli/dedicated/beta/endpoint"
    out = []
    for n, (status, team) in enumerate(itertools.product(statuses, (None, "team-a"))):
        fields = {
            "status": status,
            "phase": phases[n % len(phases)] if status == "INITIALIZING" else None,
            "error_code": codes[n % len(codes)] if status == "FAILED" else None,
            "team": team,
            "curr_replicas": None if status == "SLEEPING" else 1,
        }
        headers = (("X-Friendli-Team", team),) if team else ()

        def setup(emu: Emulator, fields: dict[str, Any] = fields) -> None:
            emu.store("friendli").put("ep1", **fields)

        for path, schema in (
            (f"{base}/ep1/status", "DedicatedEndpointStatus"),
            (f"{base}/ep1", "DedicatedEndpointSpec"),
            (base, "DedicatedEndpointListResponse"),
        ):
            out.append(
                Case(
                    f"friendli {path} {status} team={team}",
                    setup,
                    path,
                    FRIENDLI,
                    f"#/schemas/{schema}",
                    headers=(*headers, *BEARER.items()),
                )
            )
    return out


def _runpod_cases() -> list[Case]:
    states: list[dict[str, Any]] = [
        {"workers": []},
        {"workers": RUNPOD["v2"]["enums"]["WorkerStatus"], "workers_min": 1, "workers_max": 5},
        {"workers": ["RUNNING"], "workers_max": 0},
        {"workers": ["IDLE"], "endpoint_type": "LOAD_BALANCER", "scaler_type": "REQUEST_COUNT"},
        {"workers": ["INITIALIZING"], "compute_type": "CPU", "version": 3},
        {
            "workers": [
                {"status": "RUNNING", "desired_status": desired}
                for desired in RUNPOD["v1"]["enums"]["desiredStatus"]
            ]
        },
    ]
    out = []
    for n, fields in enumerate(states):

        def setup(emu: Emulator, fields: dict[str, Any] = fields) -> None:
            emu.store("runpod").put("rp1", **fields)

        for path, pointer in (
            ("/runpod/v2/serverless/rp1", "#/v2/schemas/Endpoint"),
            ("/runpod/v2/serverless/rp1/workers", "#/v2/schemas/ListEndpointWorkersResponse"),
            ("/runpod/v2/serverless", "#/v2/schemas/ListEndpointsResponse"),
            ("/runpod/v1/endpoints/rp1?includeWorkers=true", "#/v1/schemas/Endpoint"),
            ("/runpod/v1/endpoints/rp1?includeTemplate=true", "#/v1/schemas/Endpoint"),
            ("/runpod/v1/endpoints?includeWorkers=true", "#/v1/schemas/Endpoints"),
        ):
            out.append(
                Case(
                    f"runpod {path} state {n}",
                    setup,
                    path,
                    RUNPOD,
                    pointer,
                    headers=(*BEARER.items(),),
                )
            )
    return out


def _takeoff_cases() -> list[Case]:
    states: list[dict[str, Any]] = [
        {"live": ["llama"]},
        {"loading": ["llama"], "live": [{"model_name": "b", "consumer_groups": ["g"]}]},
        {"dead": ["llama"], "reserved_consumers": []},
        {},
        {"null_status": True},
    ]
    return [
        Case(
            f"takeoff /status state {n}",
            lambda emu, fields=fields: emu.store("takeoff").put("tk", **fields),
            "/takeoff/tk/status",
            TAKEOFF,
            "#/schemas/StatusResponse",
        )
        for n, fields in enumerate(states)
    ]


def _ns_cases() -> list[Case]:
    return [
        Case(
            f"ns /status {stage}",
            lambda emu, stage=stage: emu.store("nsModelServer").put("ns", stage=stage),
            "/ns/ns/status",
            NS,
            "#/schemas/StatusResponse",
        )
        for stage in NS["enums"]["stage"]
    ]


def _dataarts_cases() -> list[Case]:
    out = []
    base = f"/dataarts/v1/workspaces/{WS}/endpoints"
    types = DATAARTS["enums"]["type"]
    for n, status in enumerate(DATAARTS["enums"]["status"]):
        fields = {"status": status, "type": types[n % len(types)], "max_num": None if n % 2 else 3}

        def setup(emu: Emulator, fields: dict[str, Any] = fields) -> None:
            emu.store("dataArtsFabric").put(WS, DA_ID, **fields)

        for path, schema in (
            (base, "ListEndpointsResponse"),
            (f"{base}?endpoint_id={DA_ID}", "ListEndpointsResponse"),
            (f"{base}/{DA_ID}", "EndpointBriefInfo"),
        ):
            out.append(
                Case(
                    f"dataarts {path} {status}",
                    setup,
                    path,
                    DATAARTS,
                    f"#/schemas/{schema}",
                    headers=(*DA_AUTH.items(),),
                )
            )
    return out


def _error_cases() -> list[Case]:
    """The error answers whose bodies the official files document."""

    def fault(provider: str, status: int) -> Callable[[Emulator], Any]:
        return lambda emu: emu.fail(provider, status)

    def nothing(_emu: Emulator) -> None:
        return None

    v2 = "/runpod/v2/serverless/rp1"
    da = f"/dataarts/v1/workspaces/{WS}/endpoints"
    out = [
        Case(f"runpod v2 {s}", fault("runpod", s), v2, RUNPOD, "#/v2/schemas/ErrorResponse", s)
        for s in (401, 403, 404, 429, 500, 503)
    ]
    out += [
        Case("runpod v2 bad token", nothing, v2, RUNPOD, "#/v2/schemas/ErrorResponse", 401),
        Case(
            "runpod v2 unknown id",
            nothing,
            v2,
            RUNPOD,
            "#/v2/schemas/ErrorResponse",
            404,
            (*BEARER.items(),),
        ),
        Case(
            "runpod v1 bad token",
            nothing,
            "/runpod/v1/endpoints/rp1",
            RUNPOD,
            "#/v1/schemas/UnauthorizedError",
            401,
        ),
    ]
    # 403's official body is a documented exception to ErrorBody (tolerated_quirks).
    out += [
        Case(f"dataarts {s}", fault("dataArtsFabric", s), da, DATAARTS, "#/schemas/ErrorBody", s)
        for s in (400, 401, 408, 429, 500, 503)
    ]
    out += [
        Case("dataarts bad token", nothing, da, DATAARTS, "#/schemas/ErrorBody", 401),
        Case(
            "dataarts bad limit",
            nothing,
            f"{da}?limit=0",
            DATAARTS,
            "#/schemas/ErrorBody",
            400,
            (*DA_AUTH.items(),),
        ),
        Case(
            "dataarts unknown workspace",
            nothing,
            "/dataarts/v1/workspaces/nope/endpoints",
            DATAARTS,
            "#/schemas/ErrorBody",
            400,
            (*DA_AUTH.items(),),
        ),
    ]
    return out


CASES = [
    *_friendli_cases(),
    *_runpod_cases(),
    *_takeoff_cases(),
    *_ns_cases(),
    *_dataarts_cases(),
    *_error_cases(),
]


@pytest.fixture
async def served() -> AsyncIterator[Callable[[Case], Awaitable[httpx.Response]]]:
    async with Emulator(token=TOKEN) as emu, httpx.AsyncClient(base_url=emu.base_url) as client:
        emu.store("dataArtsFabric").create_group(WS)

        async def serve(case: Case) -> httpx.Response:
            case.setup(emu)
            return await client.get(case.path, headers=dict(case.headers))

        yield serve


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_served_bodies_follow_the_official_schema(
    case: Case, served: Callable[[Case], Awaitable[httpx.Response]]
) -> None:
    response = await served(case)
    assert response.status_code == case.status, response.text
    errors = sorted(
        f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
        for e in _validator(case.document, case.schema).iter_errors(response.json())
    )
    assert errors == []


def test_every_documented_status_is_served() -> None:
    """The cases above cover each documented status value (so a new value in a contract file
    adds cases, rather than going unchecked)."""
    ids = " ".join(c.id for c in CASES)
    documented = [
        *FRIENDLI["enums"]["InferenceDeploymentStatus"],
        *DATAARTS["enums"]["status"],
        *NS["enums"]["stage"],
    ]
    assert [s for s in documented if f" {s}" not in ids] == []


def _shape(value: Any) -> Any:
    """Keys and value types, recursively: what two bodies share when their numbers differ."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


async def test_the_queue_health_route_has_the_documented_shape() -> None:
    """RunPod documents /health by example only (no schema): the served body has its members."""
    example = RUNPOD["facts"]["health"]["example"]
    async with Emulator(token=TOKEN) as emu, httpx.AsyncClient(base_url=emu.base_url) as client:
        emu.store("runpod").put("q1", workers=["RUNNING", "IDLE"], jobs={"inQueue": 4})
        response = await client.get(
            "/runpod/v2/q1/health", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert _shape(body) == _shape(example)
    assert body["jobs"]["inQueue"] == 4 and body["workers"] == {"idle": 1, "running": 1}


# --- the listing routes `inferenceops import` and inventory read (issue 25) ------------------


async def _pages(
    client: httpx.AsyncClient,
    path: str,
    first: dict[str, Any],
    step: Callable[[dict[str, Any]], dict[str, Any] | None],
) -> list[dict[str, Any]]:
    """Every page of a listing from query `first`: `step(body)` gives the next page's query,
    None at the end."""
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] | None = first
    while params is not None and len(pages) < 20:
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        params = step(pages[-1])
    return pages


def _valid(document: dict[str, Any], pointer: str, body: Any) -> list[str]:
    return [e.message for e in _validator(document, pointer).iter_errors(body)]


async def test_friendli_list_pages_by_cursor_and_filters_by_project() -> None:
    async with (
        Emulator(token=TOKEN) as emu,
        httpx.AsyncClient(base_url=emu.base_url, headers=BEARER) as client,
    ):
        for n in range(250):
            emu.store("friendli").put(f"ep{n:03d}", project="p1" if n % 2 else "p2")
        base = "/friendli/dedicated/beta/endpoint"

        def step(body: dict[str, Any]) -> dict[str, Any] | None:
            cursor = body["nextCursor"]
            return None if cursor is None else {"limit": 100, "cursor": cursor}

        pages = await _pages(client, base, {"limit": 100}, step)
        assert [len(p["data"]) for p in pages] == [100, 100, 50]
        ids = [i for p in pages for i in p["data"]]
        assert len(set(ids)) == 250
        for page in pages:
            assert _valid(FRIENDLI, "#/schemas/DedicatedEndpointListResponse", page) == []
        only = (await client.get(base, params={"limit": 100, "project_id": "p1"})).json()
        assert len(only["data"]) == 100 and only["nextCursor"] is not None
        assert all(int(i[2:]) % 2 for i in only["data"])
        none = (await client.get(base, params={"project_id": "nope"})).json()
        assert none == {"data": {}, "nextCursor": None}


async def test_dataarts_list_pages_by_offset_with_a_total() -> None:
    async with (
        Emulator(token=TOKEN) as emu,
        httpx.AsyncClient(base_url=emu.base_url, headers=DA_AUTH) as client,
    ):
        emu.store("dataArtsFabric").create_group(WS)
        emu.bulk("dataArtsFabric", 250, prefix=DA_ID[:26], group=(WS,))
        path = f"/dataarts/v1/workspaces/{WS}/endpoints"
        offsets = iter([100, 200])

        def step(body: dict[str, Any]) -> dict[str, Any] | None:
            offset = next(offsets, None)
            return None if offset is None else {"offset": offset, "limit": 100}

        pages = await _pages(client, path, {"limit": 100}, step)
        assert [len(p["endpoints"]) for p in pages] == [100, 100, 50]
        assert {p["total"] for p in pages} == {250}
        for page in pages:
            assert _valid(DATAARTS, "#/schemas/ListEndpointsResponse", page) == []


async def test_runpod_lists_every_endpoint_in_one_body() -> None:
    async with (
        Emulator(token=TOKEN) as emu,
        httpx.AsyncClient(base_url=emu.base_url, headers=BEARER) as client,
    ):
        emu.bulk("runpod", 250, prefix="rp")
        v2 = (await client.get("/runpod/v2/serverless")).json()
        assert len(v2["endpoints"]) == 250
        assert _valid(RUNPOD, "#/v2/schemas/ListEndpointsResponse", v2) == []
        v1 = (await client.get("/runpod/v1/endpoints")).json()
        assert len(v1) == 250
        assert _valid(RUNPOD, "#/v1/schemas/Endpoints", v1) == []


async def test_a_fault_after_n_requests_fails_a_listing_midway() -> None:
    async with (
        Emulator(token=TOKEN) as emu,
        httpx.AsyncClient(base_url=emu.base_url, headers=BEARER) as client,
    ):
        emu.bulk("friendli", 150, prefix="ep")
        emu.fail("friendli", 429, after=1, times=1)
        base = "/friendli/dedicated/beta/endpoint"
        first = await client.get(base, params={"limit": 100})
        assert first.status_code == 200
        cursor = first.json()["nextCursor"]
        second = await client.get(base, params={"limit": 100, "cursor": cursor})
        assert second.status_code == 429 and second.headers["Retry-After"]
        again = await client.get(base, params={"limit": 100, "cursor": cursor})
        assert again.status_code == 200 and len(again.json()["data"]) == 50
