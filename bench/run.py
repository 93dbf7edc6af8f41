"""The scale benchmark (issue 6): the real operator against a local kube-apiserver + etcd and the
provider emulator, at N = 100, 1,000, 10,000 InferenceEndpoints.

    .venv/bin/python bench/run.py [--sizes 100,1000,10000] [--intervals 30s[,60s]] [--repeats N]
                                  [--mix dataarts=30,friendli=25,runpod-v1=20,runpod-v2=5,...]

Per case (one N, one interval, one repeat) it starts a fresh control plane, resets the emulator,
creates the resources, starts the operator and measures: time to every resource having a status,
provider requests / API writes / CPU per steady cycle, RSS, freshness after K real changes and
writes per change; then stops the operator and runs the floor (bench/floor.py) over the same
requests. Prints one table of medians and writes bench/results/<timestamp>.json. Method and how
to read the table: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.processes import OperatorProcess  # noqa: E402

from bench import floor  # noqa: E402
from inferenceops_emulator import EmulatorClient  # noqa: E402
from inferenceops_emulator.process import emulator_process, wait_until  # noqa: E402

VENV_BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench-token"
GROUP, VERSION, PLURAL = "inferenceops.io", "v1alpha1", "inferenceendpoints"
IE_PATH = f"/apis/{GROUP}/{VERSION}"
BENCH_UA = "inferenceops-bench"
SECRET_NAME = "provider-token"

#: Targets at N = 10,000, pollInterval 30 s (issue 6).
TARGETS = {
    "steady_writes_per_cycle": 0,
    "writes_per_change": 1,
    "list_requests_ratio": 0.05,
    "cpu_ratio": 1.5,
    "rss_mb": 250,
    "freshness_p99_extra_s": 2.0,
    "first_status_intervals": 2.0,
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_duration(text: str) -> float:
    text = text.strip()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# --- resources ------------------------------------------------------------------------------


#: --provider-objects: one ClusterInferenceProvider per kind, shared by every endpoint of it.
PROVIDER_OBJECTS = {kind: f"bench-{kind}" for kind in floor.KINDS}


def provider_objects(base: str, secret_namespace: str) -> list[dict[str, Any]]:
    """The handful of ClusterInferenceProviders every endpoint uses with --provider-objects:
    what the endpoints' blocks share (URL, API version, credentials); team and workspace stay
    on the endpoints (allowed as overrides), so the operator's accounts are the same as with
    inline blocks."""
    ref = {"credentialsSecretRef": {"name": SECRET_NAME, "key": "token"}}
    blocks: dict[str, dict[str, Any]] = {
        "dataarts": {
            "dataArtsFabric": {"url": f"{base}/dataarts", **ref},
            "allowedOverrides": {"workspaceId": ["*"]},
        },
        "friendli": {
            "friendli": {"url": f"{base}/friendli", **ref},
            "allowedOverrides": {"teamId": ["*"]},
        },
        "runpod-v1": {"runpod": {"api": "v1", "url": f"{base}/runpod/v1", **ref}},
        "runpod-v2": {"runpod": {"api": "v2", "url": f"{base}/runpod/v2", **ref}},
        "takeoff": {"takeoff": {}},
        "ns": {"nsModelServer": {}},
    }
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ClusterInferenceProvider",
            "metadata": {"name": PROVIDER_OBJECTS[kind]},
            "spec": {"secretNamespace": secret_namespace, **blocks[kind]},
        }
        for kind in floor.KINDS
    ]


def spec_via_provider(ep: floor.Endpoint, base: str, interval: str) -> dict[str, Any]:
    """The endpoint's spec with --provider-objects: a providerRef and what is its own."""
    inline = spec_of(ep, base, interval)
    block_name = next(k for k in inline if k != "pollInterval")
    block = dict(inline[block_name])
    block.pop("credentialsSecretRef", None)
    if ep.kind not in ("takeoff", "ns"):
        block.pop("url", None)  # the provider object's: it holds the credentials
        block.pop("api", None)
    return {
        "pollInterval": interval,
        "providerRef": {"kind": "ClusterInferenceProvider", "name": PROVIDER_OBJECTS[ep.kind]},
        block_name: block,
    }


