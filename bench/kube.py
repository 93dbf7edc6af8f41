"""API-server access for the benchmark: a synchronous httpx client with the kubeconfig's client
certificate (no kubectl), to install the CRDs, create namespaces, Secrets and thousands of
resources, and count statuses.

The operator's own client (inferenceops/kube/client.py) is async aiohttp built from kopf's login;
the benchmark drives the API server from plain threads (its watcher is one), so it keeps this one.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import ROOT
from inferenceops.api import GROUP, PLURAL, VERSION

#: The credential every provider account of the benchmark uses (the emulator accepts it).
TOKEN = "bench-token"
#: The Secret holding TOKEN in every namespace.
SECRET_NAME = "provider-token"
IE_PATH = f"/apis/{GROUP}/{VERSION}"
BENCH_UA = "inferenceops-bench"


def start_control_plane() -> Any:
    """A fresh local kube-apiserver + etcd (tests/controlplane/localcp.py), started."""
    sys.path.insert(0, str(ROOT / "tests" / "controlplane"))
    import localcp

    cp = localcp.LocalControlPlane(
        binaries=localcp.find_binaries(build_missing=False, need_helm=False),
        verbose=False,
        # v1.37's apiserver refuses a loopback --advertise-address with the default endpoint
        # reconciler (there are no Services to reconcile here anyway).
        extra_apiserver_args=["--endpoint-reconciler-type=none"],
    )
    cp.start()
    return cp


class Kube:
    """httpx against the API server with the kubeconfig's client certificate (no kubectl)."""

    def __init__(self, kubeconfig: str) -> None:
        import httpx
        import yaml

        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        self.server = cluster["server"]
        self._dir = tempfile.mkdtemp(prefix="inferenceops-bench-")
        files = {
            "ca.crt": cluster["certificate-authority-data"],
            "client.crt": user["client-certificate-data"],
            "client.key": user["client-key-data"],
        }
        for name, data in files.items():
            path = os.path.join(self._dir, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                f.write(base64.b64decode(data))
        self.verify = os.path.join(self._dir, "ca.crt")
        self.cert = (os.path.join(self._dir, "client.crt"), os.path.join(self._dir, "client.key"))
        self.http = httpx.Client(
            base_url=self.server,
            verify=self._ssl(),
            headers={"User-Agent": BENCH_UA},
            timeout=httpx.Timeout(60.0, connect=10.0),
        )

    def _ssl(self) -> Any:
        import ssl

        ctx = ssl.create_default_context(cafile=self.verify)
        ctx.load_cert_chain(*self.cert)
        return ctx

    def close(self) -> None:
        self.http.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code >= 300 and response.status_code != 409:
            raise RuntimeError(
                f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
            )
        return response.json() if response.content else None

    def apply_crd(self) -> None:
        import yaml

        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    self.request(
                        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=doc
                    )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            crd = self.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{PLURAL}.{GROUP}"
            )
            conds = {
                c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []
            }
            if conds.get("Established") == "True":
                # The discovery of a new CRD lags its Established condition a little.
                for _ in range(100):
                    if self.http.get(f"{IE_PATH}/{PLURAL}").status_code == 200:
                        return
                    time.sleep(0.1)
                return
            time.sleep(0.2)
        raise RuntimeError("the CRD did not become Established in 60 s")

    def namespaces_and_secrets(self, namespaces: Sequence[str]) -> None:
        for ns in namespaces:
            self.request("POST", "/api/v1/namespaces", json={"metadata": {"name": ns}})
            self.request(
                "POST",
                f"/api/v1/namespaces/{ns}/secrets",
                json={
                    "metadata": {"name": SECRET_NAME},
                    "type": "Opaque",
                    "stringData": {"token": TOKEN},
                },
            )

    def create_all(self, objects: Sequence[Mapping[str, Any]], concurrency: int = 32) -> float:
        """POST every object concurrently; returns seconds taken."""
        import httpx

        async def go() -> None:
            gate = asyncio.Semaphore(concurrency)
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(
                base_url=self.server,
                verify=self._ssl(),
                headers={"User-Agent": BENCH_UA},
                limits=limits,
                timeout=httpx.Timeout(120.0, connect=10.0),
            ) as client:

                async def one(obj: Mapping[str, Any]) -> None:
                    ns = obj["metadata"].get("namespace")
                    path = f"{IE_PATH}/namespaces/{ns}/{PLURAL}"
                    if obj["kind"] == "ClusterInferenceProvider":
                        path = f"{IE_PATH}/clusterinferenceproviders"
                    async with gate:
                        for attempt in range(5):
                            r = await client.post(path, json=obj)
                            if r.status_code in (201, 409):
                                return
                            if r.status_code in (429, 500, 503, 504) and attempt < 4:
                                await asyncio.sleep(0.5 * (attempt + 1))
                                continue
                            raise RuntimeError(
                                f"create {ns}/{obj['metadata']['name']}: {r.text[:300]}"
                            )

                await asyncio.gather(*(one(o) for o in objects))

        t0 = time.monotonic()
        asyncio.run(go())
        return time.monotonic() - t0

    def list_rv(self) -> str:
        return str(
            self.request("GET", f"{IE_PATH}/{PLURAL}?limit=1")["metadata"]["resourceVersion"]
        )

    def count_with_status(self) -> tuple[int, int]:
        """(objects, objects with .status.phase) by paged LIST."""
        total = with_status = 0
        token = None
        for _ in range(10_000):
            params = {"limit": "500", **({"continue": token} if token else {})}
            page = self.request("GET", f"{IE_PATH}/{PLURAL}", params=params)
            for item in page.get("items") or []:
                total += 1
                with_status += bool((item.get("status") or {}).get("phase"))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        return total, with_status
