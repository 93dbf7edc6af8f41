"""The provider emulator, exercised over real HTTP on 127.0.0.1.

Shapes are checked against the provider documents in /work/shared/providers, not against the
emulator's own code, so a drifting emulator fails here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from inferenceops.providers.hwsign import sign_request
from inferenceops_emulator import Emulator, serve_forever

TOKEN = "emulator-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DA_AUTH = {"X-Auth-Token": TOKEN}
FRIENDLI = "/friendli/dedicated/beta/endpoint"
DA = "/dataarts/v1/workspaces"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN) as e:
        yield e


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=emu.base_url, timeout=10) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# FriendliAI


FRIENDLI_STATUSES = {
    "UNKNOWN",
    "INITIALIZING",
    "RUNNING",
    "UPDATING",
    "SLEEPING",
    "AWAKING",
    "FAILED",
    "STOPPING",
    "TERMINATING",
    "TERMINATED",
    "READY",
}


async def test_friendli_status_shape(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("ep1", status="INITIALIZING", phase="DOWNLOADING_MODEL")
    r = await client.get(f"{FRIENDLI}/ep1/status", headers=BEARER)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert {"status", "createdAt"} <= body.keys()
    assert body["status"] in FRIENDLI_STATUSES
    assert body["status"] == "INITIALIZING"
    assert body["phase"] == "DOWNLOADING_MODEL"
    assert body["errorCode"] is None
    assert body["createdAt"].endswith("Z") and "T" in body["createdAt"]


async def test_friendli_failed_error_code(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("ep1", status="FAILED", error_code="WORKLOAD_INIT_DOWNLOAD_ERROR")
    body = (await client.get(f"{FRIENDLI}/ep1/status", headers=BEARER)).json()
    assert body["status"] == "FAILED"
    assert body["errorCode"] == "WORKLOAD_INIT_DOWNLOAD_ERROR"


async def test_friendli_details(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put(
        "ep1",
        curr_replicas=0,
        desired_replicas=2,
        updated_replicas=None,
        autoscaling_min=0,
        autoscaling_max=4,
    )
    r = await client.get(f"{FRIENDLI}/ep1", headers=BEARER)
    assert r.status_code == 200
    body = r.json()
    assert body["currReplicaCnt"] == 0
    assert body["desiredReplicaCnt"] == 2
    assert body["updatedReplicaCnt"] is None
    assert body["autoscalingMin"] == 0
    assert body["autoscalingMax"] == 4


async def test_friendli_patch_keeps_other_fields(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("ep1", status="INITIALIZING", autoscaling_max=7)
    created = emu.store("friendli").get("ep1")
    assert created is not None
    emu.store("friendli").patch("ep1", status="RUNNING")
    rec = emu.store("friendli").get("ep1")
    assert rec is not None
    assert rec.status == "RUNNING"
    assert rec.autoscaling_max == 7
    assert rec.created_at == created.created_at
    with pytest.raises(KeyError):
        emu.store("friendli").patch("missing", status="RUNNING")
    with pytest.raises(TypeError):
        emu.store("friendli").patch("ep1", no_such_field=1)


async def test_friendli_unknown_endpoint_is_fastapi_404(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{FRIENDLI}/nope/status", headers=BEARER)
    assert r.status_code == 404
    assert isinstance(r.json()["detail"], str)


async def test_friendli_auth_and_rotation(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("ep1")
    emu.store("runpod").put("rp1")
    url = f"{FRIENDLI}/ep1/status"
    assert (await client.get(url)).status_code == 401
    wrong = await client.get(url, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401
    assert "detail" in wrong.json()
    assert (await client.get(url, headers={"Authorization": TOKEN})).status_code == 401

    emu.set_token("friendli", "rotated")
    assert (await client.get(url, headers=BEARER)).status_code == 401
    ok = await client.get(url, headers={"Authorization": "Bearer rotated"})
    assert ok.status_code == 200
    # Rotation is per provider.
    assert (await client.get("/runpod/v2/serverless/rp1", headers=BEARER)).status_code == 200


async def test_friendli_team_scoping(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("mine", team=None)
    emu.store("friendli").put("a1", team="team-a")
    emu.store("friendli").put("a2", team="team-a")
    emu.store("friendli").put("b1", team="team-b")
    team_a = {**BEARER, "X-Friendli-Team": "team-a"}

    assert (await client.get(f"{FRIENDLI}/a1/status", headers=team_a)).status_code == 200
    assert (await client.get(f"{FRIENDLI}/a1/status", headers=BEARER)).status_code == 404
    other = {**BEARER, "X-Friendli-Team": "team-b"}
    assert (await client.get(f"{FRIENDLI}/a1/status", headers=other)).status_code == 404
    assert (await client.get(f"{FRIENDLI}/a1", headers=other)).status_code == 404

    listed = (await client.get(FRIENDLI, headers=team_a)).json()
    assert set(listed["data"]) == {"a1", "a2"}
    assert set((await client.get(FRIENDLI, headers=BEARER)).json()["data"]) == {"mine"}


async def test_friendli_list_paging(emu: Emulator, client: httpx.AsyncClient) -> None:
    ids = emu.bulk("friendli", 45, prefix="ep-")
    first = (await client.get(FRIENDLI, headers=BEARER)).json()
    assert len(first["data"]) == 20  # documented default
    assert first["nextCursor"]
    for status in first["data"].values():
        assert {"status", "createdAt"} <= status.keys()

    seen: list[str] = []
    sizes = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 20}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(FRIENDLI, headers=BEARER, params=params)).json()
        sizes.append(len(page["data"]))
        seen.extend(page["data"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sizes == [20, 20, 5]
    assert seen == ids


@pytest.mark.parametrize("limit", ["0", "101", "x"])
async def test_friendli_limit_validation(
    emu: Emulator, client: httpx.AsyncClient, limit: str
) -> None:
    r = await client.get(FRIENDLI, headers=BEARER, params={"limit": limit})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_friendli_bad_cursor(client: httpx.AsyncClient) -> None:
    r = await client.get(FRIENDLI, headers=BEARER, params={"cursor": "!!not-ours"})
    assert r.status_code == 400
    assert "detail" in r.json()


# ---------------------------------------------------------------------------------------------
# RunPod

V1_REQUIRED = {
    "computeType",
    "createdAt",
    "executionTimeoutMs",
    "gpuCount",
    "gpuTypeIds",
    "id",
    "idleTimeout",
    "name",
    "scalerType",
    "scalerValue",
    "templateId",
    "userId",
    "version",
    "workersMax",
    "workersMin",
}


async def test_runpod_v1_include_workers(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("runpod").put(
        "rp1",
        workers=[
            "RUNNING",
            "IDLE",
            "INITIALIZING",
            "UNHEALTHY",
            {"status": "IDLE", "desired_status": "TERMINATED"},
        ],
        workers_min=1,
        workers_max=5,
    )
    plain = (await client.get("/runpod/v1/endpoints/rp1", headers=BEARER)).json()
    assert plain.keys() >= V1_REQUIRED
    assert "workers" not in plain
    assert "template" not in plain
    assert plain["workersMin"] == 1 and plain["workersMax"] == 5

    full = await client.get(
        "/runpod/v1/endpoints/rp1",
        headers=BEARER,
        params={"includeWorkers": "true", "includeTemplate": "true"},
    )
    body = full.json()
    assert "template" in body
    workers = body["workers"]
    assert len(workers) == 5
    desired = [w["desiredStatus"] for w in workers]
    assert desired == ["RUNNING", "RUNNING", "RUNNING", "EXITED", "TERMINATED"]
    assert all(isinstance(w["id"], str) and w["id"] for w in workers)
    assert len({w["id"] for w in workers}) == 5


async def test_runpod_v2_endpoint_and_summary(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("runpod").put(
        "rp1", workers=["RUNNING", "RUNNING", "IDLE", "THROTTLED", "UNHEALTHY"], workers_max=6
    )
    ep = await client.get("/runpod/v2/serverless/rp1", headers=BEARER)
    assert ep.status_code == 200
    assert ep.json()["id"] == "rp1"
    assert ep.json()["workers"] == {"min": 0, "max": 6, "idleTimeout": 5}
    assert "RateLimit" in ep.headers and "RateLimit-Policy" in ep.headers

    body = (await client.get("/runpod/v2/serverless/rp1/workers", headers=BEARER)).json()
    assert body["summary"] == {
        "running": 2,
        "idle": 1,
        "initializing": 0,
        "throttled": 1,
        "unhealthy": 1,
        "total": 5,
    }
    assert [w["status"] for w in body["workers"]] == [
        "RUNNING",
        "RUNNING",
        "IDLE",
        "THROTTLED",
        "UNHEALTHY",
    ]
    assert all({"id", "status"} <= w.keys() for w in body["workers"])
    assert "endpointVersion" in body


async def test_runpod_lists(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("runpod").put("rp1", workers=["IDLE"])
    emu.store("runpod").put("rp2")
    v1 = (await client.get("/runpod/v1/endpoints", headers=BEARER)).json()
    assert isinstance(v1, list)
    assert [e["id"] for e in v1] == ["rp1", "rp2"]
    assert all("workers" not in e for e in v1)
    v1w = (await client.get("/runpod/v1/endpoints?includeWorkers=true", headers=BEARER)).json()
    assert [len(e["workers"]) for e in v1w] == [1, 0]
    v2 = (await client.get("/runpod/v2/serverless", headers=BEARER)).json()
    assert [e["id"] for e in v2["endpoints"]] == ["rp1", "rp2"]


async def test_runpod_error_formats(emu: Emulator, client: httpx.AsyncClient) -> None:
    v2 = await client.get("/runpod/v2/serverless/nope", headers=BEARER)
    assert v2.status_code == 404
    assert v2.headers["content-type"].startswith("application/problem+json")
    problem = v2.json()
    assert {"title", "status", "detail"} <= problem.keys()
    assert problem["status"] == 404

    v1 = await client.get("/runpod/v1/endpoints/nope", headers=BEARER)
    assert v1.status_code == 404
    assert isinstance(v1.json()["message"], str)

    assert (await client.get("/runpod/v2/serverless/nope")).json()["status"] == 401
    unauth_v1 = await client.get("/runpod/v1/endpoints", headers={"Authorization": "Bearer x"})
    assert unauth_v1.status_code == 401
    assert "message" in unauth_v1.json()


async def test_runpod_explicit_desired_status_and_patch(emu: Emulator) -> None:
    emu.store("runpod").put("rp1", workers=[{"status": "RUNNING", "desired_status": "EXITED"}])
    emu.store("runpod").patch("rp1", workers_max=9)
    rec = emu.store("runpod").get("rp1")
    assert rec is not None
    assert rec.workers_max == 9
    assert rec.workers[0].v1_desired_status() == "EXITED"
    with pytest.raises(ValueError):
        emu.store("runpod").put("rp2", workers=[{"state": "RUNNING"}])


# ---------------------------------------------------------------------------------------------
# Takeoff

TAKEOFF_CONFIG = {
    "allow_remote_images",
    "body_size_limit_bytes",
    "echo",
    "enable_metrics",
    "heartbeat_check_interval",
    "internal_port",
    "management_port",
    "openai_port",
    "port",
    "reader_message_timeout_ms",
    "repository_path",
    "reserved_consumers",
    "snowflake_port",
    "vertex_port",
}
READER_INFO = {"consumer_groups", "consumer_name", "device", "model_name", "model_type", "pids"}


async def test_takeoff_shape(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("takeoff").put(
        "tk",
        live=[{"model_name": "llama-3-8b", "consumer_groups": ["primary", "gen"]}],
        loading=["mistral-7b"],
        dead=[{"model_name": "broken", "reader_id": "r-dead"}],
    )
    r = await client.get("/takeoff/tk/status")  # self-hosted: no auth header
    assert r.status_code == 200
    body = r.json()
    assert body["config"].keys() >= TAKEOFF_CONFIG
    assert isinstance(body["config"]["reserved_consumers"], str)
    status = body["status"]
    assert {
        "live_readers",
        "loading_readers",
        "dead_readers",
        "last_heartbeat",
        "reserved_consumers",
    } <= status.keys()
    assert isinstance(status["reserved_consumers"], list)
    (live,) = status["live_readers"].values()
    assert live.keys() >= READER_INFO
    assert live["model_name"] == "llama-3-8b"
    assert live["consumer_groups"] == ["primary", "gen"]
    assert all(isinstance(p, int) for p in live["pids"])
    assert [r["model_name"] for r in status["loading_readers"].values()] == ["mistral-7b"]
    assert list(status["dead_readers"]) == ["r-dead"]
    beats = status["last_heartbeat"]
    assert set(beats) == {*status["live_readers"], *status["loading_readers"], "r-dead"}
    for beat in beats.values():
        assert {"heartbeat_timestamp", "heartbeat_wait_interval"} <= beat.keys()
    assert beats["r-dead"]["heartbeat_timestamp"] < time.time() - 30


async def test_takeoff_null_status_and_503(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("takeoff").put("tk", null_status=True)
    body = (await client.get("/takeoff/tk/status")).json()
    assert body["status"] is None
    assert body["config"].keys() >= TAKEOFF_CONFIG

    emu.store("takeoff").patch("tk", unavailable=True)
    assert (await client.get("/takeoff/tk/status")).status_code == 503
    assert (await client.get("/takeoff/unknown/status")).status_code == 404


# ---------------------------------------------------------------------------------------------
# NS model server


async def test_ns_ready_and_loading(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("nsModelServer").put("ns1")
    body = (await client.get("/ns/ns1/status")).json()
    assert body["data"]["stage"] == "READY"
    assert body["data"]["progress"] == 100
    assert isinstance(body["data"]["messages"], list)
    assert "errors" not in body["data"]
    assert isinstance(body["server"]["version"], str)

    emu.store("nsModelServer").put("ns1", stage="LOADING_MODEL", progress=40)
    data = (await client.get("/ns/ns1/status")).json()["data"]
    assert (data["stage"], data["progress"]) == ("LOADING_MODEL", 40)


async def test_ns_failed_is_http_200(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("nsModelServer").put(
        "ns1",
        stage="FAILED",
        errors=[{"errorType": "INVALID_MODEL", "cause": "bad", "detail": "trace"}, "oom"],
    )
    r = await client.get("/ns/ns1/status")
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["stage"] == "FAILED"
    assert data["errors"][0] == {"errorType": "INVALID_MODEL", "cause": "bad", "detail": "trace"}
    assert {"errorType", "cause", "detail"} <= data["errors"][1].keys()


# ---------------------------------------------------------------------------------------------
# DataArts Fabric

BRIEF_FIELDS = {
    "visibility",
    "id",
    "name",
    "type",
    "status",
    "description",
    "create_time",
    "update_time",
    "owner",
    "cap",
    "reserved_resource",
    "caches",
    "public_access",
}


async def test_dataarts_pagination(emu: Emulator, client: httpx.AsyncClient) -> None:
    ids = emu.bulk("dataArtsFabric", 250, group=("ws-1",), prefix="ep-")
    url = f"{DA}/ws-1/endpoints"
    pages = []
    for offset in (0, 100, 200):
        r = await client.get(url, headers=DA_AUTH, params={"offset": offset, "limit": 100})
        assert r.status_code == 200
        pages.append(r.json())
    assert [p["total"] for p in pages] == [250, 250, 250]
    assert [len(p["endpoints"]) for p in pages] == [100, 100, 50]
    assert [e["id"] for p in pages for e in p["endpoints"]] == ids

    default = (await client.get(url, headers=DA_AUTH)).json()
    assert len(default["endpoints"]) == 10  # documented default limit
    past_end = (await client.get(url, headers=DA_AUTH, params={"offset": 300})).json()
    assert past_end == {"total": 250, "endpoints": []}


async def test_dataarts_filters(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.bulk("dataArtsFabric", 30, group=("ws-1",), prefix="inf-", type="inference")
    emu.bulk("dataArtsFabric", 12, group=("ws-1",), prefix="ray-", type="ray", model_id="m" * 32)
    emu.store("dataArtsFabric").put("ws-1", "special-one", name="Chat_Prod-Main")
    url = f"{DA}/ws-1/endpoints"

    one = (await client.get(url, headers=DA_AUTH, params={"endpoint_id": "ray-000003"})).json()
    assert one["total"] == 1
    assert [e["id"] for e in one["endpoints"]] == ["ray-000003"]
    none = (await client.get(url, headers=DA_AUTH, params={"endpoint_id": "ray-00000"})).json()
    assert none == {"total": 0, "endpoints": []}

    rays = (await client.get(url, headers=DA_AUTH, params={"type": "ray", "limit": 5})).json()
    assert rays["total"] == 12
    assert len(rays["endpoints"]) == 5
    assert {e["type"] for e in rays["endpoints"]} == {"ray"}

    by_model = (await client.get(url, headers=DA_AUTH, params={"model_id": "m" * 32})).json()
    assert by_model["total"] == 12

    fuzzy = (await client.get(url, headers=DA_AUTH, params={"name": "prod-ma"})).json()
    assert [e["id"] for e in fuzzy["endpoints"]] == ["special-one"]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"offset": -1}, {"type": "gpu"}]
)
async def test_dataarts_bad_query_is_400(
    emu: Emulator, client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    emu.store("dataArtsFabric").put("ws-1", "ep-1")
    r = await client.get(f"{DA}/ws-1/endpoints", headers=DA_AUTH, params=params)
    assert r.status_code == 400
    body = r.json()
    assert body["error_code"] == "common.01000001"
    assert isinstance(body["error_msg"], str)


async def test_dataarts_not_found_codes(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("dataArtsFabric").put("ws-1", "ep-1")
    for path in (f"{DA}/nows/endpoints", f"{DA}/nows/endpoints/ep-1"):
        r = await client.get(path, headers=DA_AUTH)
        assert r.status_code == 400
        assert r.json()["error_code"].endswith("00010003")
    r = await client.get(f"{DA}/ws-1/endpoints/ep-404", headers=DA_AUTH)
    assert r.status_code == 400
    assert r.json()["error_code"].endswith("00010009")
    assert {"error_code", "error_msg"} <= r.json().keys()

    emu.store("dataArtsFabric").create_group("empty")
    assert (await client.get(f"{DA}/empty/endpoints", headers=DA_AUTH)).json() == {
        "total": 0,
        "endpoints": [],
    }


async def test_dataarts_auth(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("dataArtsFabric").put("ws-1", "ep-1")
    expected = {
        "error_code": "APIG.1002",
        "error_msg": "Incorrect token or token resolution failed",
    }
    for headers in ({}, {"X-Auth-Token": "bogus"}, BEARER):
        r = await client.get(f"{DA}/ws-1/endpoints/ep-1", headers=headers)
        assert r.status_code == 401
        assert r.json() == expected
    emu.set_token("dataArtsFabric", "iam-2")
    assert (await client.get(f"{DA}/ws-1/endpoints/ep-1", headers=DA_AUTH)).status_code == 401
    ok = await client.get(f"{DA}/ws-1/endpoints/ep-1", headers={"X-Auth-Token": "iam-2"})
    assert ok.status_code == 200


AK, SK = "HPUAEXAMPLEACCESSKEY", "exampleSecretKey0123456789abcdefghijklmn"


async def _signed_get(
    client: httpx.AsyncClient, path: str, sk: str = SK, when: datetime | None = None
) -> httpx.Response:
    request = client.build_request("GET", path, params={"offset": 0, "limit": 100})
    sign_request(request, AK, sk, when)
    return await client.send(request)


async def test_dataarts_accepts_requests_signed_with_a_known_access_key(
    emu: Emulator, client: httpx.AsyncClient
) -> None:
    emu.store("dataArtsFabric").put("ws-1", "ep-1")
    path = f"{DA}/ws-1/endpoints"
    assert (await _signed_get(client, path)).status_code == 401  # no access key known yet
    emu.set_access_key("dataArtsFabric", AK, SK)
    ok = await _signed_get(client, path)
    assert ok.status_code == 200 and ok.json()["endpoints"][0]["id"] == "ep-1"
    assert (await _signed_get(client, path, sk="not-the-secret-key")).status_code == 401
    old = datetime.now(UTC) - timedelta(minutes=20)
    assert (await _signed_get(client, path, when=old)).status_code == 401
    # A signature covers the query: the same headers on another query are refused.
    good = client.build_request("GET", path, params={"offset": 0, "limit": 100})
    sign_request(good, AK, SK)
    tampered = client.build_request("GET", path, params={"offset": 0, "limit": 1})
    tampered.headers.update({k: good.headers[k] for k in ("Authorization", "X-Sdk-Date")})
    assert (await client.send(tampered)).status_code == 401


async def test_tokens_expire_and_access_keys_do_not(
    emu: Emulator, client: httpx.AsyncClient
) -> None:
    emu.store("dataArtsFabric").put("ws-1", "ep-1")
    emu.set_access_key("dataArtsFabric", AK, SK)
    path = f"{DA}/ws-1/endpoints"
    await client.put(
        f"{emu.control_url}/tokens/dataArtsFabric", json={"token": "iam-1", "expires_in": 0.3}
    )
    assert (await client.get(path, headers={"X-Auth-Token": "iam-1"})).status_code == 200
    await asyncio.sleep(0.4)
    assert (await client.get(path, headers={"X-Auth-Token": "iam-1"})).status_code == 401
    assert (await _signed_get(client, path)).status_code == 200
    emu.set_token("dataArtsFabric", "iam-2")  # no expiry: a fresh token works again
    assert (await client.get(path, headers={"X-Auth-Token": "iam-2"})).status_code == 200


async def test_dataarts_brief_fields(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("dataArtsFabric").put("ws-1", "inf-1", warm_up_num=1, max_num=3)
    emu.store("dataArtsFabric").put("ws-1", "ray-1", type="ray_service", warm_up_num=2, max_num=4)
    emu.store("dataArtsFabric").put(
        "ws-1",
        "bad-1",
        status="CREATE_FAILED",
        error_code="DataArtsFabric.00040007",
        error_msg="quota exceeded",
    )

    inf = (await client.get(f"{DA}/ws-1/endpoints/inf-1", headers=DA_AUTH)).json()
    assert inf.keys() >= BRIEF_FIELDS
    assert inf["reserved_resource"]["apu"] == {"spec_code": "a1x", "warm_up_num": 1, "max_num": 3}
    assert {"domain_name", "domain_id", "user_name", "user_id"} <= inf["owner"].keys()
    assert {"cap_id", "version_id"} <= inf["cap"].keys()
    assert "error_code" not in inf

    ray = (await client.get(f"{DA}/ws-1/endpoints/ray-1", headers=DA_AUTH)).json()
    (group,) = ray["ray_resource"]["worker_group_spec"]
    assert {"name", "spec_code", "min_replicas", "max_replicas"} <= group.keys()
    assert (group["min_replicas"], group["max_replicas"]) == (2, 4)

    listed = (
        await client.get(f"{DA}/ws-1/endpoints", headers=DA_AUTH, params={"endpoint_id": "bad-1"})
    ).json()
    (bad,) = listed["endpoints"]
    assert bad["status"] == "CREATE_FAILED"
    assert (bad["error_code"], bad["error_msg"]) == ("DataArtsFabric.00040007", "quota exceeded")


# ---------------------------------------------------------------------------------------------
# Faults


def _friendli_error(r: httpx.Response) -> None:
    assert isinstance(r.json()["detail"], str)


def _runpod_v2_error(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == r.status_code


def _dataarts_error(r: httpx.Response) -> None:
    body = r.json()
    assert "error_code" in body and "error_msg" in body


def _text_error(r: httpx.Response) -> None:
    assert r.text


FAULT_TARGETS: dict[str, tuple[str, dict[str, str], Callable[[httpx.Response], None]]] = {
    "friendli": (f"{FRIENDLI}/ep1/status", BEARER, _friendli_error),
    "runpod": ("/runpod/v2/serverless/rp1", BEARER, _runpod_v2_error),
    "takeoff": ("/takeoff/tk/status", {}, _text_error),
    "nsModelServer": ("/ns/ns1/status", {}, _text_error),
    "dataArtsFabric": (f"{DA}/ws-1/endpoints", DA_AUTH, _dataarts_error),
}


def _seed_all(emu: Emulator) -> None:
    emu.store("friendli").put("ep1")
    emu.store("runpod").put("rp1", workers=["IDLE"])
    emu.store("takeoff").put("tk", live=["m"])
    emu.store("nsModelServer").put("ns1")
    emu.store("dataArtsFabric").put("ws-1", "ep-1")


@pytest.mark.parametrize("provider", list(FAULT_TARGETS))
@pytest.mark.parametrize("status", [401, 403, 404, 408, 429, 500, 503])
async def test_status_faults(
    emu: Emulator, client: httpx.AsyncClient, provider: Any, status: int
) -> None:
    _seed_all(emu)
    path, headers, check = FAULT_TARGETS[provider]
    emu.fail(provider, status, times=1)
    r = await client.get(path, headers=headers)
    assert r.status_code == status
    check(r)
    if status == 429:
        assert r.headers["Retry-After"] == "1"
    # times=1: the next request is served normally.
    assert (await client.get(path, headers=headers)).status_code == 200


async def test_dataarts_403_body(emu: Emulator, client: httpx.AsyncClient) -> None:
    _seed_all(emu)
    emu.fail("dataArtsFabric", 403)
    body = (await client.get(f"{DA}/ws-1/endpoints", headers=DA_AUTH)).json()
    assert body["error_code"] == 403
    assert body["error"]["code"] == "403"


async def test_fault_scoping_and_counting(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("ep1")
    emu.store("friendli").put("ep2")
    emu.fail("friendli", 500, endpoint="ep2", times=2)
    emu.fail("runpod", 503)  # other provider: irrelevant here
    assert (await client.get(f"{FRIENDLI}/ep1/status", headers=BEARER)).status_code == 200
    codes = [
        (await client.get(f"{FRIENDLI}/ep2/status", headers=BEARER)).status_code for _ in range(3)
    ]
    assert codes == [500, 500, 200]
    assert [f.provider for f in emu.list_faults()] == ["runpod"]
    assert emu.clear_faults() == 1
    assert emu.list_faults() == []


async def test_retry_after_override(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("runpod").put("rp1")
    emu.fail("runpod", 429, retry_after=7)
    r = await client.get("/runpod/v2/serverless/rp1", headers=BEARER)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert r.json()["status"] == 429


async def test_slow_fault(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("nsModelServer").put("ns1")
    emu.slow("nsModelServer", 0.4, endpoint="ns1", times=1)
    start = time.monotonic()
    r = await client.get("/ns/ns1/status")
    assert r.status_code == 200
    assert time.monotonic() - start >= 0.35
    emu.slow("nsModelServer", 5)
    with pytest.raises(httpx.ReadTimeout):
        await client.get("/ns/ns1/status", timeout=0.3)


async def test_garbage_faults(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("ep1", status="RUNNING")
    url = f"{FRIENDLI}/ep1/status"

    emu.garbage("friendli", "html", times=1)
    html = await client.get(url, headers=BEARER)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert html.text.lstrip().startswith("<")

    emu.garbage("friendli", "truncated", times=1)
    cut = await client.get(url, headers=BEARER)
    assert cut.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        cut.json()

    emu.garbage("friendli", "wrong_types", times=1)
    wrong = (await client.get(url, headers=BEARER)).json()
    assert "status" in wrong and not isinstance(wrong["status"], str)
    assert not isinstance(wrong["createdAt"], str)

    assert (await client.get(url, headers=BEARER)).json()["status"] == "RUNNING"


async def test_huge_fault(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("dataArtsFabric").put("ws-1", "ep-1")
    emu.huge("dataArtsFabric", times=1)
    r = await client.get(f"{DA}/ws-1/endpoints", headers=DA_AUTH, timeout=60)
    assert len(r.content) >= 20 * 1024 * 1024
    assert r.json()["total"] == 1  # still valid JSON carrying the real answer
    assert len((await client.get(f"{DA}/ws-1/endpoints", headers=DA_AUTH)).content) < 10_000


# ---------------------------------------------------------------------------------------------
# Lifecycles, accounting, freshness


async def test_lifecycle_advances_on_its_own(emu: Emulator, client: httpx.AsyncClient) -> None:
    emu.store("friendli").put("ep1", status="INITIALIZING", phase="REQUESTING_VIRTUAL_MACHINE")
    before = emu.changed_at("friendli", "ep1")
    lid = emu.lifecycle(
        "friendli",
        "ep1",
        [(0.2, {"phase": "DOWNLOADING_MODEL"}), (0.4, {"status": "RUNNING", "phase": None})],
    )
    seen: list[tuple[str, str | None]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = (await client.get(f"{FRIENDLI}/ep1/status", headers=BEARER)).json()
        if not seen or seen[-1] != (body["status"], body["phase"]):
            seen.append((body["status"], body["phase"]))
        if body["status"] == "RUNNING":
            break
        await asyncio.sleep(0.02)
    assert seen == [
        ("INITIALIZING", "REQUESTING_VIRTUAL_MACHINE"),
        ("INITIALIZING", "DOWNLOADING_MODEL"),
        ("RUNNING", None),
    ]
    assert emu.changed_at("friendli", "ep1") > before
    await emu.wait_lifecycle(lid)
    assert emu.active_lifecycles() == []


async def test_lifecycle_creates_deletes_and_cancels(
    emu: Emulator, client: httpx.AsyncClient
) -> None:
    emu.lifecycle("dataArtsFabric", ("ws", "ep-1"), [(0, {"status": "CREATING"}), (0.1, None)])
    await asyncio.sleep(0.05)
    assert emu.store("dataArtsFabric").get("ws", "ep-1") is not None
    await asyncio.sleep(0.2)
    assert emu.store("dataArtsFabric").get("ws", "ep-1") is None

    emu.store("nsModelServer").put("ns1", stage="STARTING")
    lid = emu.lifecycle("nsModelServer", "ns1", [(0.2, {"stage": "READY"})])
    assert emu.cancel_lifecycle(lid)
    await asyncio.sleep(0.3)
    rec = emu.store("nsModelServer").get("ns1")
    assert rec is not None and rec.stage == "STARTING"

    emu.lifecycle("nsModelServer", "ns1", [(30, {"stage": "READY"})])
    assert len(emu.active_lifecycles()) == 1
    with pytest.raises(ValueError):
        emu.lifecycle("dataArtsFabric", "ep-1", [(0, {})])


async def test_lifecycles_cancelled_on_stop() -> None:
    emu = Emulator()
    async with emu:
        emu.store("nsModelServer").put("ns1", stage="STARTING")
        emu.lifecycle("nsModelServer", "ns1", [(0.2, {"stage": "READY"})])
    assert emu.active_lifecycles() == []
    await asyncio.sleep(0.3)
    rec = emu.store("nsModelServer").get("ns1")
    assert rec is not None and rec.stage == "STARTING"


async def test_request_accounting(emu: Emulator, client: httpx.AsyncClient) -> None:
    _seed_all(emu)
    for _ in range(3):
        await client.get(f"{FRIENDLI}/ep1/status", headers=BEARER)
    await client.get(f"{FRIENDLI}/ep1", headers=BEARER)
    await client.get(f"{FRIENDLI}/ep1/status")  # 401s count too
    await client.get("/takeoff/tk/status")
    await client.get(f"{DA}/ws-1/endpoints", headers=DA_AUTH, params={"endpoint_id": "ep-1"})
    await client.get(f"{emu.control_url}/requests")  # control calls do not count

    assert emu.requests() == 7
    assert emu.requests("friendli") == 5
    assert emu.requests("friendli", "ep1") == 5
    assert emu.requests(path=f"{FRIENDLI}/ep1/status") == 4
    assert emu.requests("takeoff", "tk") == 1
    assert emu.requests("dataArtsFabric", "ep-1") == 1
    assert emu.requests("dataArtsFabric", "ws-1") == 1
    assert emu.requests("runpod") == 0
    summary = emu.request_summary()
    assert summary["total"] == 7
    assert summary["endpoints"]["friendli"]["ep1"] == 5
    # Requests are also counted per client address (the e2e suite tells replicas apart by it).
    assert summary["clients"]["friendli"]["ep1"] == {"127.0.0.1": 5}
    emu.reset_requests()
    assert emu.requests() == 0


async def test_changed_at(emu: Emulator) -> None:
    with pytest.raises(KeyError):
        emu.changed_at("runpod", "rp1")
    t0 = time.time()
    emu.store("runpod").put("rp1")
    t1 = emu.changed_at("runpod", "rp1")
    assert t0 <= t1 <= time.time()
    await asyncio.sleep(0.01)
    emu.store("runpod").patch("rp1", workers=["RUNNING"])
    assert emu.changed_at("runpod", "rp1") > t1


async def test_bulk_seed_is_fast_and_listing_cheap(
    emu: Emulator, client: httpx.AsyncClient
) -> None:
    start = time.perf_counter()
    ids = emu.bulk("dataArtsFabric", 10_000, group=("bench",), prefix="b-")
    assert time.perf_counter() - start < 1.0
    assert len(ids) == 10_000
    start = time.perf_counter()
    for offset in range(0, 2000, 100):
        page = await client.get(
            f"{DA}/bench/endpoints", headers=DA_AUTH, params={"offset": offset, "limit": 100}
        )
        assert page.json()["total"] == 10_000
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------------------------
# Control API mirrors the Python API


async def test_control_api_endpoints(emu: Emulator, client: httpx.AsyncClient) -> None:
    c = emu.control_url
    for info_url in (c, f"{c}/"):
        info = (await client.get(info_url)).json()
        assert info["urls"]["friendli"] == emu.url("friendli")
    put = await client.put(
        f"{c}/friendli/ep1", json={"status": "INITIALIZING", "team": "t", "autoscaling_max": 3}
    )
    assert put.status_code == 200
    assert put.json()["status"] == "INITIALIZING"
    rec = emu.store("friendli").get("ep1")
    assert rec is not None and (rec.team, rec.autoscaling_max) == ("t", 3)
    assert (await client.patch(f"{c}/friendli/ep1", json={"status": "RUNNING"})).status_code == 200
    served = await client.get(f"{FRIENDLI}/ep1/status", headers={**BEARER, "X-Friendli-Team": "t"})
    assert served.json()["status"] == "RUNNING"
    assert (await client.get(f"{c}/friendli")).json() == {"ids": ["ep1"]}
    assert (await client.delete(f"{c}/friendli/ep1")).status_code == 200
    assert emu.store("friendli").get("ep1") is None
    assert (await client.get(f"{c}/friendli/ep1")).status_code == 404

    await client.put(f"{c}/runpod/rp1", json={"workers": ["RUNNING", "IDLE"]})
    summary = (await client.get("/runpod/v2/serverless/rp1/workers", headers=BEARER)).json()
    assert summary["summary"]["total"] == 2
    await client.put(f"{c}/takeoff/tk", json={"null_status": True})
    assert (await client.get("/takeoff/tk/status")).json()["status"] is None
    await client.put(f"{c}/nsModelServer/ns1", json={"stage": "FAILED"})
    assert (await client.get("/ns/ns1/status")).json()["data"]["stage"] == "FAILED"
    da = await client.put(
        f"{c}/dataArtsFabric/ws-1/ep-1", json={"status": "CREATING", "max_num": 2}
    )
    assert da.status_code == 200
    got = await client.get(f"{DA}/ws-1/endpoints/ep-1", headers=DA_AUTH)
    assert got.json()["status"] == "CREATING"
    assert (await client.get(f"{c}/dataArtsFabric/ws-1")).json()["ids"] == ["ep-1"]

    bad = await client.put(f"{c}/friendli/ep2", json={"no_such": 1})
    assert bad.status_code == 400 and "error" in bad.json()
    assert (
        await client.put(f"{c}/dataArtsFabric/ws-1/ep-2", json={"type": "gpu"})
    ).status_code == 400
    assert (await client.patch(f"{c}/nsModelServer/missing", json={})).status_code == 404


async def test_control_api_faults_tokens_counts(emu: Emulator, client: httpx.AsyncClient) -> None:
    c = emu.control_url
    emu.store("runpod").put("rp1")
    fault = await client.post(
        f"{c}/faults", json={"provider": "runpod", "kind": "status", "status": 429, "times": 1}
    )
    fid = fault.json()["id"]
    listed = (await client.get(f"{c}/faults")).json()["faults"]
    assert [f["id"] for f in listed] == [fid]
    r = await client.get("/runpod/v1/endpoints/rp1", headers=BEARER)
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert (await client.get(f"{c}/faults")).json()["faults"] == []

    await client.post(f"{c}/faults", json={"provider": "runpod", "kind": "garbage", "mode": "html"})
    assert (await client.delete(f"{c}/faults", params={"provider": "runpod"})).json() == {
        "removed": 1
    }
    bad = await client.post(f"{c}/faults", json={"provider": "nope", "kind": "status"})
    assert bad.status_code == 400

    assert (await client.put(f"{c}/tokens/runpod", json={"token": "k2"})).status_code == 200
    assert (await client.get("/runpod/v1/endpoints/rp1", headers=BEARER)).status_code == 401
    new = {"Authorization": "Bearer k2"}
    assert (await client.get("/runpod/v1/endpoints/rp1", headers=new)).status_code == 200
    await client.put(f"{c}/tokens", json={"token": "k3"})
    assert emu.token("friendli") == "k3" and emu.token("dataArtsFabric") == "k3"

    count = await client.get(f"{c}/requests", params={"provider": "runpod", "endpoint": "rp1"})
    assert count.json() == {"count": emu.requests("runpod", "rp1")} == {"count": 3}
    assert (await client.get(f"{c}/requests/summary")).json()["total"] == 3
    await client.delete(f"{c}/requests")
    assert emu.requests() == 0

    changed = (await client.get(f"{c}/changed_at/runpod/rp1")).json()["changed_at"]
    assert changed == emu.changed_at("runpod", "rp1")
    assert (await client.get(f"{c}/changed_at/runpod/zzz")).status_code == 404


async def test_control_api_lifecycle_seed_bulk(emu: Emulator, client: httpx.AsyncClient) -> None:
    c = emu.control_url
    seed = {
        "friendli": {"ep1": {"status": "INITIALIZING"}},
        "dataArtsFabric": {"ws-1": {"ep-a": None}},
    }
    assert (await client.post(f"{c}/seed", json=seed)).status_code == 200
    assert emu.store("dataArtsFabric").get("ws-1", "ep-a") is not None

    life = await client.post(
        f"{c}/lifecycles",
        json={
            "provider": "friendli",
            "key": "ep1",
            "steps": [{"after": 0.1, "set": {"status": "RUNNING"}}],
        },
    )
    lid = life.json()["id"]
    assert (await client.get(f"{c}/lifecycles")).json()["active"] == [lid]
    await asyncio.sleep(0.3)
    rec = emu.store("friendli").get("ep1")
    assert rec is not None and rec.status == "RUNNING"

    bulk = await client.post(
        f"{c}/bulk",
        json={
            "provider": "dataArtsFabric",
            "workspace": "ws-b",
            "count": 120,
            "fields": {"type": "job"},
        },
    )
    assert bulk.json()["count"] == 120
    page = (
        await client.get(f"{DA}/ws-b/endpoints", headers=DA_AUTH, params={"type": "job"})
    ).json()
    assert page["total"] == 120

    assert (await client.post(f"{c}/reset")).status_code == 200
    assert emu.store("friendli").ids() == [] and emu.store("dataArtsFabric").ids() == []


# ---------------------------------------------------------------------------------------------
# Seed files and serve_forever

SEED_YAML = """
friendli:
  ep-1: {status: INITIALIZING, phase: DOWNLOADING_MODEL, team: team-a}
