"""The FriendliAI and RunPod adapters against the provider emulator on 127.0.0.1.

The unit tests pin each adapter to our reading of the docs; these check that the adapters and
the emulator (written separately, from the same docs) agree on paths, shapes and headers.
"""

from __future__ import annotations

from typing import Any

import pytest

from inferenceops.providers import (
    ErrorReason,
    Phase,
    Target,
    Workers,
)
from inferenceops.providers.friendli import FriendliConfig, FriendliProvider
from inferenceops.providers.runpod import RunPodConfig, RunPodProvider
from inferenceops_emulator import Emulator

from .support import TOKEN, failed, ok, poll

REF = {"name": "creds", "key": "token"}


# --- FriendliAI ------------------------------------------------------------------------------


def friendli(emu: Emulator, endpoint_id: str, **extra: Any) -> Target[FriendliConfig]:
    config = FriendliConfig.model_validate(
        {
            "endpointId": endpoint_id,
            "url": emu.url("friendli"),
            "credentialsSecretRef": REF,
            **extra,
        }
    )
    return Target(key=f"ns/{endpoint_id}", config=config, credential=TOKEN)


@pytest.mark.parametrize(
    ("status", "phase"),
    [
        ("INITIALIZING", Phase.PROVISIONING),
        ("RUNNING", Phase.RUNNING),
        ("READY", Phase.RUNNING),
        ("UPDATING", Phase.UPDATING),
        ("SLEEPING", Phase.SLEEPING),
        ("AWAKING", Phase.WAKING),
        ("FAILED", Phase.FAILED),
        ("STOPPING", Phase.TERMINATING),
        ("TERMINATING", Phase.TERMINATING),
        ("TERMINATED", Phase.TERMINATED),
        ("UNKNOWN", Phase.UNKNOWN),
        ("HIBERNATING", Phase.UNKNOWN),
    ],
)
async def test_friendli_status_rows(emu: Emulator, status: str, phase: Phase) -> None:
    emu.store("friendli").put("ep1", status=status)
    obs = ok((await poll(FriendliProvider(), [friendli(emu, "ep1")]))["ns/ep1"])
    assert obs.phase is phase
    assert obs.provider_status == status


async def test_friendli_initializing_phase_and_failed_error_code(emu: Emulator) -> None:
    emu.store("friendli").put("init", status="INITIALIZING", phase="DOWNLOADING_MODEL")
    emu.store("friendli").put("bad", status="FAILED", error_code="INFERENCE_ENGINE_MEMORY_ERROR")
    results = await poll(FriendliProvider(), [friendli(emu, "init"), friendli(emu, "bad")])
    assert ok(results["ns/init"]).provider_phase == "DOWNLOADING_MODEL"
    assert ok(results["ns/bad"]).error_code == "INFERENCE_ENGINE_MEMORY_ERROR"


async def test_friendli_workers_from_details_and_nulls(emu: Emulator) -> None:
    emu.store("friendli").put(
        "ep1", curr_replicas=2, desired_replicas=3, autoscaling_min=1, autoscaling_max=4
    )
    emu.store("friendli").put("ep2", curr_replicas=None, desired_replicas=None)
    provider = FriendliProvider()
    one = ok((await poll(provider, [friendli(emu, "ep1")]))["ns/ep1"])
    assert one.workers == Workers(ready=2, total=3, min=1, max=4)
    two = ok((await poll(provider, [friendli(emu, "ep2")]))["ns/ep2"])
    assert two.workers == Workers(ready=None, total=None, min=0, max=1)


async def test_friendli_team_header_scopes_the_endpoint(emu: Emulator) -> None:
    emu.store("friendli").put("ep1", team="team-a")
    provider = FriendliProvider()
    with_team = await poll(provider, [friendli(emu, "ep1", teamId="team-a")])
    assert ok(with_team["ns/ep1"]).phase is Phase.RUNNING
    without = await poll(provider, [friendli(emu, "ep1")])
    assert failed(without["ns/ep1"]).reason is ErrorReason.NOT_FOUND


