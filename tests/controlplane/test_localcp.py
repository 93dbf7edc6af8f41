"""Integration test of the local control plane: CRD + CEL, status subresource, audit log."""

from __future__ import annotations

import json
import os
import time
import uuid

import localcp
import pytest

# `control_plane` comes from tests/conftest.py:
#     from tests.controlplane.fixtures import control_plane

pytestmark = pytest.mark.integration

GROUP = "localcp.test.inferenceops.io"
CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {{type: integer}}
            x-kubernetes-validations:
            - rule: "self.replicas <= 10"
              message: "replicas must be at most 10"
          status:
            type: object
            properties:
              phase: {{type: string}}
"""


def widget(name: str, ns: str, replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas},
        }
    )


def test_crd_cel_status_and_audit(control_plane):
    cp = control_plane
    ns = f"localcp-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", ns)
    cp.kubectl("apply", "-f", "-", input=CRD)
    cp.kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=60s")

    # The CEL rule rejects a bad object with its message.
    bad = cp.kubectl("apply", "-f", "-", input=widget("bad", ns, 11), check=False)
    assert bad.returncode != 0
    assert "replicas must be at most 10" in bad.stderr, bad.stderr

    cp.kubectl("apply", "-f", "-", input=widget("good", ns, 3))

    # Write status through the status subresource.
    cp.kubectl(
        "patch",
        f"widgets.{GROUP}",
        "good",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Ready"}}),
    )
    got = json.loads(cp.kubectl("get", f"widgets.{GROUP}", "good", "-n", ns, "-o", "json").stdout)
    assert got["status"]["phase"] == "Ready"
    # ...and the main resource ignores status changes.
    cp.kubectl(
        "patch",
        f"widgets.{GROUP}",
        "good",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Ignored"}}),
    )
    got = json.loads(cp.kubectl("get", f"widgets.{GROUP}", "good", "-n", ns, "-o", "json").stdout)
    assert got["status"]["phase"] == "Ready"

    if cp.audit_log is None:
        pytest.skip("USE_EXISTING_CLUSTER: no audit log")
    # The status write is in the audit log (one event per request: RequestReceived is omitted).
    deadline = time.monotonic() + 10
    while True:
        writes = cp.audit_events(
            verb=("patch", "update"),
            objectRef__resource="widgets",
            objectRef__subresource="status",
            objectRef__namespace=ns,
            objectRef__name="good",
        )
        if writes or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(writes) == 1, writes
    assert writes[0]["stage"] == "ResponseComplete"
    assert writes[0]["responseStatus"]["code"] == 200
    assert writes[0]["user"]["username"] == "admin"


def test_stop_leaves_no_process():
    if localcp.use_existing_cluster():
        pytest.skip("USE_EXISTING_CLUSTER: no local processes")
    with localcp.LocalControlPlane() as cp:
        pids = cp.pids
        tmpdir = cp.tmpdir
        assert set(pids) == {"etcd", "kube-apiserver"}
        assert (
            cp.kubectl("get", "namespace", "default", "-o", "name").stdout.strip()
            == "namespace/default"
        )
        version = json.loads(cp.kubectl("version", "-o", "json").stdout)
        # build.sh stamps the version in; unstamped builds say v0.0.0 (breaks helm's kubeVersion).
        assert version["serverVersion"]["gitVersion"].startswith("v1."), version
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not tmpdir.exists()