def spec_of(ep: floor.Endpoint, base: str, interval: str) -> dict[str, Any]:
    ref = {"name": SECRET_NAME, "key": "token"}
    if ep.kind == "dataarts":
        block: dict[str, Any] = {
            "dataArtsFabric": {
                "url": f"{base}/dataarts",
                "workspaceId": ep.account,
                "endpointId": ep.key,
                "credentialsSecretRef": ref,
            }
        }
    elif ep.kind == "friendli":
        block = {
            "friendli": {
                "endpointId": ep.key,
                "teamId": ep.account,
                "url": f"{base}/friendli",
                "credentialsSecretRef": ref,
            }
        }
    elif ep.kind in ("runpod-v1", "runpod-v2"):
        api = ep.kind.split("-")[1]
        block = {
            "runpod": {
                "endpointId": ep.key,
                "api": api,
                "url": f"{base}/runpod/{api}",
                "credentialsSecretRef": ref,
            }
        }
    elif ep.kind == "takeoff":
        block = {"takeoff": {"url": f"{base}/takeoff/{ep.key}"}}
    else:
        block = {"nsModelServer": {"url": f"{base}/ns/{ep.key}"}}
    return {"pollInterval": interval, **block}


def manifest(
    ep: floor.Endpoint, base: str, interval: str, *, via_provider: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceEndpoint",
        "metadata": {"name": ep.name, "namespace": ep.namespace},
        "spec": (spec_via_provider if via_provider else spec_of)(ep, base, interval),
    }


#: How K changed endpoints are changed (RUNNING -> something else), per kind.
def change_of(ep: floor.Endpoint) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The endpoint's key in the emulator and the fields to patch."""
    if ep.kind == "dataarts":
        return (ep.account, ep.key), {"status": "UPDATING"}
    if ep.kind == "friendli":
        return (ep.key,), {"status": "UPDATING"}
    if ep.kind in ("runpod-v1", "runpod-v2"):
        return (ep.key,), {"workers": []}  # -> Idle
    if ep.kind == "takeoff":
        return (ep.key,), {"live": [], "loading": ["llama-3-8b"]}  # -> Provisioning
    return (ep.key,), {"stage": "LOADING_MODEL", "progress": 40}  # -> Provisioning


