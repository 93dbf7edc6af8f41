"""The `inferenceops-emulator` command, the subprocess harness and the control client together,
as tests, the benchmark and the demo use them."""

from __future__ import annotations

import inspect
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from inferenceops.providers.registry import all_providers
from inferenceops_emulator import DEFAULT_PORT, EmulatorError, serve_forever
from inferenceops_emulator.cli import _parser
from inferenceops_emulator.process import emulator_process
from inferenceops_emulator.registry import EMULATIONS


def test_one_emulation_per_provider_under_its_spec_name() -> None:
    assert sorted(EMULATIONS) == sorted(p.name for p in all_providers())


def test_the_command_has_one_default_port_and_the_same_flags() -> None:
    """`inferenceops emulator` and `serve_forever()` once defaulted to 8400 and 8089."""
    assert inspect.signature(serve_forever).parameters["port"].default == DEFAULT_PORT == 8400
    args = _parser().parse_args([])
    assert (args.host, args.port, args.token, args.seed) == (
        "127.0.0.1",
        8400,
        "emulator-token",
        None,
    )


def test_python_dash_m_help_and_no_operator_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inferenceops_emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert all(flag in out.stdout for flag in ("--host", "--port", "--token", "--seed"))
    gone = subprocess.run(
        [sys.executable, "-m", "inferenceops", "emulator"], capture_output=True, timeout=60
    )
    assert gone.returncode == 2  # argparse: no such subcommand in the operator's CLI


def test_harness_and_client(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump({"dataArtsFabric": {"ws-1": {"ep-a": {"status": "CREATING"}}}}))
    log = tmp_path / "emulator.log"
    with emulator_process(log, token="t0", seed=seed) as emu:
        assert emu.pid is not None
        assert set(emu.info()["providers"]) == set(EMULATIONS)
        assert emu.ids("dataArtsFabric") == ["ws-1"] and emu.ids("dataArtsFabric", "ws-1") == [
            "ep-a"
        ]
        assert emu.put("nsModelServer", "n1", stage="LOADING_MODEL")["stage"] == "LOADING_MODEL"
        assert emu.patch("nsModelServer", "n1", progress=70)["progress"] == 70
        assert emu.get("dataArtsFabric", "ws-1", "ep-a")["status"] == "CREATING"
        assert emu.bulk("friendli", 3, prefix="f-", fields={"status": "SLEEPING"}) == 3
        assert emu.bulk("dataArtsFabric", 2, prefix="b-", workspace="ws-2") == 2
        with pytest.raises(EmulatorError) as err:
            emu.get("friendli", "missing")
        assert err.value.status == 404

        http = httpx.Client(base_url=emu.base_url, timeout=10)
        fault = emu.fail("nsModelServer", 503, endpoint="n1", times=1)
        assert [f["id"] for f in emu.list_faults()] == [fault]
        assert http.get("/ns/n1/status").status_code == 503
        assert http.get("/ns/n1/status").json()["data"]["progress"] == 70
        assert emu.requests("nsModelServer", "n1") == 2
        assert emu.requests(path="/ns/n1/status") == 2
        assert emu.request_summary()["providers"] == {"nsModelServer": 2}
        emu.reset_requests()
        assert emu.requests() == 0

        emu.set_token("friendli", "t1")
        bearer = {"Authorization": "Bearer t1"}
        assert http.get(
            "/friendli/dedicated/beta/endpoint/f-000000/status", headers=bearer
        ).is_success
        before = emu.changed_at("friendli", "f-000000")
        emu.lifecycle("dataArtsFabric", "ep-a", [(0, {"status": "RUNNING"})], workspace="ws-1")
        emu.lifecycle("friendli", "f-000000", [(0, None)])
        for _ in range(50):
            if not emu.active_lifecycles():
                break
            time.sleep(0.05)
        assert emu.get("dataArtsFabric", "ws-1", "ep-a")["status"] == "RUNNING"
        assert emu.changed_at("friendli", "f-000000") >= before
        assert "f-000000" not in emu.ids("friendli")
        emu.reset()
        assert emu.ids("friendli") == [] and emu.list_faults() == []
        http.close()
        pid = emu.pid
    with pytest.raises(httpx.ConnectError):
        # Stopped: nothing listens any more.
        httpx.get(f"{emu.base_url}/_emulator/", timeout=2)
    assert (
        pid is not None
        and subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0
    )
