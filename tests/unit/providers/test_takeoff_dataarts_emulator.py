"""The Takeoff and DataArts Fabric adapters against the provider emulator on 127.0.0.1.

The unit tests pin each adapter to our reading of the docs; these check that the adapters and
the emulator (written separately, from the same docs) agree on paths, shapes, paging and headers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from inferenceops.providers import (
    ErrorReason,
    Phase,
    PollResult,
    Target,
    Workers,
)
from inferenceops.providers.dataarts import PROVIDER as DATAARTS
from inferenceops.providers.dataarts import DataArtsFabricConfig
from inferenceops.providers.takeoff import PROVIDER as TAKEOFF
from inferenceops.providers.takeoff import TakeoffConfig
from inferenceops_emulator import Emulator

from .support import TOKEN, failed, ok, poll

REF = {"name": "creds", "key": "token"}
WS = "ws-emulated"
# 26 characters, so that the emulator's bulk ids (prefix + 6 digits) are valid 32-char ids.
PREFIX = "0b5633ba2b904511ad514346f4"


def eid(n: int) -> str:
    return f"{PREFIX}{n:06d}"


# --- Takeoff ---------------------------------------------------------------------------------


def takeoff(emu: Emulator, instance: str, **extra: Any) -> Target[TakeoffConfig]:
    config = TakeoffConfig.model_validate({"url": emu.url("takeoff", instance=instance), **extra})
    return Target(key=f"ns/{instance}", config=config)


async def takeoff_one(emu: Emulator, instance: str, **extra: Any) -> PollResult:
    return (await poll(TAKEOFF, [takeoff(emu, instance, **extra)]))[f"ns/{instance}"]


@pytest.mark.parametrize(
    ("readers", "phase", "status"),
    [
        ({"live": ["m", "m"]}, Phase.RUNNING, "live=2 loading=0 dead=0"),
        ({"live": ["m"], "loading": ["m"]}, Phase.RUNNING, "live=1 loading=1 dead=0"),
        ({"live": ["m", "m"], "dead": ["m"]}, Phase.DEGRADED, "live=2 loading=0 dead=1"),
        ({"loading": ["m"]}, Phase.PROVISIONING, "live=0 loading=1 dead=0"),
        ({"dead": ["m", "m"]}, Phase.FAILED, "live=0 loading=0 dead=2"),
        ({}, Phase.PROVISIONING, "live=0 loading=0 dead=0 (no readers)"),
    ],
)
async def test_takeoff_mapping(
    emu: Emulator, readers: dict[str, list[str]], phase: Phase, status: str
) -> None:
    emu.store("takeoff").put(
        "tk",
        live=readers.get("live", []),
        loading=readers.get("loading", []),
        dead=readers.get("dead", []),
    )
    obs = ok(await takeoff_one(emu, "tk"))
    assert obs.phase is phase
    assert obs.provider_status == status
    live, loading, dead = (len(readers.get(k, [])) for k in ("live", "loading", "dead"))
    assert obs.workers == Workers(ready=live, total=live + loading + dead)
    if phase is Phase.FAILED:
        assert obs.error_code == "ReadersDead"
    assert emu.requests("takeoff", "tk") == 1


async def test_takeoff_null_status(emu: Emulator) -> None:
    emu.store("takeoff").put("tk", null_status=True)
    obs = ok(await takeoff_one(emu, "tk"))
    assert obs.phase is Phase.PROVISIONING
    assert obs.provider_status == "status=null"


async def test_takeoff_consumer_groups(emu: Emulator) -> None:
    emu.store("takeoff").put(
        "tk",
        live=[{"model_name": "a", "consumer_groups": ["alpha"]}, "p"],
        loading=[{"model_name": "b", "consumer_groups": ["beta"]}],
        dead=[{"model_name": "a", "consumer_groups": ["alpha"]}],
    )
    alpha = ok(await takeoff_one(emu, "tk", consumerGroup="alpha"))
    assert (alpha.phase, alpha.provider_status) == (Phase.DEGRADED, "live=1 loading=0 dead=1")
    beta = ok(await takeoff_one(emu, "tk", consumerGroup="beta"))
    assert (beta.phase, beta.provider_status) == (Phase.PROVISIONING, "live=0 loading=1 dead=0")
    primary = ok(await takeoff_one(emu, "tk", consumerGroup="primary"))
    assert primary.phase is Phase.RUNNING
    nobody = ok(await takeoff_one(emu, "tk", consumerGroup="nobody"))
    assert nobody.phase is Phase.PROVISIONING
    assert "no readers in consumer group 'nobody'" in nobody.provider_status
    everyone = ok(await takeoff_one(emu, "tk"))
    assert everyone.provider_status == "live=2 loading=1 dead=1"


async def test_takeoff_unavailable_is_unreachable(emu: Emulator) -> None:
    emu.store("takeoff").put("tk", live=["m"], unavailable=True)
    err = failed(await takeoff_one(emu, "tk"))
    assert err.reason is ErrorReason.UNREACHABLE
    assert "503" in err.message


async def test_takeoff_unknown_instance_is_not_found(emu: Emulator) -> None:
    assert failed(await takeoff_one(emu, "nope")).reason is ErrorReason.NOT_FOUND


async def test_takeoff_one_request_per_target(emu: Emulator) -> None:
    for i in range(4):
        emu.store("takeoff").put(f"tk{i}", live=["m"])
    results = await poll(TAKEOFF, [takeoff(emu, f"tk{i}") for i in range(4)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert emu.requests("takeoff") == 4


# --- DataArts Fabric -------------------------------------------------------------------------


def dataarts(
    emu: Emulator, n: int, *, workspace: str = WS, token: str = TOKEN
) -> Target[DataArtsFabricConfig]:
    config = DataArtsFabricConfig.model_validate(
        {
            "url": emu.url("dataArtsFabric"),
            "workspaceId": workspace,
            "endpointId": eid(n),
            "credentialsSecretRef": REF,
        }
    )
    return Target(key=f"ns/ep{n}", config=config, credential=token)


async def dataarts_one(emu: Emulator, n: int = 1) -> PollResult:
    return (await poll(DATAARTS, [dataarts(emu, n)]))[f"ns/ep{n}"]


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("CREATING", Phase.PROVISIONING),
        ("RUNNING", Phase.RUNNING),
        ("UPDATING", Phase.UPDATING),
        ("CREATE_FAILED", Phase.FAILED),
        ("UPDATE_FAILED", Phase.FAILED),
        ("DELETE_FAILED", Phase.FAILED),
        ("DELETING", Phase.TERMINATING),
        ("DELETED", Phase.TERMINATED),
        ("FROZEN", Phase.SUSPENDED),
        ("INACTIVE", Phase.SUSPENDED),
        ("TRIAL_ENDED", Phase.SUSPENDED),
        ("MIGRATING", Phase.UNKNOWN),
    ],
)
async def test_dataarts_mapping(emu: Emulator, status: str, phase: Phase) -> None:
    emu.store("dataArtsFabric").put(WS, eid(1), status=status, warm_up_num=2, max_num=5)
    obs = ok(await dataarts_one(emu))
    assert obs.phase is phase
    assert obs.provider_status == status
    assert obs.workers == Workers(min=2, max=5)
    if phase is Phase.FAILED:
        assert obs.error_code  # the emulator fills in a generic code when none was set
    else:
        assert obs.error_code is None
    assert emu.requests("dataArtsFabric") == 1


async def test_dataarts_failed_error_code_and_message(emu: Emulator) -> None:
    emu.store("dataArtsFabric").put(
        WS,
        eid(1),
        status="CREATE_FAILED",
        error_code="DataArtsFabric.00040007",
        error_msg="no quota",
    )
    obs = ok(await dataarts_one(emu))
    assert (obs.error_code, obs.error_message) == ("DataArtsFabric.00040007", "no quota")


async def test_dataarts_max_num_defaults_to_warm_up(emu: Emulator) -> None:
    emu.store("dataArtsFabric").put(WS, eid(1), warm_up_num=3)
    assert ok(await dataarts_one(emu)).workers == Workers(min=3, max=3)


@pytest.mark.parametrize("kind", ["ray", "ray_service"])
async def test_dataarts_ray_worker_sums(emu: Emulator, kind: str) -> None:
    emu.store("dataArtsFabric").put(
        WS,
        eid(1),
        type=kind,
        warm_up_num=9,
        worker_groups=[
            {"name": "a", "spec_code": "s", "min_replicas": 1, "max_replicas": 4},
            {"name": "b", "spec_code": "s", "min_replicas": 2, "max_replicas": 6},
        ],
    )
    assert ok(await dataarts_one(emu)).workers == Workers(min=3, max=10)


async def test_dataarts_single_target_is_one_filtered_request(emu: Emulator) -> None:
    emu.bulk("dataArtsFabric", 250, prefix=PREFIX, group=(WS,))
    assert ok(await dataarts_one(emu, 230)).phase is Phase.RUNNING
    assert emu.requests("dataArtsFabric") == 1
    assert emu.requests("dataArtsFabric", eid(230)) == 1


async def test_dataarts_single_target_absent_is_not_found(emu: Emulator) -> None:
    emu.bulk("dataArtsFabric", 5, prefix=PREFIX, group=(WS,))
    err = failed(await dataarts_one(emu, 99))
    assert err.reason is ErrorReason.NOT_FOUND
    assert f"not found in workspace {WS}" in err.message


async def test_dataarts_workspace_missing(emu: Emulator) -> None:
    err = failed(await dataarts_one(emu))
    assert err.reason is ErrorReason.NOT_FOUND
    assert f"workspace {WS} does not exist" in err.message


@pytest.mark.parametrize("total", [150, 250])
async def test_dataarts_batched_pages_the_workspace(emu: Emulator, total: int) -> None:
    emu.bulk("dataArtsFabric", total, prefix=PREFIX, group=(WS,))
    emu.store("dataArtsFabric").patch(WS, eid(total - 1), status="UPDATING")
    wanted = [0, 120, total - 1]
    results = await poll(DATAARTS, [dataarts(emu, n) for n in wanted])
    assert ok(results[f"ns/ep{total - 1}"]).phase is Phase.UPDATING
    assert ok(results["ns/ep0"]).phase is Phase.RUNNING
    assert emu.requests("dataArtsFabric") == math.ceil(total / 100)


async def test_dataarts_batched_missing_target_falls_back(emu: Emulator) -> None:
    emu.bulk("dataArtsFabric", 10, prefix=PREFIX, group=(WS,))
    results = await poll(DATAARTS, [dataarts(emu, 1), dataarts(emu, 500)])
    assert ok(results["ns/ep1"]).phase is Phase.RUNNING
    assert failed(results["ns/ep500"]).reason is ErrorReason.NOT_FOUND
    # The listing, then the filtered request that confirms the absence.
    assert emu.requests("dataArtsFabric") == 2
    assert emu.requests("dataArtsFabric", eid(500)) == 1


async def test_dataarts_batched_bad_token_applies_to_all(emu: Emulator) -> None:
    emu.bulk("dataArtsFabric", 10, prefix=PREFIX, group=(WS,))
    results = await poll(DATAARTS, [dataarts(emu, n, token="wrong") for n in range(4)])
    assert {failed(r).reason for r in results.values()} == {ErrorReason.UNAUTHORIZED}
    assert emu.requests("dataArtsFabric") == 1


async def test_dataarts_batched_rate_limit_applies_to_all(emu: Emulator) -> None:
    emu.bulk("dataArtsFabric", 10, prefix=PREFIX, group=(WS,))
    emu.fail("dataArtsFabric", 429, endpoint=WS, retry_after=7)
    results = await poll(DATAARTS, [dataarts(emu, n) for n in range(4)])
    for result in results.values():
        err = failed(result)
        assert err.reason is ErrorReason.RATE_LIMITED
        assert err.retry_after == 7
    assert emu.requests("dataArtsFabric") == 1


async def test_dataarts_batched_workspace_missing_applies_to_all(emu: Emulator) -> None:
    results = await poll(DATAARTS, [dataarts(emu, n) for n in range(3)])
    assert {failed(r).reason for r in results.values()} == {ErrorReason.NOT_FOUND}
    assert emu.requests("dataArtsFabric") == 1


async def test_dataarts_listing_server_error_falls_back(emu: Emulator) -> None:
    emu.bulk("dataArtsFabric", 10, prefix=PREFIX, group=(WS,))
    emu.fail("dataArtsFabric", 500, endpoint=WS, times=1)
    results = await poll(DATAARTS, [dataarts(emu, n) for n in range(3)])
    assert all(ok(r).phase is Phase.RUNNING for r in results.values())
    assert emu.requests("dataArtsFabric") == 4


async def test_dataarts_busy_is_unreachable(emu: Emulator) -> None:
    emu.store("dataArtsFabric").put(WS, eid(1))
    body = {"error_code": "DataArtsFabric.00000001", "error_msg": "Service unavailable."}
    emu.fail("dataArtsFabric", 500, endpoint=WS, body=body)
    err = failed(await dataarts_one(emu))
    assert err.reason is ErrorReason.UNREACHABLE
    assert "busy, retry" in err.message
