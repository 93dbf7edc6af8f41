"""The e2e suite's view of a kind cluster (`make e2e-kind`, on a machine with Docker).

It offers what tests/e2e uses of a LocalNode — kubectl, helm, the audit log, images, a
container's process, a pod's token file — through `docker exec` into kind's node container,
where the kubelet, containerd and the API server's audit log live. Our CI has no Docker engine,
so this path is not run there (docs/e2e.md says so).

The cluster must be made with tests/e2e/kind-config.yaml (audit log at level Metadata, kubelet
syncFrequency 10m); `make e2e-kind` does that.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import localcp
import localnode
import yaml

AUDIT_LOG = "/var/log/kubernetes/kube-apiserver-audit.log"


class KindNode:
    def __init__(self, cluster: str) -> None:
        self.container = f"{cluster}-control-plane"
        self.control_plane = localcp.ExistingCluster()
        self.host_ip = self._docker(
            "network", "inspect", "kind", "-f", "{{(index .IPAM.Config 0).Gateway}}"
        ).strip()
        config = yaml.safe_load(Path(self.control_plane.kubeconfig).read_text())
        cluster_entry = next(c["cluster"] for c in config["clusters"])
        fd, self.ca_file = tempfile.mkstemp(prefix="inferenceops-kind-ca-")
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64decode(cluster_entry["certificate-authority-data"]))

    def stop(self) -> None:
        Path(self.ca_file).unlink(missing_ok=True)

    # -- the cluster --------------------------------------------------------------------------

    def kubectl(self, *args: Any, **kw: Any) -> subprocess.CompletedProcess:
        return self.control_plane.kubectl(*args, **kw)

    def helm(self, *args: Any, **kw: Any) -> subprocess.CompletedProcess:
        return self.control_plane.helm(*args, **kw)

    def audit_events(self, **match: Any) -> list[dict[str, Any]]:
        events = []
        for line in self._exec("cat", AUDIT_LOG).splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if all(
                localcp._matches(localcp._dig(event, k.replace("__", ".")), v)
                for k, v in match.items()
            ):
                events.append(event)
        return events

    # -- the node -----------------------------------------------------------------------------

    def import_image(self, archive_path: str, name: str) -> str:
        ref = localnode.normalize_image(name)
        argv = [
            "docker",
            "exec",
            "-i",
            self.container,
            "ctr",
            "-n",
            "k8s.io",
            "images",
            "import",
            "-",
        ]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE)
        assert proc.stdin is not None
        try:
            localnode._copy_archive_naming(archive_path, ref, proc.stdin)
        finally:
            proc.stdin.close()
            proc.wait(timeout=600)
        if proc.returncode != 0:
            raise localnode.NodeError(f"importing {archive_path} into {self.container} failed")
        return ref

    def container_pid(self, namespace: str, pod: str, container: str) -> int:
        """The pid, in the node container's pid namespace, of a container's main process."""
        status = self._pod(namespace, pod)["status"]
        (cid,) = [
            s["containerID"].split("://", 1)[1]
            for s in status.get("containerStatuses", [])
            if s["name"] == container
        ]
        return int(json.loads(self._exec("crictl", "inspect", cid))["info"]["pid"])

    def pod_token_file(self, namespace: str, pod: str) -> str:
        uid = self._pod(namespace, pod)["metadata"]["uid"]
        volumes = f"/var/lib/kubelet/pods/{uid}/volumes/kubernetes.io~projected"
        return self._exec("sh", "-c", f"readlink -f {volumes}/kube-api-access-*/token").strip()

    def read_text(self, path: str) -> str:
        return self._exec("cat", path)

    def replace_file(self, path: str, text: str) -> None:
        script = 'cat > "$1.replacing" && chown --reference="$1" "$1.replacing" && '
        script += 'chmod --reference="$1" "$1.replacing" && mv "$1.replacing" "$1"'
        self._exec("sh", "-c", script, "-", path, input=text)

    def run_in_container(self, pid: int, argv: list[str], timeout: float = 30) -> Any:
        cmd = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *argv]
        return subprocess.run(
            ["docker", "exec", self.container, *cmd],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def logs_tail(self, n: int = 30) -> str:
        return self._docker("logs", "--tail", str(n), self.container)

    # -- plumbing -----------------------------------------------------------------------------

    def _pod(self, namespace: str, pod: str) -> dict[str, Any]:
        out = self.kubectl("get", "pod", pod, "-n", namespace, "-o", "json").stdout
        return json.loads(out)  # type: ignore[no-any-return]

    def _exec(self, *argv: str, input: str | None = None) -> str:
        return self._docker("exec", "-i", self.container, *argv, input=input)

    def _docker(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run(
            ["docker", *args], input=input, capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            raise localnode.NodeError(f"docker {' '.join(args[:3])}: {proc.stderr.strip()}")
        return proc.stdout
