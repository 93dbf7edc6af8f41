"""RunPod Serverless, REST v1 (`{base}/runpod/v1`) and v2 (`{base}/runpod/v2`), one shared state.

Assumptions where the docs are silent:
- v1 `desiredStatus` is intent: every active worker is RUNNING except an UNHEALTHY one, whose
  container RunPod has given up on (EXITED). A worker spec may set `desired_status` explicitly.
- v1 `dataCenterIds` is the comma-joined string the documented example shows (the schema says
  array); v2 uses a real array.
- v2 `GET /serverless/{id}` serves the official `Endpoint` members only: what the emulator has
  no state for (image, disk, GPU pool `ADA_24`, flashboot OFF, no network volumes) takes the
  official example's values; `timeout` is `execution_timeout_ms`, `scaling` follows
  `scaler_type`/`scaler_value`, and `workers.idleTimeout` is left out for a QUEUE endpoint
  scaling on REQUEST_COUNT (as documented).
- v1 leaves `networkVolumeId` out when there is none (the schema says string, never null).
- v2 sends `RateLimit`/`RateLimit-Policy` on every reply with a fixed 600 requests/minute policy.
- Unknown ids are 404 in both versions; v1 says `{"message": ...}`, v2 a problem document.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._core import (
    Emulation,
    ProviderHandler,
    Reply,
    Route,
    Store,
    bearer_auth,
    iso_now,
    public_fields,
    reason,
    str_list,
)

WORKER_STATUSES = ("RUNNING", "IDLE", "INITIALIZING", "THROTTLED", "UNHEALTHY")
_META = ("endpoint_id", "created_at")
_JOB_COUNTS = ("completed", "failed", "inProgress", "inQueue", "retried")
_RATE_POLICY = '"default";q=600;w=60'


@dataclass
class RunpodWorker:
    id: str
    status: str
    desired_status: str | None
    version: int
    started_at: float

    def v1_desired_status(self) -> str:
        if self.desired_status is not None:
            return self.desired_status
        return "EXITED" if self.status == "UNHEALTHY" else "RUNNING"


@dataclass
class RunpodEndpoint:
    endpoint_id: str
    name: str
    workers: list[RunpodWorker]
    workers_min: int
    workers_max: int
    idle_timeout: int
    version: int
    gpu_type_ids: list[str]
    gpu_count: int
    template_id: str
    scaler_type: str
    scaler_value: int
    compute_type: str
    data_center_ids: list[str]
    execution_timeout_ms: int
    endpoint_type: str
    #: The serverless /health route's job counts (inQueue, inProgress, failed, completed, retried).
    jobs: dict[str, int]
    created_at: str

    def summary(self) -> dict[str, int]:
        counts = {s.lower(): 0 for s in WORKER_STATUSES}
        for w in self.workers:
            key = w.status.lower()
            if key in counts:
                counts[key] += 1
        counts["total"] = len(self.workers)
        return counts

    def v1_json(self, *, workers: bool, template: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "allowedCudaVersions": ["12.4"],
            "computeType": self.compute_type,
            "createdAt": self.created_at,
            "dataCenterIds": ",".join(self.data_center_ids),
            "env": {},
            "executionTimeoutMs": self.execution_timeout_ms,
            "gpuCount": self.gpu_count,
            "gpuTypeIds": list(self.gpu_type_ids),
            "id": self.endpoint_id,
            "idleTimeout": self.idle_timeout,
            "instanceIds": [],
            "name": self.name,
            "networkVolumeIds": [],
            "scalerType": self.scaler_type,
            "scalerValue": self.scaler_value,
            "templateId": self.template_id,
            "userId": "user_emulator",
            "version": self.version,
            "workersMax": self.workers_max,
            "workersMin": self.workers_min,
        }
        if template:
            body["template"] = {
                "category": "NVIDIA",
                "containerDiskInGb": 50,
                "env": {},
                "id": self.template_id,
                "imageName": "runpod/worker-vllm:stable",
                "isPublic": False,
                "isRunpod": False,
                "isServerless": True,
                "name": f"{self.name} template",
                "ports": [],
                "volumeInGb": 0,
                "volumeMountPath": "/workspace",
            }
        if workers:
            body["workers"] = [self._v1_worker(w) for w in self.workers]
        return body

    def _v1_worker(self, w: RunpodWorker) -> dict[str, Any]:
        gpu = self.gpu_type_ids[0] if self.gpu_type_ids else "NVIDIA GeForce RTX 4090"
        return {
            "adjustedCostPerHr": 0.69,
            "aiApiId": None,
            "consumerUserId": "user_emulator",
            "containerDiskInGb": 50,
            "costPerHr": "0.74",
            "cpuFlavorId": "cpu3c",
            "desiredStatus": w.v1_desired_status(),
            "dockerEntrypoint": [],
            "dockerStartCmd": [],
            "endpointId": self.endpoint_id,
            "env": {},
            "gpu": {"id": gpu, "count": self.gpu_count, "displayName": gpu},
            "id": w.id,
            "image": "runpod/worker-vllm:stable",
            "interruptible": False,
            "lastStartedAt": _iso(w.started_at),
            "lastStatusChange": f"Rented by User: {_iso(w.started_at)}",
            "locked": False,
            "machineId": f"m{w.id[:11]}",
            "memoryInGb": 62,
            "name": w.id,
            "ports": [],
            "slsVersion": w.version,
            "templateId": None,
            "vcpuCount": 24,
            "volumeEncrypted": False,
            "volumeInGb": 0,
            "volumeMountPath": "/workspace",
        }

    def v2_json(self) -> dict[str, Any]:
        workers: dict[str, Any] = {"min": self.workers_min, "max": self.workers_max}
        if not (self.endpoint_type == "QUEUE" and self.scaler_type == "REQUEST_COUNT"):
            workers["idleTimeout"] = self.idle_timeout
        if self.scaler_type == "REQUEST_COUNT":
            scaling: dict[str, Any] = {"type": "REQUEST_COUNT", "requestCount": self.scaler_value}
        else:
            scaling = {"type": "QUEUE_DELAY", "queueDelay": self.scaler_value}
        body: dict[str, Any] = {
            "id": self.endpoint_id,
            "name": self.name,
            "type": self.endpoint_type,
            "requestUrls": _request_urls(self.endpoint_id, self.endpoint_type),
            "image": "runpod/worker-vllm:stable",
            "args": "",
            "disk": 20,
            "ports": [],
            "env": {},
            "registry": None,
            "workers": workers,
            "scaling": scaling,
            "dataCenterIds": list(self.data_center_ids),
            "networkVolumes": [],
            "timeout": self.execution_timeout_ms,
            "flashboot": "OFF",
            "createdAt": self.created_at,
        }
        if self.compute_type == "CPU":
            body["cpu"] = [{"id": "cpu3c", "vcpuCount": 2, "memory": 4}]
            body["gpu"] = None
        else:
            body["gpu"] = {
                "pools": ["ADA_24"],
                "count": self.gpu_count,
                "allowedCudaVersions": [],
                "minCudaVersion": None,
            }
        return body

    def v2_workers_json(self) -> dict[str, Any]:
        now = time.time()
        gpu = self.gpu_type_ids[0] if self.gpu_type_ids else None
        workers = [
            {
                "id": w.id,
                "status": w.status,
                "isStale": w.version != self.version,
                "gpuCount": self.gpu_count,
                "version": w.version,
                "image": "runpod/worker-vllm:stable",
                "uptimeSeconds": max(0, int(now - w.started_at)),
                "gpuTypeId": gpu,
                "dataCenterId": self.data_center_ids[0] if self.data_center_ids else None,
                "startedAt": _iso(w.started_at),
            }
            for w in self.workers
        ]
        return {"workers": workers, "summary": self.summary(), "endpointVersion": self.version}

    def health_json(self) -> dict[str, Any]:
        """GET https://api.runpod.ai/v2/{id}/health (the serverless endpoint API)."""
        counts = self.summary()
        return {
            "jobs": {k: self.jobs.get(k, 0) for k in _JOB_COUNTS},
            "workers": {"idle": counts["idle"], "running": counts["running"]},
        }


