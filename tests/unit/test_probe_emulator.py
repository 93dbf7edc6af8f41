"""`inferenceops probe` against the emulator (as a separate process), for every provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferenceops_emulator.process import emulator_process

TOKEN = "probe-emulator-token"
DA_ID = "0b5633ba2b904511ad514346f4d0pr01"

SEED = {
    "friendli": {
        "fr-1": {
            "status": "INITIALIZING",
            "phase": "DOWNLOADING_MODEL",
            "curr_replicas": 0,
            "desired_replicas": 1,
            "autoscaling_min": 0,
            "autoscaling_max": 2,
        }
    },
    "runpod": {
        "rp1": {"workers": ["RUNNING", "IDLE", "UNHEALTHY"], "workers_min": 1, "workers_max": 4}
    },
    "takeoff": {"tk": {"live": ["m"], "loading": ["m2"]}},
    "nsModelServer": {
        "ns": {
            "stage": "FAILED",
            "errors": [{"errorType": "INVALID_MODEL", "cause": "cannot load"}],
        }
    },
    "dataArtsFabric": {"ws-1": {DA_ID: {"status": "FROZEN", "warm_up_num": 1, "max_num": 3}}},
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("emulator")
    seed = work / "seed.yaml"
    seed.write_text(yaml.safe_dump(SEED))
    with emulator_process(work / "emulator.log", token=TOKEN, seed=seed) as emu:
        yield emu.base_url


def _probe(spec: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    manifest = {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": "p"},
        "spec": spec,
    }
    path = tmp_path / "ie.json"
    path.write_text(json.dumps(manifest))
    command = [sys.executable, "-m", "inferenceops", "probe", "-f", str(path), "-o", "json"]
    out = subprocess.run(
        [*command, "--allow-insecure-http"],  # the emulator is plain http
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "INFERENCEOPS_TOKEN": TOKEN},
    )
    assert out.returncode == 0, out.stderr
    assert TOKEN not in out.stdout + out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_friendli(emulator: str, tmp_path: Path) -> None:
    ref = {"name": "c", "key": "k"}
    got = _probe(
        {
            "friendli": {
                "endpointId": "fr-1",
                "url": f"{emulator}/friendli",
                "credentialsSecretRef": ref,
            }
        },
        tmp_path,
    )
    assert got == {
        "phase": "Provisioning",
        "providerStatus": "INITIALIZING",
        "providerPhase": "DOWNLOADING_MODEL",
        "workers": {"ready": 0, "total": 1, "min": 0, "max": 2},
    }


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_runpod(api: str, emulator: str, tmp_path: Path) -> None:
    got = _probe(
        {
            "runpod": {
                "endpointId": "rp1",
                "api": api,
                "url": f"{emulator}/runpod/{api}",
                "credentialsSecretRef": {"name": "c", "key": "k"},
            }
        },
        tmp_path,
    )
    if api == "v2":
        assert got["phase"] == "Degraded"
        assert got["workers"] == {"ready": 2, "total": 3, "min": 1, "max": 4}
    else:
        # v1 knows intent only: the unhealthy worker's desiredStatus is EXITED.
        assert got["phase"] == "Running"
        assert got["workers"] == {"ready": 2, "total": 3, "min": 1, "max": 4}


def test_takeoff(emulator: str, tmp_path: Path) -> None:
    got = _probe({"takeoff": {"url": f"{emulator}/takeoff/tk"}}, tmp_path)
    assert got == {
        "phase": "Running",
        "providerStatus": "live=1 loading=1 dead=0",
        "workers": {"ready": 1, "total": 2},
    }


def test_ns_model_server(emulator: str, tmp_path: Path) -> None:
    got = _probe({"nsModelServer": {"url": f"{emulator}/ns/ns"}}, tmp_path)
    assert got["phase"] == "Failed" and got["errorCode"] == "INVALID_MODEL"
    assert got["errorMessage"] == "cannot load"


def test_dataarts(emulator: str, tmp_path: Path) -> None:
    got = _probe(
        {
            "dataArtsFabric": {
                "url": f"{emulator}/dataarts",
                "workspaceId": "ws-1",
                "endpointId": DA_ID,
                "credentialsSecretRef": {"name": "c", "key": "k"},
            }
        },
        tmp_path,
    )
    assert got == {
        "phase": "Suspended",
        "providerStatus": "FROZEN",
        "workers": {"min": 1, "max": 3},
    }


def test_dataarts_with_an_access_key_pair(tmp_path: Path) -> None:
    """The pair comes from INFERENCEOPS_SECRET_<KEY>, one variable per Secret key."""
    ak, sk = "HPUAPROBEACCESSKEY01", "probeSecretKey0123456789abcdefghijklmnop"
    work = tmp_path / "emu"
    work.mkdir()
    seed = work / "seed.yaml"
    seed.write_text(yaml.safe_dump({"dataArtsFabric": SEED["dataArtsFabric"]}))
    with emulator_process(work / "emulator.log", token=TOKEN, seed=seed) as emu:
        emu.set_access_key("dataArtsFabric", ak, sk)
        manifest = tmp_path / "ie.json"
        spec = {
            "dataArtsFabric": {
                "url": f"{emu.base_url}/dataarts",
                "workspaceId": "ws-1",
                "endpointId": DA_ID,
                "accessKeySecretRef": {"name": "fabric-keys"},
            }
        }
        manifest.write_text(json.dumps({"kind": "InferenceEndpoint", "spec": spec}))
        env = {k: v for k, v in os.environ.items() if k != "INFERENCEOPS_TOKEN"}
        command = [sys.executable, "-m", "inferenceops", "probe", "-f", str(manifest), "-o", "json"]
        command.append("--allow-insecure-http")  # the emulator is plain http
        missing = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
        assert missing.returncode == 2
        assert "INFERENCEOPS_SECRET_ACCESSKEYID, INFERENCEOPS_SECRET_SECRETACCESSKEY" in (
            missing.stderr
        )
        env["INFERENCEOPS_SECRET_ACCESSKEYID"] = ak
        env["INFERENCEOPS_SECRET_SECRETACCESSKEY"] = sk
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["phase"] == "Suspended"
    assert sk not in out.stdout + out.stderr
