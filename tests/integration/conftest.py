"""The emulator and the operator as subprocesses (their harnesses: inferenceops_emulator.process
and tests/processes.py), wired to the local control plane."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inferenceops_emulator import EmulatorClient
from inferenceops_emulator.process import emulator_process, free_port, wait_until
from tests.processes import OperatorProcess

__all__ = ["TOKEN", "VAULT", "EmulatorClient", "OperatorProcess", "free_port", "wait_until"]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "emulator-token-integration"
#: The one namespace (besides `default`) where the session operator lets ClusterInferenceProviders
#: read Secrets (--cluster-secret-namespace): any other makes them SecretNamespaceNotAllowed.
VAULT = "it-vault"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorClient]:
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with emulator_process(log, token=TOKEN) as client:
        yield client


@pytest.fixture(scope="session")
def crds(control_plane: Any) -> None:
    for plural in ("inferenceendpoints", "inferenceproviders", "clusterinferenceproviders"):
        control_plane.kubectl(
            "apply", "--server-side", "-f", str(ROOT / "crds" / f"inferenceops.io_{plural}.yaml")
        )
        control_plane.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", f"crd/{plural}.inferenceops.io"
        )


@pytest.fixture(scope="session")
def operator(
    control_plane: Any, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    control_plane.kubectl("create", "namespace", VAULT, check=False)  # exists on a re-run
    op = OperatorProcess(
        control_plane.kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        ["--cluster-secret-namespace=default", f"--cluster-secret-namespace={VAULT}"],
    )
    yield op
    code = op.stop()
    assert "Traceback" not in op.log.read_text(), op.tail(80)
    assert code in (0, -signal.SIGTERM), f"operator exited with {code}"


def get_ie(control_plane: Any, namespace: str, name: str) -> dict[str, Any]:
    out = control_plane.kubectl("get", "ie", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


_namespaces = iter(range(1, 10_000))


@pytest.fixture
def ns(control_plane: Any) -> Iterator[str]:
    """A namespace per test with the credentials Secret; its endpoints are deleted afterwards
    (the bare API server runs no namespace controller to do it)."""
    name = f"it-{next(_namespaces)}-{int(time.time()) % 100000}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.kubectl(
        "create", "secret", "generic", "creds", "-n", name, f"--from-literal=token={TOKEN}"
    )
    yield name
    control_plane.kubectl("delete", "ie", "--all", "-n", name, "--wait=false", check=False)