async def test_friendli_wrong_token_is_unauthorized(emu: Emulator) -> None:
    emu.store("friendli").put("ep1")
    target = friendli(emu, "ep1")
    bad = Target(key=target.key, config=target.config, credential="wrong")
    err = failed((await poll(FriendliProvider(), [bad]))["ns/ep1"])
    assert err.reason is ErrorReason.UNAUTHORIZED
    assert TOKEN not in err.message


async def test_friendli_batch_pages_the_list_and_falls_back_for_the_missing(
    emu: Emulator,
) -> None:
    ids = emu.bulk("friendli", 150, prefix="bulk-", status="SLEEPING")
    first, last = ids[0], ids[-1]
    targets = [friendli(emu, first), friendli(emu, last), friendli(emu, "gone")]
    results = await poll(FriendliProvider(), targets)
    assert ok(results[f"ns/{first}"]).phase is Phase.SLEEPING
    assert ok(results[f"ns/{last}"]).phase is Phase.SLEEPING
    assert failed(results["ns/gone"]).reason is ErrorReason.NOT_FOUND
    prefix = "/friendli/dedicated/beta/endpoint"
    assert emu.requests("friendli", path=prefix) == 2
    assert emu.requests("friendli", path=f"{prefix}/gone/status") == 1
    assert emu.requests("friendli", path=f"{prefix}/{first}/status") == 0
    assert emu.requests("friendli", path=f"{prefix}/{first}") == 1


async def test_friendli_failing_list_falls_back(emu: Emulator) -> None:
    emu.store("friendli").put("a")
    emu.store("friendli").put("b", status="UPDATING")
    emu.fail("friendli", 503, times=1)
    results = await poll(FriendliProvider(), [friendli(emu, "a"), friendli(emu, "b")])
    assert ok(results["ns/a"]).phase is Phase.RUNNING
    assert ok(results["ns/b"]).phase is Phase.UPDATING


async def test_friendli_failing_details_keep_the_observation(emu: Emulator) -> None:
    emu.store("friendli").put("a")
    emu.store("friendli").put("b")
    # In batch mode the list answers the status, so this fault only hits b's details call.
    emu.garbage("friendli", "html", endpoint="b")
    results = await poll(FriendliProvider(), [friendli(emu, "a"), friendli(emu, "b")])
    assert ok(results["ns/a"]).workers is not None
    b = ok(results["ns/b"])
    assert b.phase is Phase.RUNNING
    assert b.workers is None


async def test_friendli_batch_skips_details_while_status_is_unchanged(emu: Emulator) -> None:
    emu.store("friendli").put("a")
    emu.store("friendli").put("b")
    provider = FriendliProvider()
    targets = [friendli(emu, "a"), friendli(emu, "b")]
    await poll(provider, targets)
    emu.store("friendli").patch("b", status="SLEEPING")
    emu.reset_requests()
    results = await poll(provider, targets)
    assert ok(results["ns/b"]).phase is Phase.SLEEPING
    assert emu.requests("friendli") == 2  # the list, and b's details
    assert emu.requests("friendli", "b") == 1


# --- RunPod ----------------------------------------------------------------------------------


def runpod(emu: Emulator, endpoint_id: str, api: str = "v2") -> Target[RunPodConfig]:
    url = emu.url("runpod_v2") if api == "v2" else emu.url("runpod_v1")
    config = RunPodConfig.model_validate(
        {"endpointId": endpoint_id, "api": api, "url": url, "credentialsSecretRef": REF}
    )
    return Target(key=f"ns/{endpoint_id}", config=config, credential=TOKEN)