def pick_changes(layout: Sequence[floor.Endpoint], k: int) -> list[floor.Endpoint]:
    """K endpoints spread over the kinds in proportion, evenly spaced within each kind."""
    by_kind: dict[str, list[floor.Endpoint]] = {}
    for ep in layout:
        by_kind.setdefault(ep.kind, []).append(ep)
    k = min(k, len(layout))
    counts = floor.split(k, {kind: float(len(eps)) for kind, eps in by_kind.items()})
    chosen: list[floor.Endpoint] = []
    for kind, eps in by_kind.items():
        m = counts.get(kind, 0)
        chosen += [eps[(i * len(eps)) // m] for i in range(m)] if m else []
    return chosen


# --- the API server -------------------------------------------------------------------------


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


class Watcher(threading.Thread):
    """Watches every InferenceEndpoint from a resourceVersion; records, per object, when it first
    had a status and every phase change, by the wall clock of this process (as the emulator's
    changed_at is)."""

    def __init__(self, kube: Kube, resource_version: str) -> None:
        super().__init__(name="ie-watch", daemon=True)
        self.kube = kube
        self.rv = resource_version
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.first_status: dict[str, float] = {}
        self.phase: dict[str, str | None] = {}
        self.changes: list[tuple[float, str, str | None, str | None]] = []
        self.events = 0
        self.errors: list[str] = []

    def run(self) -> None:
        import httpx

        with httpx.Client(
            base_url=self.kube.server,
            verify=self.kube._ssl(),
            headers={"User-Agent": BENCH_UA + "-watch"},
            timeout=httpx.Timeout(connect=10.0, read=2.0, write=10.0, pool=10.0),
        ) as client:
            while not self.stopping.is_set():
                params = {
                    "watch": "1",
                    "resourceVersion": self.rv,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "300",
                }
                try:
                    with client.stream("GET", f"{IE_PATH}/{PLURAL}", params=params) as r:
                        if r.status_code != 200:
                            self.errors.append(f"watch HTTP {r.status_code}")
                            time.sleep(0.5)
                            continue
                        for line in r.iter_lines():
                            if self.stopping.is_set():
                                return
                            if line:
                                self._event(json.loads(line))
                except httpx.ReadTimeout:
                    continue  # quiet for 2 s: check `stopping`, re-watch from the last RV
                except httpx.HTTPError as err:
                    self.errors.append(repr(err))
                    time.sleep(0.5)

    def _event(self, event: Mapping[str, Any]) -> None:
        now = time.time()
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if meta.get("resourceVersion"):
            self.rv = meta["resourceVersion"]
        if event.get("type") == "ERROR":
            self.errors.append(str(obj)[:200])
            if obj.get("code") == 410:
                self.rv = self.kube.list_rv()
            return
        if event.get("type") not in ("ADDED", "MODIFIED"):
            return
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        phase = (obj.get("status") or {}).get("phase")
        with self.lock:
            self.events += 1
            if phase and key not in self.first_status:
                self.first_status[key] = now
            old = self.phase.get(key)
            if phase != old:
                self.phase[key] = phase
                self.changes.append((now, key, old, phase))

    def with_status(self) -> int:
        with self.lock:
            return len(self.first_status)

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class AuditTail:
    """Status writes (patch/update of inferenceendpoints/status) from the API server's audit log,
    read incrementally. Each: (stageTimestamp epoch, namespace/name, HTTP code)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.offset = 0
        self.writes: list[tuple[float, str, int]] = []

    def poll(self) -> list[tuple[float, str, int]]:
        if not self.path or not os.path.exists(self.path):
            return self.writes
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            if b'"status"' not in line or PLURAL.encode() not in line:
                continue
            ev = json.loads(line)
            ref = ev.get("objectRef") or {}
            if (
                ev.get("verb") in ("patch", "update")
                and ref.get("resource") == PLURAL
                and ref.get("subresource") == "status"
            ):
                ts = datetime.fromisoformat(ev["stageTimestamp"].replace("Z", "+00:00")).timestamp()
                code = int((ev.get("responseStatus") or {}).get("code") or 0)
                self.writes.append((ts, f"{ref.get('namespace')}/{ref.get('name')}", code))
        return self.writes

    def between(self, start: float, end: float) -> list[tuple[float, str, int]]:
        return [w for w in self.poll() if start <= w[0] < end]


# --- processes ------------------------------------------------------------------------------


class OperatorProc(OperatorProcess):
    """The shared operator harness, sampling its RSS every second."""

    def __init__(self, kubeconfig: str, logfile: Path, extra: Sequence[str] = ()) -> None:
        import psutil

        super().__init__(kubeconfig, logfile, extra, wait=False)
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        #: (seconds since start, RSS MB) every second: shows when memory grows.
        self.rss_timeline: list[tuple[float, float]] = []
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._sampling.wait(1.0):
            with contextlib.suppress(Exception):
                rss = self.ps.memory_info().rss
                self.peak_rss = max(self.peak_rss, rss)
                self.rss_timeline.append(
                    (round(time.time() - self.started, 1), round(rss / 2**20, 1))
                )

    def cpu(self) -> float:
        return cpu_of(self.ps)

    def rss(self) -> int:
        rss = int(self.ps.memory_info().rss)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def stop(self) -> int:
        self._sampling.set()
        return super().stop()


def metric_sum(metrics: Mapping[str, float], name: str, **labels: str) -> float:
    total = 0.0
    for key, value in metrics.items():
        if (key == name or key.startswith(name + "{")) and all(
            f'{k}="{v}"' in key for k, v in labels.items()
        ):
            total += value
    return total


def kind_of_path(provider: str, path: str) -> str:
    if provider == "runpod":
        return "runpod-v1" if path.startswith("/runpod/v1") else "runpod-v2"
    return floor.KIND_OF_PROVIDER[provider]


def requests_by_kind(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for provider, paths in (after.get("paths") or {}).items():
        old = (before.get("paths") or {}).get(provider) or {}
        for path, count in paths.items():
            kind = kind_of_path(provider, path)
            out[kind] = out.get(kind, 0) + count - old.get(path, 0)
    return out


def path_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for provider, paths in (after.get("paths") or {}).items():
        old = (before.get("paths") or {}).get(provider) or {}
        for path, count in paths.items():
            if count - old.get(path, 0) > 0:
                out.setdefault(provider, {})[path] = count - old.get(path, 0)
    return out


# --- one case -------------------------------------------------------------------------------


@dataclass
class Options:
    mix: dict[str, float]
    workspaces: int = 3
    teams: int = 2
    namespaces: int = 4
    steady_cycles: int = 3
    changes: int = 50
    create_concurrency: int = 32
    floor_pace: str = "burst"
    operator_args: list[str] = field(default_factory=list)
    profile: bool = False
    profile_min_n: int = 0
    #: Stop each case once every resource has a status (no steady window, changes or floor).
    startup_only: bool = False
    #: Endpoints use a handful of ClusterInferenceProviders (spec.providerRef) instead of
    #: inline URLs and credentials.
    provider_objects: bool = False
    workdir: Path = RESULTS


def measure_empty_operator(
    kube: Kube, kubeconfig: str, workdir: Path, extra: Sequence[str]
) -> dict[str, Any]:
    """The operator with no InferenceEndpoints: RSS and idle CPU, subtracted per resource later."""
    op = OperatorProc(kubeconfig, workdir / "operator-empty.log", extra)
    try:
        ready = op.wait_healthy()
        time.sleep(10)
        cpu0, t0 = op.cpu(), time.monotonic()
        time.sleep(10)
        return {
            "rss_mb": round(op.rss() / 2**20, 1),
            "idle_cpu_per_s": round((op.cpu() - cpu0) / (time.monotonic() - t0), 5),
            "healthy_after_s": round(ready, 2),
        }
    finally:
        op.stop()


def run_case(
    emu: EmulatorClient,
    n: int,
    interval_text: str,
    repeat: int,
    opts: Options,
    empty: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    sys.path.insert(0, str(ROOT / "tests" / "controlplane"))
    import localcp
    import psutil

    interval = parse_duration(interval_text)
    tag = f"n{n}-{interval_text}-r{repeat}"
    case: dict[str, Any] = {
        "n": n,
        "interval": interval_text,
        "interval_s": interval,
        "repeat": repeat,
    }
    layout = floor.make_layout(
        n, opts.mix, workspaces=opts.workspaces, teams=opts.teams, namespaces=opts.namespaces
    )
    case["by_kind"] = {k: sum(1 for e in layout if e.kind == k) for k in floor.KINDS}
    namespaces = sorted(
        {e.namespace for e in layout} | {f"bench-{i}" for i in range(opts.namespaces)}
    )

    t0 = time.monotonic()
    cp = localcp.LocalControlPlane(
        binaries=localcp.find_binaries(build_missing=False, need_helm=False),
        verbose=False,
        # v1.37's apiserver refuses a loopback --advertise-address with the default endpoint
        # reconciler (there are no Services to reconcile here anyway).
        extra_apiserver_args=["--endpoint-reconciler-type=none"],
    )
    cp.start()
    case["controlplane_start_s"] = round(time.monotonic() - t0, 2)
    kube = Kube(cp.kubeconfig)
    op: OperatorProc | None = None
    watcher: Watcher | None = None
    try:
        kube.apply_crd()
        kube.namespaces_and_secrets(namespaces)
        if empty is None:
            log(f"{tag}: measuring the operator with 0 resources")
            empty = measure_empty_operator(kube, cp.kubeconfig, opts.workdir, opts.operator_args)
            log(f"empty operator: {empty}")

        emu.reset()
        t0 = time.monotonic()
        for body in floor.bulk_bodies(layout):
            body = dict(body)
            emu.bulk(body.pop("provider"), body.pop("count"), **body)
        case["seed_s"] = round(time.monotonic() - t0, 2)

        objects = [
            manifest(ep, emu.base_url, interval_text, via_provider=opts.provider_objects)
            for ep in layout
        ]
        if opts.provider_objects:
            shared = provider_objects(emu.base_url, namespaces[0])
            kube.create_all(shared, opts.create_concurrency)
            case["provider_objects"] = len(shared)
        case["create_s"] = round(kube.create_all(objects, opts.create_concurrency), 2)
        log(f"{tag}: created {n} resources in {case['create_s']} s")

        watcher = Watcher(kube, kube.list_rv())
        watcher.start()
        audit = AuditTail(cp.audit_log)
        audit.poll()
        summary0 = emu.summary()

        # -- start: time to every resource having a status ------------------------------------
        others = {name: psutil.Process(pid) for name, pid in cp.pids.items()}
        others["emulator"] = psutil.Process(emu.pid)
        cpu0 = {name: cpu_of(ps) for name, ps in others.items()}
        args = list(opts.operator_args)
        if opts.provider_objects:  # where the shared providers' Secret is
            args.append(f"--cluster-secret-namespace={namespaces[0]}")
        op = OperatorProc(cp.kubeconfig, opts.workdir / f"operator-{tag}.log", args)
        limit = max(120.0, 6 * interval + n / 50)
        case["healthy_s"] = round(op.wait_healthy(), 2)
        profiler = None
        if opts.profile and n >= opts.profile_min_n:
            profiler = start_profile(op.proc.pid, limit, opts.workdir / f"profile-startup-{tag}")
        timeline: list[tuple[float, int]] = []
        started = op.started

        def all_have_status() -> bool:
            count = watcher.with_status()
            elapsed = round(time.time() - started, 1)
            if not timeline or elapsed - timeline[-1][0] >= 5.0:
                timeline.append((elapsed, count))
            return count >= n

        try:
            wait_until(f"{n} statuses", all_have_status, limit, every=0.2)
        except AssertionError:
            log(f"{tag}: only {watcher.with_status()}/{n} have a status after {limit:.0f} s")
        # Who spent the machine's two cores on start-up: a slow start can be the API server's.
        case["startup_cpu_s"] = {
            "operator": round(op.cpu(), 2),
            **{name: round(cpu_of(ps) - cpu0[name], 2) for name, ps in others.items()},
        }
        case["startup_timeline"] = timeline
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            case["startup_profile"] = finish_profile(
                profiler, opts.workdir / f"profile-startup-{tag}"
            )
        firsts = sorted(t - op.started for t in watcher.first_status.values())
        case["with_status"] = len(firsts)
        case["all_status_s"] = round(firsts[-1], 2) if len(firsts) >= n else None
        case["status_p50_s"] = round(percentile(firsts, 50) or 0, 2)
        case["status_p99_s"] = round(percentile(firsts, 99) or 0, 2)
        # Which provider holds start-up back: the last first-status of each kind.
        kind_of = {f"{ep.namespace}/{ep.name}": ep.kind for ep in layout}
        last_by_kind: dict[str, float] = {}
        for key, t in watcher.first_status.items():
            kind = kind_of.get(key, "?")
            last_by_kind[kind] = max(last_by_kind.get(kind, 0.0), round(t - op.started, 2))
        case["all_status_s_by_kind"] = dict(sorted(last_by_kind.items()))
        startup_summary = emu.summary()
        case["startup_requests"] = startup_summary["total"] - summary0["total"]
        log(
            f"{tag}: {len(firsts)}/{n} have a status, last after {case['all_status_s']} s, "
            f"{case['startup_requests']} provider requests, CPU s {case['startup_cpu_s']}, "
            f"last by kind {case['all_status_s_by_kind']}"
        )
        if opts.startup_only:
            return case, empty

        # -- steady state ---------------------------------------------------------------------
        time.sleep(5.0)  # trailing Events of the first writes
        window = opts.steady_cycles * interval
        s0, m0, c0, w0 = emu.summary(), op.metrics(), op.cpu(), time.time()
        profiler = None
        if opts.profile and n >= opts.profile_min_n:
            profiler = start_profile(op.proc.pid, window, opts.workdir / f"profile-{tag}")
        time.sleep(window)
        s1, m1, c1, w1 = emu.summary(), op.metrics(), op.cpu(), time.time()
        if profiler is not None:
            case["profile"] = finish_profile(profiler, opts.workdir / f"profile-{tag}")
        cycles = (w1 - w0) / interval
        cpu = c1 - c0
        polls = metric_sum(m1, "inferenceops_polls_total") - metric_sum(
            m0, "inferenceops_polls_total"
        )
        polls_ok = metric_sum(m1, "inferenceops_polls_total", outcome="ok") - metric_sum(
            m0, "inferenceops_polls_total", outcome="ok"
        )
        by_kind = requests_by_kind(s0, s1)
        list_n = sum(case["by_kind"][k] for k in floor.LIST_KINDS)
        list_req = sum(by_kind.get(k, 0) for k in floor.LIST_KINDS)
        steady_writes = audit.between(w0, w1)
        writes_metric = metric_sum(m1, "inferenceops_status_writes_total") - metric_sum(
            m0, "inferenceops_status_writes_total"
        )
        rss = op.rss()
        lag_sum = metric_sum(m1, "inferenceops_scheduler_lag_seconds_sum") - metric_sum(
            m0, "inferenceops_scheduler_lag_seconds_sum"
        )
        lag_count = metric_sum(m1, "inferenceops_scheduler_lag_seconds_count") - metric_sum(
            m0, "inferenceops_scheduler_lag_seconds_count"
        )
        case.update(
            steady_window_s=round(w1 - w0, 1),
            steady_cycles=round(cycles, 2),
            requests_per_cycle=round((s1["total"] - s0["total"]) / cycles, 1),
            requests_per_cycle_by_kind={
                k: round(v / cycles, 1) for k, v in sorted(by_kind.items())
            },
            requests_per_n=round((s1["total"] - s0["total"]) / cycles / n, 4),
            list_requests_per_n=round(list_req / cycles / list_n, 4) if list_n else None,
            polls_per_cycle=round(polls / cycles, 1),
            polls_ok_fraction=round(polls_ok / polls, 4) if polls else None,
            steady_writes_per_cycle=round(len(steady_writes) / cycles, 2),
            steady_writes_metric_per_cycle=round(writes_metric / cycles, 2),
            cpu_s=round(cpu, 3),
            cpu_per_1k_polls=round(cpu / polls * 1000, 4) if polls else None,
            cpu_util=round(cpu / (w1 - w0), 4),
            rss_mb=round(rss / 2**20, 1),
            scheduler_lag_mean_s=round(lag_sum / lag_count, 3) if lag_count else None,
        )
        if empty:
            case["rss_per_resource_kb"] = round((rss / 2**20 - empty["rss_mb"]) * 1024 / n, 2)
        log(
            f"{tag}: steady {case['requests_per_cycle']} req/cycle, "
            f"{case['steady_writes_per_cycle']} writes/cycle, "
            f"{case['cpu_per_1k_polls']} CPU s/1k polls, "
            f"RSS {case['rss_mb']} MB"
        )

        # -- freshness: K real changes --------------------------------------------------------
        chosen = pick_changes(layout, opts.changes)
        keys = {f"{ep.namespace}/{ep.name}": ep for ep in chosen}
        change_start = time.time()
        for ep in chosen:
            key_parts, body = change_of(ep)
            emu.patch(floor.PROVIDER_OF_KIND[ep.kind], *key_parts, **body)
        changed_at = {
            key: emu.changed_at(floor.PROVIDER_OF_KIND[ep.kind], ep.key) for key, ep in keys.items()
        }

        def seen() -> dict[str, tuple[float, str | None]]:
            with watcher.lock:
                out: dict[str, tuple[float, str | None]] = {}
                for t, key, _old, new in watcher.changes:
                    if key in keys and t >= change_start and key not in out and new != "Running":
                        out[key] = (t, new)
                return out

        with contextlib.suppress(AssertionError):
            wait_until(
                "the changes to show", lambda: len(seen()) >= len(keys), 2 * interval + 15, 0.2
            )
        got = seen()
        latencies = [t - changed_at[k] for k, (t, _) in got.items()]
        # One more transitional re-poll (interval/3) must not write again.
        time.sleep(interval / 3 + 3)
        fresh_end = time.time()
        writes = audit.between(change_start - 0.5, fresh_end)
        changed_writes = [w for w in writes if w[1] in keys]
        case.update(
            changes=len(keys),
            changes_seen=len(got),
            fresh_phases=sorted({p or "-" for _, p in got.values()}),
            freshness_p50_s=round(percentile(latencies, 50) or 0, 2) if latencies else None,
            freshness_p99_s=round(percentile(latencies, 99) or 0, 2) if latencies else None,
            freshness_max_s=round(max(latencies), 2) if latencies else None,
            writes_per_change=round(len(changed_writes) / len(keys), 3) if keys else None,
            writes_unchanged_during_changes=len(writes) - len(changed_writes),
        )
        log(
            f"{tag}: freshness p50 {case['freshness_p50_s']} s p99 {case['freshness_p99_s']} s "
            f"({len(got)}/{len(keys)}), {case['writes_per_change']} writes/change"
        )
        case["peak_rss_mb"] = round(op.peak_rss / 2**20, 1)
        step = max(1, len(op.rss_timeline) // 120)  # at most ~120 points in the JSON
        case["rss_timeline_mb"] = op.rss_timeline[::step]
        op.stop()
        case["operator_exit"] = op.proc.returncode
        op = None

        # -- the floor ------------------------------------------------------------------------
        plan = floor.plan_from_layout(layout, emu.base_url, TOKEN)
        plan = floor.with_observed_requests(
            plan, layout, emu.base_url, TOKEN, path_delta(s0, s1), cycles
        )
        plan_file = opts.workdir / f"plan-{tag}.json"
        plan_file.write_text(json.dumps(plan.to_json()))
        floor_cycles = max(1, round(cycles))
        paces = {"burst": [0.0], "interval": [interval], "both": [0.0, interval]}[opts.floor_pace]
        for pace in paces:
            fl = run_floor(plan_file, floor_cycles, pace, interval)
            # The verdict's floor is the first (burst when measured: the stricter bound); a
            # paced floor spaces its cycles over the interval as the operator must.
            prefix = "floor" if pace == paces[0] else "floor_paced"
            case[prefix] = fl
            case[f"{prefix}_cpu_per_1k_polls"] = fl["cpu_per_1k_polls"]
            ratio_key = "cpu_ratio" if prefix == "floor" else "cpu_ratio_paced"
            if fl["cpu_per_1k_polls"] and case["cpu_per_1k_polls"]:
                case[ratio_key] = round(case["cpu_per_1k_polls"] / fl["cpu_per_1k_polls"], 2)
            log(
                f"{tag}: {prefix} (pace {pace:g} s) {fl['cpu_per_1k_polls']} CPU s/1k polls, "
                f"{fl['requests_per_cycle']} req/cycle"
            )
        return case, empty
    finally:
        if watcher is not None:
            watcher.stop()
            case["watch_errors"] = watcher.errors[:5]
        if op is not None:
            op.stop()
        kube.close()
        cp.stop()


def run_floor(plan_file: Path, cycles: int, pace: float, interval: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "floor.py"),
            "--plan",
            str(plan_file),
            "--cycles",
            str(cycles),
            "--interval",
            str(pace),
        ],
        capture_output=True,
        text=True,
        timeout=cycles * (interval + 120) + 60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"floor failed: {out.stderr[-2000:]}")
    fl: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    fl.pop("per_cycle", None)
    return fl


# --- profiling ------------------------------------------------------------------------------


def cpu_of(ps: Any) -> float:
    t = ps.cpu_times()
    return float(t.user + t.system)


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[Any] | None:
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        log("py-spy is not installed in .venv: no profile (pip install py-spy)")
        return None
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",  # ~4,000 samples over a steady window at 10,000: enough to rank frames
            "--format",
            "raw",
            "--output",
            str(out) + ".txt",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(out.parent / (out.name + ".log")).open("w"),
    )


def finish_profile(proc: subprocess.Popen[Any], out: Path) -> dict[str, Any]:
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return top_frames(Path(str(out) + ".txt"))


def top_frames(path: Path, limit: int = 25) -> dict[str, Any]:
    """Inclusive and self sample shares per frame from py-spy's collapsed-stack output."""
    if not path.exists():
        return {"error": "no profile written"}
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def top(d: Mapping[str, int]) -> list[tuple[str, float]]:
        return [(f, round(c / total, 4)) for f, c in sorted(d.items(), key=lambda x: -x[1])[:limit]]

    return {"file": str(path), "samples": total, "self": top(own), "inclusive": top(inclusive)}


# --- the table ------------------------------------------------------------------------------

COLUMNS: list[tuple[str, str, str]] = [
    # (header, key in the row, format)
    ("N", "n", "d"),
    ("interval", "interval", "s"),
    ("reps", "repeats", "d"),
    ("create s", "create_s", ".1f"),
    ("all status s", "all_status_s", ".1f"),
    ("req/cycle", "requests_per_cycle", ".0f"),
    ("req/N", "requests_per_n", ".3f"),
    ("list req/N", "list_requests_per_n", ".4f"),
    ("writes/cycle", "steady_writes_per_cycle", ".1f"),
    ("writes/change", "writes_per_change", ".2f"),
    ("CPU s/1k polls", "cpu_per_1k_polls", ".3f"),
    ("floor s/1k", "floor_cpu_per_1k_polls", ".3f"),
    ("op/floor", "cpu_ratio", ".2f"),
    ("op/paced", "cpu_ratio_paced", ".2f"),
    ("RSS MB", "rss_mb", ".0f"),
    ("KB/res", "rss_per_resource_kb", ".1f"),
    ("fresh p50 s", "freshness_p50_s", ".1f"),
    ("fresh p99 s", "freshness_p99_s", ".1f"),
]


def summarize(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N, interval): the median of every numeric column over the repeats."""
    groups: dict[tuple[int, str], list[Mapping[str, Any]]] = {}
    for case in cases:
        groups.setdefault((int(case["n"]), str(case["interval"])), []).append(case)
    rows = []
    for (n, interval), group in sorted(
        groups.items(), key=lambda x: (x[0][0], parse_duration(x[0][1]))
    ):
        row: dict[str, Any] = {"n": n, "interval": interval, "repeats": len(group)}
        for _, key, _fmt in COLUMNS:
            if key in row:
                continue
            values = [c.get(key) for c in group]
            row[key] = median([v for v in values if isinstance(v, int | float)])
        rows.append(row)
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], markdown: bool = False) -> str:
    def cell(value: Any, fmt: str) -> str:
        if value is None:
            return "-"
        if fmt == "d":
            return str(int(value))
        if fmt == "s":
            return str(value)
        return format(float(value), fmt)

    header = [h for h, _, _ in COLUMNS]
    body = [[cell(r.get(k), f) for _, k, f in COLUMNS] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def verdicts(row: Mapping[str, Any]) -> dict[str, tuple[bool | None, str]]:
    """The issue's targets for one row: (met?, what was measured)."""
    interval = parse_duration(str(row["interval"]))

    def check(key: str, ok: Callable[[float], bool], show: str) -> tuple[bool | None, str]:
        value = row.get(key)
        if value is None:
            return None, f"{show}: not measured"
        return ok(float(value)), f"{show}: {value}"

    return {
        "zero steady writes": check("steady_writes_per_cycle", lambda v: v == 0, "writes/cycle"),
        "1 write per change": check("writes_per_change", lambda v: v == 1, "writes/change"),
        "list req <= 5% of N": check("list_requests_per_n", lambda v: v <= 0.05, "list req/N"),
        "CPU <= 1.5x floor": check("cpu_ratio", lambda v: v <= 1.5, "op/floor"),
        "RSS <= 250 MB": check("rss_mb", lambda v: v <= 250, "RSS MB"),
        "freshness p99 <= interval+2s": check(
            "freshness_p99_s", lambda v: v <= interval + 2, "p99 s"
        ),
        "all status <= 2x interval": check(
            "all_status_s", lambda v: v <= 2 * interval, "all status s"
        ),
    }


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--intervals", default="30s")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="repeats per (N, interval); default 3 for N <= 1000 and 1 above",
    )
    p.add_argument(
        "--mix", default=floor.DEFAULT_MIX, help=f"kind=weight,... (default {floor.DEFAULT_MIX})"
    )
    p.add_argument("--workspaces", type=int, default=3, help="DataArts workspaces")
    p.add_argument("--teams", type=int, default=2, help="Friendli teams (one account each)")
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument("--steady-cycles", type=int, default=3)
    p.add_argument("--changes", type=int, default=50, help="K endpoints changed for freshness")
    p.add_argument("--create-concurrency", type=int, default=32)
    p.add_argument(
        "--floor-pace",
        choices=("burst", "interval", "both"),
        default="burst",
        help="floor cycles back to back, spaced by the interval, or both (op/paced column)",
    )
    p.add_argument(
        "--profile", action="store_true", help="py-spy the operator's start-up and steady windows"
    )
    p.add_argument(
        "--startup-only",
        action="store_true",
        help="end each case once every resource has a status (no steady window, changes, floor)",
    )
    p.add_argument("--profile-min-n", type=int, default=0, help="profile only N >= this")
    p.add_argument(
        "--provider-objects",
        action="store_true",
        help="endpoints share one ClusterInferenceProvider per kind (spec.providerRef)",
    )
    p.add_argument(
        "--operator-arg", action="append", default=[], help="extra `inferenceops run` arg"
    )
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--no-save", action="store_true")
    return p.parse_args(argv)


def git_rev() -> str | None:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip() + (
            "+dirty"
            if subprocess.run(
                ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
            ).stdout
            else ""
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    intervals = [s.strip() for s in args.intervals.split(",") if s.strip()]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"inferenceops-bench-{stamp}-"))
    opts = Options(
        mix=floor.parse_mix(args.mix),
        workspaces=args.workspaces,
        teams=args.teams,
        namespaces=args.namespaces,
        steady_cycles=args.steady_cycles,
        changes=args.changes,
        create_concurrency=args.create_concurrency,
        floor_pace=args.floor_pace,
        operator_args=list(args.operator_arg),
        profile=args.profile,
        profile_min_n=args.profile_min_n,
        startup_only=args.startup_only,
        provider_objects=args.provider_objects,
        workdir=workdir,
    )
    import psutil

    meta = {
        "timestamp": stamp,
        "git": git_rev(),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_start": os.getloadavg(),
        "mix": opts.mix,
        "workspaces": opts.workspaces,
        "teams": opts.teams,
        "namespaces": opts.namespaces,
        "steady_cycles": opts.steady_cycles,
        "changes": opts.changes,
        "floor_pace": opts.floor_pace,
        "logs": str(workdir),
    }
    log(f"logs and plans in {workdir}")

    def on_term(signum: int, _frame: Any) -> None:
        signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt  # runs every finally: no process is left behind

    signal.signal(signal.SIGTERM, on_term)
    cases: list[dict[str, Any]] = []
    empty: dict[str, Any] | None = None
    failed: list[str] = []
    processes = contextlib.ExitStack()
    emu = processes.enter_context(
        emulator_process(workdir / "emulator.log", token=TOKEN, timeout=120)
    )
    try:
        for n in sizes:
            repeats = args.repeats if args.repeats is not None else (3 if n <= 1000 else 1)
            for interval in intervals:
                for r in range(repeats):
                    log(f"case N={n} interval={interval} repeat {r + 1}/{repeats}")
                    t0 = time.monotonic()
                    try:
                        case, empty = run_case(emu, n, interval, r, opts, empty)
                    except Exception as err:  # one failed case must not lose the others
                        import traceback

                        traceback.print_exc()
                        log(f"case N={n} {interval} r{r} failed: {str(err)[-3000:]}")
                        failed.append(f"N={n} {interval} r{r}: {str(err)[-500:]}")
                        continue
                    case["case_wall_s"] = round(time.monotonic() - t0, 1)
                    cases.append(case)
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured")
    finally:
        processes.close()
    rows = summarize(cases)
    meta["loadavg_end"] = os.getloadavg()
    doc = {
        "meta": meta,
        "empty_operator": empty,
        "rows": rows,
        "cases": cases,
        "failed": failed,
        "targets": TARGETS,
        "verdicts": {
            f"{r['n']}@{r['interval']}": {k: v for k, v in verdicts(r).items()} for r in rows
        },
    }
    print(format_table(rows))
    if empty:
        print(f"\nempty operator: RSS {empty['rss_mb']} MB, idle CPU {empty['idle_cpu_per_s']} s/s")
    for r in rows:
        bad = [f"{k} ({v[1]})" for k, v in verdicts(r).items() if v[0] is False]
        print(
            f"N={r['n']} {r['interval']}: "
            + ("all targets met" if not bad else "missed: " + "; ".join(bad))
        )
    if failed:
        print("failed cases:\n  " + "\n  ".join(failed))
    if not args.no_save:
        out = results / f"{stamp}.json"
        out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if failed and not cases else 0


if __name__ == "__main__":
    sys.exit(main())
