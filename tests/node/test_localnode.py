"""Smoke test of the local node: Ready, workloads, service-account tokens, the pod network's
rules, `kubectl logs/exec`, and a teardown that leaves the machine as it was.

Needs root and tests/node/install.sh's packages; run with `-m e2e`.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import textwrap
from pathlib import Path

import localnode  # tests/node is on sys.path (pytest's rootdir-less import of this file)
import pytest
from tests.node import fixtures
from tests.node.fixtures import local_node  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.e2e

NS = "node-smoke"
PAUSE = localnode.PAUSE_IMAGE


def _json(node: localnode.LocalNode, *args: str) -> dict:
    return json.loads(node.kubectl(*args, "-o", "json").stdout)


def _apply(node: localnode.LocalNode, manifest: str) -> None:
    node.kubectl("apply", "-f", "-", input=textwrap.dedent(manifest))


def _drop_count(node: localnode.LocalNode) -> int:
    """Packets the FORWARD rule dropped (first rule: from the bridge to another interface)."""
    out = localnode._run(
        node.iptables, "-w", "5", "-L", localnode.FWD_CHAIN, "-v", "-x", "-n"
    ).stdout.splitlines()
    return int(out[2].split()[0])


def _run_pod(node: localnode.LocalNode, name: str, image: str, pull_policy: str) -> None:
    """A one-container pod in NS, waited for until Ready."""
    _apply(
        node,
        f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: {NS}}}
        spec:
          containers:
          - {{name: c, image: "{image}", imagePullPolicy: {pull_policy}}}
        """,
    )
    node.kubectl("wait", "-n", NS, "--for=condition=Ready", f"pod/{name}", "--timeout=60s")


@pytest.fixture(scope="session")
def node(local_node: localnode.LocalNode) -> localnode.LocalNode:  # noqa: F811
    return local_node


# Runs first, before the session node exists: it starts and stops a node of its own.
def test_start_and_stop_leave_the_machine_as_it_was() -> None:
    if fixtures.running() is not None:
        pytest.skip("the session node is running; run tests/node alone to check the teardown")
    before = localnode.host_state()
    node = localnode.LocalNode()
    with node:
        assert localnode.host_state() != before  # it did change things
        tmpdir = node.tmpdir
    after = localnode.host_state()
    assert after == before
    assert all(was == now for was, now in node.restored_sysctls().values())
    assert tmpdir is not None and not tmpdir.exists()
    stopped = node.timings["stop"]
    print(f"\nstart {node.timings['start']:.1f} s ({node.timings}), stop {stopped:.1f} s")


@pytest.fixture(scope="module")
def pause_pod(node: localnode.LocalNode) -> str:
    node.kubectl("create", "namespace", NS)
    _run_pod(node, "pause", PAUSE, "Never")
    return "pause"


