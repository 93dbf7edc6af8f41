"""GitOps hygiene against the real API server: what Argo CD and Flux would see."""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from tests.gitops.kstatus import kstatus_verdict

from .conftest import EmulatorClient, OperatorProcess, get_ie, wait_until
from .test_operator import wait_phase

MANAGER = "argocd-controller"


def ssa(control_plane: Any, ns: str, annotations: dict[str, str] | None, url: str) -> None:
    """Apply as a GitOps tool does: server-side, under its own field manager."""
    meta: dict[str, Any] = {"name": "gitops", "namespace": ns}
    if annotations:
        meta["annotations"] = annotations
    manifest = {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": meta,
        "spec": {"pollInterval": "10m", "nsModelServer": {"url": url}},
    }
    control_plane.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={MANAGER}",
        "-f",
        "-",
        input=yaml.safe_dump(manifest),
    )


def test_operator_owns_nothing_but_status(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    url = f"{emulator.base_url}/ns/ns-gitops"
    emulator.put("nsModelServer", "ns-gitops", stage="LOADING_MODEL", progress=20)
    ssa(control_plane, ns, None, url)
    fresh = get_ie(control_plane, ns, "gitops")
    if "phase" not in (fresh.get("status") or {}):
        # As the API server serves it before the first write (the CRD's status default).
        assert kstatus_verdict(fresh).status == "InProgress"
    obj = wait_phase(control_plane, ns, "gitops", "Provisioning")
    assert kstatus_verdict(obj).status == "InProgress"
    emulator.put("nsModelServer", "ns-gitops", stage="READY", progress=100)
    control_plane.kubectl(
        "annotate",
        "ie",
        "gitops",
        "-n",
        ns,
        "--overwrite",
        "inferenceops.io/reconcile-requested-at=go",
    )
    obj = wait_phase(control_plane, ns, "gitops", "Running")
    assert kstatus_verdict(obj).status == "Current"
    emulator.put(
        "nsModelServer",
        "ns-gitops",
        stage="FAILED",
        errors=[{"errorType": "OOM", "cause": "out of memory"}],
    )
    control_plane.kubectl(
        "annotate",
        "ie",
        "gitops",
        "-n",
        ns,
        "--overwrite",
        "inferenceops.io/reconcile-requested-at=go-2",
    )
    obj = wait_phase(control_plane, ns, "gitops", "Failed")
    verdict = kstatus_verdict(obj)
    assert verdict.status == "Failed" and "OOM" in verdict.message

    out = control_plane.kubectl(
        "get", "ie", "gitops", "-n", ns, "-o", "json", "--show-managed-fields"
    )
    managed = json.loads(out.stdout)["metadata"]["managedFields"]
    assert {e["manager"] for e in managed} > {MANAGER}, "the operator's write is recorded"
    for entry in managed:
        if entry["manager"] == MANAGER:
            continue
        fields = entry.get("fieldsV1", {})
        if entry.get("subresource") == "status":
            assert set(fields) <= {"f:status"}, entry
        else:
            # kubectl annotate (this test, standing in for a user) may own its annotation;
            # the operator itself must own nothing outside status.
            assert entry["manager"].startswith("kubectl"), entry
    assert not obj["metadata"].get("finalizers")
    assert [a for a in obj["metadata"].get("annotations", {}) if "kopf" in a] == []


def test_reapplied_reconcile_annotation_polls_exactly_once(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    url = f"{emulator.base_url}/ns/ns-gitops-rec"
    emulator.put("nsModelServer", "ns-gitops-rec", stage="READY", progress=100)
    ssa(control_plane, ns, None, url)
    wait_phase(control_plane, ns, "gitops", "Running")
    time.sleep(1)
    before = emulator.requests(provider="nsModelServer", endpoint="ns-gitops-rec")
    ssa(control_plane, ns, {"inferenceops.io/reconcile-requested-at": "commit-abc123"}, url)
    wait_until(
        "lastHandledReconcileAt",
        lambda: (
            get_ie(control_plane, ns, "gitops")["status"].get("lastHandledReconcileAt")
            == "commit-abc123"
        ),
        10,
    )
    time.sleep(3)
    assert emulator.requests(provider="nsModelServer", endpoint="ns-gitops-rec") - before == 1
    # Re-applying the same value (a GitOps resync) asks for nothing.
    ssa(control_plane, ns, {"inferenceops.io/reconcile-requested-at": "commit-abc123"}, url)
    time.sleep(3)
    assert emulator.requests(provider="nsModelServer", endpoint="ns-gitops-rec") - before == 1
    obj = get_ie(control_plane, ns, "gitops")
    assert json.dumps(obj["spec"]) == json.dumps(
        {"nsModelServer": {"url": url}, "pollInterval": "10m"}
    ), "spec untouched"
