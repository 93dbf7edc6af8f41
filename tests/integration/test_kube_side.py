"""The operator's Kubernetes side against a real API server that goes away: changes made while
it was down (through a second API server on the same etcd), with etcd compacted so the watches
must list again; and a cluster full of unrelated large Secrets.

Each test here has a control plane of its own: stopping the shared one would disturb the
operator the other integration tests run.
"""

from __future__ import annotations

import json
import secrets
import ssl
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from .conftest import (
    ROOT,
    TOKEN,
    EmulatorClient,
    OperatorProcess,
    condition,
    get_ie,
    wait_until,
)

sys.path.insert(0, str(ROOT / "tests" / "controlplane"))
import localcp

pytestmark = pytest.mark.skipif(
    localcp.use_existing_cluster(), reason="stops and starts its own API server"
)

NS = "kube-side"


@pytest.fixture
def plane() -> Iterator[localcp.LocalControlPlane]:
    with localcp.LocalControlPlane() as cp:
        cp.kubectl(
            "apply",
            "--server-side",
            "-f",
            str(ROOT / "crds/inferenceops.io_inferenceendpoints.yaml"),
        )
        cp.kubectl("wait", "--for=condition=Established", "crd/inferenceendpoints.inferenceops.io")
        cp.kubectl("create", "namespace", NS)
        yield cp


@pytest.fixture
def operator(plane: localcp.LocalControlPlane, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(plane.kubeconfig, tmp_path / "operator.log")
    yield op
    op.stop()
    assert "Traceback" not in op.log.read_text(), op.tail(80)


def _endpoint(name: str, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"pollInterval": "5s", **block},
    }


def _secret(name: str, value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "stringData": {"token": value},
    }


def _ready(cp: Any, name: str) -> bool:
    return condition(get_ie(cp, NS, name), "Ready").get("status") == "True"


def _apply(cp: Any, *objects: dict[str, Any], kubeconfig: str | None = None) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    args = ["--kubeconfig", kubeconfig] if kubeconfig else []
    cp.kubectl(*args, "apply", "-f", "-", input=body)


def test_changes_made_while_the_api_server_was_down_are_seen(
    plane: localcp.LocalControlPlane, operator: OperatorProcess, emulator: EmulatorClient
) -> None:
    base = emulator.base_url
    emulator.put("friendli", "ks-revoked", status="RUNNING", curr_replicas=1)
    for name in ("ks-deleted", "ks-created"):
        emulator.put("nsModelServer", name, stage="READY", progress=100)
    friendli = {
        "friendli": {
            "endpointId": "ks-revoked",
            "url": f"{base}/friendli",
            "credentialsSecretRef": {"name": "revoked", "key": "token"},
        }
    }
    _apply(
        plane,
        _secret("revoked", TOKEN),
        _endpoint("revoked", friendli),
        _endpoint("deleted", {"nsModelServer": {"url": f"{base}/ns/ks-deleted"}}),
    )
    for name in ("revoked", "deleted"):
        wait_until(f"{name} Ready", lambda n=name: _ready(plane, n), 60)

    # The operator's API server goes away; through another one on the same etcd a credential
    # is revoked by deleting its Secret, one endpoint is deleted and one created; then etcd's
    # history is compacted, so the operator's watches cannot resume and must list again.
    plane.stop_apiserver()
    with plane.other_apiserver() as other:
        plane.kubectl("--kubeconfig", other, "delete", "secret", "revoked", "-n", NS)
        plane.kubectl("--kubeconfig", other, "delete", "ie", "deleted", "-n", NS)
        _apply(
            plane,
            _endpoint("created", {"nsModelServer": {"url": f"{base}/ns/ks-created"}}),
            kubeconfig=other,
        )
    plane.compact_etcd()
    plane.start_apiserver()

    def revoked() -> bool:
        synced = condition(get_ie(plane, NS, "revoked"), "Synced")
        return synced.get("reason") == "SecretMissing"

    wait_until("the revoked credential noticed", revoked, 90)
    wait_until("the created endpoint polled", lambda: _ready(plane, "created"), 60)
    # Nothing is polled any more with the revoked credential, nor for the deleted endpoint.
    polls = emulator.requests(provider="friendli", endpoint="ks-revoked")
    gone = emulator.requests(provider="nsModelServer", endpoint="ks-deleted")
    created = emulator.requests(provider="nsModelServer", endpoint="ks-created")

    def two_more_intervals() -> bool:
        return emulator.requests(provider="nsModelServer", endpoint="ks-created") >= created + 2

    wait_until("two more intervals", two_more_intervals, 30)
    assert emulator.requests(provider="friendli", endpoint="ks-revoked") == polls
    assert emulator.requests(provider="nsModelServer", endpoint="ks-deleted") == gone


def _create_secrets(cp: localcp.LocalControlPlane, count: int, size: int) -> None:
    """`count` Secrets of `size` random bytes each, through the API (a TLS-heavy cluster)."""
    certs = Path(cp.tmpdir or "") / "certs"
    tls = ssl.create_default_context(cafile=certs / "ca.crt")
    tls.load_cert_chain(certs / "admin.crt", certs / "admin.key")
    with httpx.Client(base_url=cp.server, verify=tls, timeout=30) as client:

        def create(i: int) -> None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"unrelated-{i}", "namespace": NS},
                "type": "kubernetes.io/tls",
                "stringData": {"tls.crt": secrets.token_hex(size // 2), "tls.key": "k"},
            }
            response = client.post(f"/api/v1/namespaces/{NS}/secrets", json=body)
            assert response.status_code == 201, response.text

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(count)))


def _rss(op: OperatorProcess) -> float:
    return float(psutil.Process(op.proc.pid).memory_info().rss) / 2**20


def _peak_rss(op: OperatorProcess, seconds: float) -> float:
    peak, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, _rss(op))
        time.sleep(0.1)
    return peak


def test_unrelated_secrets_do_not_grow_memory(
    plane: localcp.LocalControlPlane, operator: OperatorProcess, tmp_path: Path
) -> None:
    before = _rss(operator)
    _create_secrets(plane, 1000, 50_000)  # 50 MB of Secret material nobody references
    grown = _peak_rss(operator, 5.0) - before  # the watch delivers them meanwhile
    print(f"\nRSS {before:.0f} MB, +{grown:.1f} MB with 1,000 unrelated 50 KB Secrets")
    # Held (decoded and kept) they cost +56 MB here; passed over, only their names remain.
    assert grown < 25, f"RSS grew by {grown:.0f} MB with 1,000 unrelated 50 KB Secrets"

    # A restart lists them all, 50 per page: what stays is small, and the pages in flight (2.5 MB
    # of JSON each) cost a passing peak. Held, they would add +56 MB to both.
    operator.stop()
    again = OperatorProcess(plane.kubeconfig, tmp_path / "operator-2.log")
    try:
        peak = _peak_rss(again, 5.0)
        settled = _rss(again)
        print(f"after a restart: RSS peak {peak:.0f} MB, then {settled:.0f} MB")
        assert settled - before < 35, f"RSS after a restart is {settled - before:.0f} MB higher"
        assert peak - before < 45, f"RSS after a restart peaked {peak - before:.0f} MB higher"
    finally:
        again.stop()