def _request_urls(endpoint_id: str, endpoint_type: str) -> dict[str, str]:
    if endpoint_type == "LOAD_BALANCER":
        base = f"https://{endpoint_id}.api.runpod.ai"
        return {"base": base, "health": f"{base}/ping"}
    api = f"https://api.runpod.ai/v2/{endpoint_id}"
    job = "/{job_id}"
    return {
        "run": f"{api}/run",
        "runSync": f"{api}/runsync",
        "status": f"{api}/status{job}",
        "stream": f"{api}/stream{job}",
        "cancel": f"{api}/cancel{job}",
        "retry": f"{api}/retry{job}",
        "purgeQueue": f"{api}/purge-queue",
        "health": f"{api}/health",
    }


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + "Z"


def _worker_id(endpoint_id: str, index: int) -> str:
    # Stable, RunPod-looking (14 lowercase alphanumerics) ids so repeated puts keep identities.
    return hashlib.blake2s(f"{endpoint_id}/{index}".encode(), digest_size=7).hexdigest()


class RunpodStore(Store[RunpodEndpoint]):
    provider = "runpod"

    def put(
        self,
        endpoint_id: str,
        *,
        workers: Sequence[str | Mapping[str, Any]] = (),
        workers_min: int = 0,
        workers_max: int = 3,
        name: str | None = None,
        idle_timeout: int = 5,
        version: int = 0,
        gpu_type_ids: Sequence[str] = ("NVIDIA GeForce RTX 4090",),
        gpu_count: int = 1,
        template_id: str = "30zmvf89kd",
        scaler_type: str = "QUEUE_DELAY",
        scaler_value: int = 4,
        compute_type: str = "GPU",
        data_center_ids: Sequence[str] = ("EU-NL-1", "EU-RO-1", "EU-SE-1"),
        execution_timeout_ms: int = 600000,
        endpoint_type: str = "QUEUE",
        jobs: Mapping[str, int] | None = None,
    ) -> RunpodEndpoint:
        """Create or replace an endpoint.

        `workers` items are a v2 status string ("RUNNING") or a mapping with `status` and
        optionally `desired_status` (v1 override), `id`, `version`, `started_at` (epoch seconds).
        `jobs`: the /health route's counts, e.g. {"inQueue": 3, "inProgress": 1}.
        """
        unknown_jobs = set(jobs or {}) - set(_JOB_COUNTS)
        if unknown_jobs:
            raise ValueError(f"unknown job counts {sorted(unknown_jobs)}; known: {_JOB_COUNTS}")
        old = self._items.get(endpoint_id)
        now = time.time()
        built: list[RunpodWorker] = []
        for i, spec in enumerate(workers):
            item: Mapping[str, Any] = {"status": spec} if isinstance(spec, str) else spec
            unknown = set(item) - {"status", "desired_status", "id", "version", "started_at"}
            if unknown or "status" not in item:
                raise ValueError(f"bad worker spec {spec!r}")
            started = item.get("started_at")
            built.append(
                RunpodWorker(
                    id=str(item.get("id") or _worker_id(endpoint_id, i)),
                    status=str(item["status"]),
                    desired_status=item.get("desired_status"),
                    version=int(item.get("version", version)),
                    started_at=float(started) if started is not None else now,
                )
            )
        rec = RunpodEndpoint(
            endpoint_id=str(endpoint_id),
            name=name if name is not None else str(endpoint_id),
            workers=built,
            workers_min=int(workers_min),
            workers_max=int(workers_max),
            idle_timeout=int(idle_timeout),
            version=int(version),
            gpu_type_ids=str_list(gpu_type_ids),
            gpu_count=int(gpu_count),
            template_id=str(template_id),
            scaler_type=str(scaler_type),
            scaler_value=int(scaler_value),
            compute_type=str(compute_type),
            data_center_ids=str_list(data_center_ids),
            execution_timeout_ms=int(execution_timeout_ms),
            endpoint_type=str(endpoint_type),
            jobs={k: int(v) for k, v in (jobs or {}).items()},
            created_at=old.created_at if old else iso_now(),
        )
        return self._save(rec.endpoint_id, rec)

    def patch(self, endpoint_id: str, **changes: Any) -> RunpodEndpoint:
        """Change only the given fields of an existing endpoint (KeyError if unknown)."""
        current = public_fields(self._items[endpoint_id], _META)
        current["workers"] = [
            {
                "id": w.id,
                "status": w.status,
                "desired_status": w.desired_status,
                "version": w.version,
                "started_at": w.started_at,
            }
            for w in current["workers"]
        ]
        return self.put(endpoint_id, **{**current, **changes})

    def all(self) -> list[RunpodEndpoint]:
        return list(self._items.values())