def test_node_is_ready(node: localnode.LocalNode) -> None:
    status = _json(node, "get", "node", localnode.NODE_NAME)["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    addresses = {a["type"]: a["address"] for a in status["addresses"]}
    assert addresses["InternalIP"] == node.host_ip


def test_deployment_becomes_available_and_is_garbage_collected(
    node: localnode.LocalNode,
) -> None:
    _apply(
        node,
        f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: pause, namespace: default}}
        spec:
          replicas: 2
          selector: {{matchLabels: {{app: pause}}}}
          template:
            metadata: {{labels: {{app: pause}}}}
            spec:
              containers:
              - {{name: pause, image: "{PAUSE}", imagePullPolicy: Never}}
        """,
    )
    node.kubectl("wait", "--for=condition=Available", "deployment/pause", "--timeout=90s")
    pods = _json(node, "get", "pods", "-l", "app=pause")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert ipaddress.ip_address(pod["status"]["podIP"]) in node.subnet
    # Garbage collection: the ReplicaSet and its pods go with the Deployment.
    node.kubectl("delete", "deployment", "pause", "--cascade=foreground", "--timeout=60s")
    node.kubectl("wait", "--for=delete", "pod", "-l", "app=pause", "--timeout=60s")


def test_statefulset_pods_get_their_index_label(node: localnode.LocalNode) -> None:
    _apply(
        node,
        f"""
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {{name: indexed, namespace: default}}
        spec:
          replicas: 1
          serviceName: indexed
          selector: {{matchLabels: {{app: indexed}}}}
          template:
            metadata: {{labels: {{app: indexed}}}}
            spec:
              containers:
              - {{name: pause, image: "{PAUSE}", imagePullPolicy: Never}}
        """,
    )
    node.kubectl("wait", "--for=condition=Ready", "pod/indexed-0", "--timeout=60s")
    labels = _json(node, "get", "pod", "indexed-0")["metadata"]["labels"]
    assert labels["apps.kubernetes.io/pod-index"] == "0"
    node.kubectl("delete", "statefulset", "indexed", "--wait=false")


def test_pod_has_a_projected_service_account_token(
    node: localnode.LocalNode,
    pause_pod: str,
) -> None:
    projected = node.pod_dir(NS, pause_pod) / "volumes" / "kubernetes.io~projected"
    (volume,) = projected.glob("kube-api-access-*")
    assert (volume / "token").read_text().count(".") == 2  # a JWT
    assert (volume / "ca.crt").read_text() == Path(node.ca_file).read_text()
    assert (volume / "namespace").read_text() == NS


def test_kubernetes_service_is_reachable_from_a_pod(
    node: localnode.LocalNode,
    pause_pod: str,
) -> None:
    pid = node.container_pid(NS, pause_pod, "c")
    env = dict(
        kv.split("=", 1) for kv in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in kv
    )
    assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("10.0.0.1", "443")
    probe = (
        "import ssl, urllib.request as u;"
        "c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE;"
        "print(u.urlopen('https://10.0.0.1:443/healthz', timeout=5, context=c).read().decode())"
    )
    result = node.run_in_netns(pid, [sys.executable, "-c", probe], timeout=20)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result


def test_traffic_leaving_the_machine_is_dropped(
    node: localnode.LocalNode,
    pause_pod: str,
) -> None:
    pid = node.container_pid(NS, pause_pod, "c")
    dropped = _drop_count(node)
    # One connection attempt to the VM's gateway (a closed port): a timeout of 0.9 s stays under
    # TCP's initial 1 s retransmission timeout, so exactly one SYN is sent, and our FORWARD rule
    # must drop it (the gateway would answer a SYN that reached it with a RST).
    probe = (
        "import socket; s = socket.socket(); s.settimeout(0.9)\n"
        "try:\n    s.connect(('192.0.2.1', 9)); print('connected')\n"
        "except TimeoutError: print('timeout')\n"
        "except OSError as e: print(type(e).__name__)"
    )
    result = node.run_in_netns(pid, [sys.executable, "-c", probe], timeout=10)
    assert result.stdout.strip() == "timeout", result
    assert _drop_count(node) == dropped + 1
    # And nothing rewrites pod addresses on the way out: no masquerading anywhere.
    for cmd in localnode._iptables_commands(("iptables", "ip6tables")):
        assert "MASQUERADE" not in localnode._iptables_save(cmd), cmd


def test_kubectl_logs_and_exec_go_through_the_kubelet(
    node: localnode.LocalNode,
    pause_pod: str,
) -> None:
    out = node.kubectl("exec", "-n", NS, pause_pod, "--", "/catatonit", "-V").stdout
    assert "catatonit" in out
    # The same without the kubelet: nsenter into the container's namespaces and filesystem.
    pid = node.container_pid(NS, pause_pod, "c")
    inside = node.run_in_container(pid, ["/catatonit", "-V"])
    assert inside.returncode == 0 and "catatonit" in inside.stdout + inside.stderr, inside
    _apply(
        node,
        f"""
        apiVersion: v1
        kind: Pod
        metadata: {{name: version, namespace: {NS}}}
        spec:
          restartPolicy: Never
          containers:
          - {{name: v, image: "{PAUSE}", imagePullPolicy: Never, command: [/catatonit, -V]}}
        """,
    )
    node.kubectl(
        "wait", "-n", NS, "--for=jsonpath={.status.phase}=Succeeded", "pod/version", "--timeout=60s"
    )
    assert "catatonit" in node.kubectl("logs", "-n", NS, "version").stdout


def test_imported_archive_runs_under_its_short_name(
    node: localnode.LocalNode, tmp_path: Path
) -> None:
    # An archive whose only ref name is a bare tag, as `skopeo copy ... oci-archive:F:TAG` writes.
    archive = tmp_path / "image.tar"
    localnode._run(
        "skopeo",
        "copy",
        "-q",
        f"oci-archive:{localnode.pause_archive()}",
        f"oci-archive:{archive}:9",
    )
    assert node.import_image(str(archive), "smoke-import:1") == "docker.io/library/smoke-import:1"
    _run_pod(node, "imported", "smoke-import:1", "IfNotPresent")
