"""What the benchmark sees of the operator from outside: the InferenceEndpoint watch (first
status and phase changes), status writes from the API server's audit log, the operator's
Prometheus metrics and the emulator's request counts."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Container, Mapping
from typing import Any

from bench import endpoints
from bench.kube import BENCH_UA, IE_PATH, Kube
from bench.report import percentile
from inferenceops.api import PLURAL
from inferenceops.status import parse_timestamp


class _Watch(threading.Thread):
    """One watch from a resourceVersion, re-opened from the last one seen until stopped; each
    event goes to `_event` (the subclass's)."""

    path: str
    agent: str
    selector: Mapping[str, str] = {}
    kube: Kube
    rv: str
    stopping: threading.Event
    errors: list[str]

    def run(self) -> None:
        import httpx

        with httpx.Client(
            base_url=self.kube.server,
            verify=self.kube._ssl(),
            headers={"User-Agent": f"{BENCH_UA}-{self.agent}"},
            timeout=httpx.Timeout(connect=10.0, read=2.0, write=10.0, pool=10.0),
        ) as client:
            while not self.stopping.is_set():
                params = {
                    "watch": "1",
                    "resourceVersion": self.rv,
                    **self.selector,
                    "allowWatchBookmarks": "true",
                    "timeoutSeconds": "300",
                }
                try:
                    with client.stream("GET", self.path, params=params) as r:
                        if r.status_code != 200:
                            self.errors.append(f"{self.agent} HTTP {r.status_code}")
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
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


class Watcher(_Watch):
    """Watches every InferenceEndpoint from a resourceVersion; records, per object, when it first
    had a status and every phase change, by the wall clock of this process (as the emulator's
    changed_at is)."""

    path, agent = f"{IE_PATH}/{PLURAL}", "watch"

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

    def first_left_running(
        self, keys: Container[str], since: float
    ) -> dict[str, tuple[float, str | None]]:
        """When each of `keys` first showed a phase other than Running at or after `since`,
        and that phase."""
        with self.lock:
            out: dict[str, tuple[float, str | None]] = {}
            for t, key, _old, new in self.changes:
                if key in keys and t >= since and key not in out and new != "Running":
                    out[key] = (t, new)
            return out

    def with_status(self) -> int:
        with self.lock:
            return len(self.first_status)


#: Where the operator's membership Leases are (every namespace: the bench does not pick the
#: lease namespace) and the label every one of them carries.
LEASES_PATH = "/apis/coordination.k8s.io/v1/leases"
LEASE_SELECTOR = "app.kubernetes.io/managed-by=inferenceops"


class LeaseWatcher(_Watch):
    """Watches the operator's membership Leases from a resourceVersion; records the time of every
    Lease write (created, renewed or otherwise changed, deleted) by the wall clock of this
    process, so a window's writes per second can be counted."""

    path, agent, selector = LEASES_PATH, "lease-watch", {"labelSelector": LEASE_SELECTOR}

    def __init__(self, kube: Kube) -> None:
        super().__init__(name="lease-watch", daemon=True)
        self.kube = kube
        listing = kube.request("GET", LEASES_PATH, params={"labelSelector": LEASE_SELECTOR})
        self.rv: str = listing["metadata"]["resourceVersion"]
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        #: (time, event type, namespace/name) per Lease write seen.
        self.writes: list[tuple[float, str, str]] = []
        self.errors: list[str] = []

    def _event(self, event: Mapping[str, Any]) -> None:
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if meta.get("resourceVersion"):
            self.rv = meta["resourceVersion"]
        kind = str(event.get("type"))
        if kind == "ERROR":
            self.errors.append(str(obj)[:200])
            if obj.get("code") == 410:  # too old: go on from now (a gap, counted as errors)
                listing = self.kube.request(
                    "GET", LEASES_PATH, params={"labelSelector": LEASE_SELECTOR}
                )
                self.rv = listing["metadata"]["resourceVersion"]
            return
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            with self.lock:
                self.writes.append(
                    (time.time(), kind, f"{meta.get('namespace')}/{meta.get('name')}")
                )

    def between(self, start: float, end: float) -> list[tuple[float, str, str]]:
        with self.lock:
            return [w for w in self.writes if start <= w[0] < end]


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
                when = parse_timestamp(ev.get("stageTimestamp"))
                if when is None:
                    continue
                code = int((ev.get("responseStatus") or {}).get("code") or 0)
                self.writes.append(
                    (when.timestamp(), f"{ref.get('namespace')}/{ref.get('name')}", code)
                )
        return self.writes

    def between(self, start: float, end: float) -> list[tuple[float, str, int]]:
        return [w for w in self.poll() if start <= w[0] < end]


def startup_results(
    first_status: Mapping[str, float], started: float, n: int, kind_of: Mapping[str, str]
) -> dict[str, Any]:
    """Start-up as the watch saw it: how many of the n resources have a status, when the last
    one got it (None unless all did), percentiles, and the last of each kind (which provider
    holds start-up back)."""
    firsts = sorted(t - started for t in first_status.values())
    last_by_kind: dict[str, float] = {}
    for key, t in first_status.items():
        kind = kind_of.get(key, "?")
        last_by_kind[kind] = max(last_by_kind.get(kind, 0.0), round(t - started, 2))
    return {
        "with_status": len(firsts),
        "all_status_s": round(firsts[-1], 2) if len(firsts) >= n else None,
        "status_p50_s": round(percentile(firsts, 50) or 0, 2),
        "status_p99_s": round(percentile(firsts, 99) or 0, 2),
        "all_status_s_by_kind": dict(sorted(last_by_kind.items())),
    }


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
    return endpoints.KIND_OF_PROVIDER[provider]


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