def _is_v2(request: web.Request) -> bool:
    return request.path.startswith("/runpod/v2")


def _rate_headers(status: int) -> dict[str, str]:
    remaining = 0 if status == 429 else 599
    return {"RateLimit": f'"default";r={remaining};t=60', "RateLimit-Policy": _RATE_POLICY}


def error(request: web.Request, status: int, message: str | None) -> Reply:
    if _is_v2(request):
        body = {
            "type": "about:blank",
            "title": reason(status),
            "status": status,
            "detail": message or reason(status),
        }
        return Reply(
            status=status,
            body=body,
            headers=_rate_headers(status),
            content_type="application/problem+json",
        )
    return Reply(status=status, body={"message": message or reason(status)})


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


def routes(store: RunpodStore) -> list[Route]:
    def not_found(request: web.Request, endpoint_id: str) -> Reply:
        return error(request, 404, f"endpoint {endpoint_id} not found")

    def ok(body: Any) -> Reply:
        return Reply(body=body, headers=_rate_headers(200))

    def one(render: Callable[[RunpodEndpoint, web.Request], Reply]) -> ProviderHandler:
        """A route about one endpoint: `render` it, or RunPod's 404 when there is none."""

        async def handler(request: web.Request) -> Reply:
            endpoint_id = request.match_info["endpoint_id"]
            rec = store.get(endpoint_id)
            return not_found(request, endpoint_id) if rec is None else render(rec, request)

        return handler

    v2_get = one(lambda rec, _: ok(rec.v2_json()))
    v2_workers = one(lambda rec, _: ok(rec.v2_workers_json()))
    health = one(lambda rec, _: ok(rec.health_json()))
    v1_get = one(
        lambda rec, request: Reply(
            body=rec.v1_json(
                workers=_flag(request, "includeWorkers"),
                template=_flag(request, "includeTemplate"),
            )
        )
    )

    async def v2_list(_request: web.Request) -> Reply:
        return ok({"endpoints": [r.v2_json() for r in store.all()]})

    async def v1_list(request: web.Request) -> Reply:
        workers = _flag(request, "includeWorkers")
        template = _flag(request, "includeTemplate")
        return Reply(body=[r.v1_json(workers=workers, template=template) for r in store.all()])

    async def unknown_path(request: web.Request) -> Reply:
        return error(request, 404, "no such route")

    def ep_keys(request: web.Request) -> tuple[str, ...]:
        return (request.match_info["endpoint_id"],)

    def no_keys(_request: web.Request) -> tuple[str, ...]:
        return ()

    return [
        Route("/runpod/v2/serverless", v2_list, no_keys),
        Route("/runpod/v2/serverless/{endpoint_id}", v2_get, ep_keys),
        Route("/runpod/v2/serverless/{endpoint_id}/workers", v2_workers, ep_keys),
        # The serverless endpoint API's /health (api.runpod.ai/v2/{id}/health): queueUrl is the
        # same base as the REST v2 emulation.
        Route("/runpod/v2/{endpoint_id}/health", health, ep_keys),
        Route("/runpod/v1/endpoints", v1_list, no_keys),
        Route("/runpod/v1/endpoints/{endpoint_id}", v1_get, ep_keys),
        Route("/runpod/{tail:.*}", unknown_path, no_keys, method="*"),
    ]


EMULATION = Emulation(
    name="runpod",
    key=("endpoint",),
    urls={"runpod_v1": "/runpod/v1", "runpod_v2": "/runpod/v2"},
    auth=bearer_auth,
    error=error,
    new_store=RunpodStore,
    routes=routes,
)