@pytest.mark.parametrize(
    ("workers", "phase", "ready"),
    [
        (["RUNNING"], Phase.RUNNING, 1),
        (["IDLE", "IDLE"], Phase.RUNNING, 2),
        (["RUNNING", "UNHEALTHY"], Phase.DEGRADED, 1),
        ([], Phase.IDLE, 0),
        (["INITIALIZING"], Phase.PROVISIONING, 0),
        (["THROTTLED"], Phase.PROVISIONING, 0),
        (["UNHEALTHY", "UNHEALTHY"], Phase.FAILED, 0),
    ],
)
async def test_runpod_v2_rows(emu: Emulator, workers: list[str], phase: Phase, ready: int) -> None:
    emu.store("runpod").put("rp1", workers=workers, workers_min=0, workers_max=5)
    obs = ok((await poll(RunPodProvider(), [runpod(emu, "rp1")]))["ns/rp1"])
    assert obs.phase is phase
    assert obs.workers == Workers(ready=ready, total=len(workers), min=0, max=5)
    assert obs.provider_status.startswith("running=")
    if phase is Phase.FAILED:
        assert obs.error_code == "WorkersUnhealthy"


@pytest.mark.parametrize(
    ("workers", "phase", "ready"),
    [
        (["RUNNING", "IDLE"], Phase.RUNNING, 2),
        ([], Phase.IDLE, 0),
        # The emulator gives an unhealthy worker desiredStatus EXITED: going away, not coming up.
        (["UNHEALTHY"], Phase.IDLE, 0),
    ],
)
async def test_runpod_v1_rows(emu: Emulator, workers: list[str], phase: Phase, ready: int) -> None:
    emu.store("runpod").put("rp1", workers=workers, workers_min=1, workers_max=2)
    obs = ok((await poll(RunPodProvider(), [runpod(emu, "rp1", "v1")]))["ns/rp1"])
    assert obs.phase is phase
    assert obs.workers == Workers(ready=ready, total=len(workers), min=1, max=2)
    assert obs.provider_status == f"workers running={ready} total={len(workers)}"


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_runpod_unknown_endpoint_and_wrong_token(emu: Emulator, api: str) -> None:
    emu.store("runpod").put("rp1", workers=["RUNNING"])
    missing = failed((await poll(RunPodProvider(), [runpod(emu, "nope", api)]))["ns/nope"])
    assert missing.reason is ErrorReason.NOT_FOUND
    target = runpod(emu, "rp1", api)
    bad = Target(key=target.key, config=target.config, credential="wrong")
    assert failed((await poll(RunPodProvider(), [bad]))["ns/rp1"]).reason is (
        ErrorReason.UNAUTHORIZED
    )


async def test_runpod_v2_batch_request_count(emu: Emulator) -> None:
    for i in range(4):
        emu.store("runpod").put(f"rp{i}", workers=["RUNNING"])
    targets = [runpod(emu, f"rp{i}") for i in range(3)] + [runpod(emu, "gone")]
    results = await poll(RunPodProvider(), targets)
    assert all(ok(results[f"ns/rp{i}"]).phase is Phase.RUNNING for i in range(3))
    assert failed(results["ns/gone"]).reason is ErrorReason.NOT_FOUND
    # One list, a workers call per listed target, and one endpoint call for the missing one.
    assert emu.requests("runpod") == 1 + 3 + 1
    assert emu.requests("runpod", path="/runpod/v2/serverless") == 1


async def test_runpod_v1_batch_is_one_request(emu: Emulator) -> None:
    emu.store("runpod").put("rp0", workers=["RUNNING"])
    emu.store("runpod").put("rp1", workers=[])
    results = await poll(RunPodProvider(), [runpod(emu, "rp0", "v1"), runpod(emu, "rp1", "v1")])
    assert ok(results["ns/rp0"]).phase is Phase.RUNNING
    assert ok(results["ns/rp1"]).phase is Phase.IDLE
    assert emu.requests("runpod") == 1


async def test_runpod_v2_failing_list_falls_back(emu: Emulator) -> None:
    emu.store("runpod").put("rp0", workers=["RUNNING"])
    emu.store("runpod").put("rp1", workers=["INITIALIZING"])
    emu.fail("runpod", 500, times=1)
    results = await poll(RunPodProvider(), [runpod(emu, "rp0"), runpod(emu, "rp1")])
    assert ok(results["ns/rp0"]).phase is Phase.RUNNING
    assert ok(results["ns/rp1"]).phase is Phase.PROVISIONING
    assert emu.requests("runpod") == 1 + 2 * 2