runpod:
  rp-1: {workers: [RUNNING, IDLE], workers_max: 3}
takeoff:
  tk-1: {live: [llama-3-8b]}
nsModelServer:
  ns-1: {stage: LOADING_MODEL, progress: 40}
dataArtsFabric:
  ws-1:
    ep-a: {status: RUNNING, warm_up_num: 1, max_num: 3}
    ep-b: null
bulk:
  - {provider: dataArtsFabric, workspace: ws-bench, count: 50, prefix: bench-}
faults:
  - {provider: nsModelServer, kind: status, status: 503, times: 1}
"""


async def test_load_seed_yaml_and_json(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED_YAML)
    emu = Emulator()
    emu.load_seed(path)
    assert emu.store("friendli").ids() == ["ep-1"]
    assert emu.store("dataArtsFabric").ids("ws-1") == ["ep-a", "ep-b"]
    assert len(emu.store("dataArtsFabric").ids("ws-bench")) == 50
    assert len(emu.list_faults()) == 1

    json_path = tmp_path / "seed.json"
    json_path.write_text(json.dumps({"nsModelServer": {"n": {"stage": "READY"}}}))
    emu.load_seed(json_path)
    assert emu.store("nsModelServer").ids() == ["ns-1", "n"]

    bad = tmp_path / "bad.yaml"
    bad.write_text("unknown_provider: {}\n")
    with pytest.raises(ValueError):
        emu.load_seed(bad)


async def test_serve_forever(tmp_path: Path) -> None:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED_YAML)
    started: asyncio.Future[Emulator] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_forever("127.0.0.1", 0, "cli-token", str(path), ready=started.set_result)
    )
    try:
        emu = await asyncio.wait_for(started, 5)
        async with httpx.AsyncClient(base_url=emu.base_url) as c:
            r = await c.get(
                "/runpod/v2/serverless/rp-1", headers={"Authorization": "Bearer cli-token"}
            )
            assert r.status_code == 200
            assert (await c.get("/ns/ns-1/status")).status_code == 503  # the seeded fault
            assert (await c.get("/ns/ns-1/status")).json()["data"]["progress"] == 40
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_takeoff_patch_adds_readers_beside_existing_ones() -> None:
    async with Emulator(token="t") as emu:
        emu.store("takeoff").put("inst", loading=["model-a"])
        emu.store("takeoff").patch("inst", live=["model-a"])
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"{emu.url('takeoff', instance='inst')}/status")).json()[
                "status"
            ]
        assert len(status["live_readers"]) == 1 and len(status["loading_readers"]) == 1
        assert set(status["live_readers"]).isdisjoint(status["loading_readers"])
