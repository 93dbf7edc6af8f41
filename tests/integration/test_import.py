"""`inferenceops import` and the provider object's inventory (issue 25) against the emulator and
a real kube-apiserver: 250 remote endpoints over several pages, 5 already declared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferenceops_emulator.process import emulator_process

from .conftest import TOKEN, EmulatorClient, OperatorProcess, wait_until

API = "inferenceops.io/v1alpha1"
COUNT = 250
DECLARED = 5


def _import(
    control_plane: Any, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "INFERENCEOPS_TOKEN"}
    environment["KUBECONFIG"] = control_plane.kubeconfig
    return subprocess.run(
        [sys.executable, "-m", "inferenceops", "import", "--allow-insecure-http", *args],
        capture_output=True,
        text=True,
        env={**environment, **(env or {})},
        timeout=120,
    )


def _apply(control_plane: Any, text: str, *flags: str) -> Any:
    return control_plane.kubectl("apply", *flags, "-f", "-", input=text, timeout=300)


def _inventory(control_plane: Any, namespace: str) -> dict[str, Any]:
    out = control_plane.kubectl("get", "ipr", "acct", "-n", namespace, "-o", "json").stdout
    return dict((json.loads(out).get("status") or {}).get("inventory") or {})


def _account(emulator: EmulatorClient, namespace: str, team: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "InferenceProvider",
        "metadata": {"name": "acct", "namespace": namespace},
        "spec": {
            "friendli": {
                "url": f"{emulator.base_url}/friendli",
                "teamId": team,
                "credentialsSecretRef": {"name": "creds", "key": "token"},
            },
            "inventory": {"interval": "1m"},
        },
    }


def test_import_prints_what_is_not_declared_and_inventory_follows(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    # A team of its own: the emulator is shared with other tests, Friendli lists per team.
    team = f"team-{ns}"
    ids = emulator.bulk("friendli", COUNT, prefix=f"{ns}-", fields={"team": team})
    assert ids == COUNT
    remote = [f"{ns}-{n:06d}" for n in range(COUNT)]
    _apply(control_plane, yaml.safe_dump(_account(emulator, ns, team)))
    declared = [
        {
            "apiVersion": API,
            "kind": "InferenceEndpoint",
            "metadata": {"name": f"declared-{n}", "namespace": ns},
            "spec": {"providerRef": {"name": "acct"}, "friendli": {"endpointId": remote[n]}},
        }
        for n in range(DECLARED)
    ]
    _apply(control_plane, yaml.safe_dump_all(declared))

    done = _import(control_plane, "--provider-ref", "acct", "-n", ns)
    assert done.returncode == 0, done.stderr
    assert f"listed {COUNT} endpoints (3 pages)" in done.stderr
    print(f"\nfriendli: {COUNT} endpoints imported; stderr:\n{done.stderr}")
    assert TOKEN not in done.stdout + done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert len(docs) == COUNT - DECLARED
    printed = {d["spec"]["friendli"]["endpointId"] for d in docs}
    assert printed == set(remote[DECLARED:])
    _apply(control_plane, done.stdout, "--dry-run=server")

    def inventory_is(remote_count: int, unmanaged: int) -> bool:
        shown = _inventory(control_plane, ns)
        return (
            shown.get("remoteEndpoints") == remote_count
            and shown.get("unmanagedEndpoints") == unmanaged
        )

    wait_until("245 unmanaged", lambda: inventory_is(COUNT, COUNT - DECLARED), 60)
    shown = _inventory(control_plane, ns)
    assert shown["watchedEndpoints"] == DECLARED
    assert shown["unmanagedIds"] == remote[DECLARED : DECLARED + 20]

    # One deleted at the provider, the others declared from the import's output.
    gone = remote[-1]
    emulator.delete("friendli", gone)
    kept = [d for d in docs if d["spec"]["friendli"]["endpointId"] != gone]
    _apply(control_plane, yaml.safe_dump_all(kept))
    wait_until("every endpoint declared", lambda: inventory_is(COUNT, 1), 60)
    wait_until("the deleted one gone", lambda: inventory_is(COUNT - 1, 0), 120)
    control_plane.kubectl(
        "wait", "--for=condition=Ready", "ie", "--all", "-n", ns, "--timeout=180s", timeout=240
    )


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "Unreachable"), (401, "Unauthorized"), (429, "RateLimited")]
)
def test_a_listing_failing_midway_prints_nothing(
    control_plane: Any, crds: None, tmp_path: Path, status: int, reason: str
) -> None:
    # An emulator of its own: the fault must meet the import's second page, not a poll.
    with emulator_process(tmp_path / "emulator.log", token=TOKEN) as emu:
        emu.bulk("friendli", COUNT, prefix="ep-")
        emu.fail("friendli", status, after=1, times=1)
        account = _account(emu, "default", "unused")
        del account["spec"]["friendli"]["teamId"]
        path = tmp_path / "account.yaml"
        path.write_text(yaml.safe_dump(account))
        done = _import(control_plane, "-f", str(path), env={"INFERENCEOPS_TOKEN": TOKEN})
        assert done.returncode == 3
        assert done.stdout == ""
        assert f"listing failed after 100 endpoints: {reason}" in done.stderr
        assert TOKEN not in done.stderr

        emu.fail("friendli", status, after=1, times=1)
        partial = _import(
            control_plane, "-f", str(path), "--partial", env={"INFERENCEOPS_TOKEN": TOKEN}
        )
        assert partial.returncode == 3
        assert len([d for d in yaml.safe_load_all(partial.stdout) if d]) == 100


#: (provider, the provider object's block, bulk group, requests expected for 250 endpoints).
ACCOUNTS = {
    "friendli": ("friendli", {"url": "{base}/friendli"}, (), 3),
    "runpod-v2": ("runpod", {"url": "{base}/runpod/v2"}, (), 1),
    "runpod-v1": ("runpod", {"url": "{base}/runpod/v1", "api": "v1"}, (), 1),
    "dataarts": (
        "dataArtsFabric",
        {"url": "{base}/dataarts", "workspaceId": "ws-i"},
        ("ws-i",),
        3,
    ),
}


@pytest.mark.parametrize("case", list(ACCOUNTS))
def test_each_listing_provider_imports_250_endpoints_the_api_server_accepts(
    control_plane: Any, crds: None, tmp_path: Path, ns: str, case: str
) -> None:
    provider, block, group, expected = ACCOUNTS[case]
    with emulator_process(tmp_path / "emulator.log", token=TOKEN) as emu:
        prefix = "0b5633ba2b904511ad514346f4" if provider == "dataArtsFabric" else "ep-"
        emu.bulk(provider, COUNT, prefix=prefix, **({"workspace": group[0]} if group else {}))
        spec = {k: v.format(base=emu.base_url) for k, v in block.items()}
        account = {
            "apiVersion": API,
            "kind": "InferenceProvider",
            "metadata": {"name": "acct", "namespace": ns},
            "spec": {provider: {**spec, "credentialsSecretRef": {"name": "creds", "key": "t"}}},
        }
        path = tmp_path / "account.yaml"
        path.write_text(yaml.safe_dump(account))
        done = _import(control_plane, "-f", str(path), "-n", ns, env={"INFERENCEOPS_TOKEN": TOKEN})
        assert done.returncode == 0, done.stderr
        requests = emu.requests(provider)
    print(f"\n{case}: {COUNT} endpoints imported in {requests} provider requests")
    assert requests == expected
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert len(docs) == COUNT
    _apply(control_plane, done.stdout, "--dry-run=server")
