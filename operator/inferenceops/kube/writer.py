"""The only place that writes to the API server: status patches and Events."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from ..api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from ..api.provider_kinds import CLUSTER_PLURAL, NAMESPACED_PLURAL
from ..metrics import Metrics
from ..status import EventSpec
from .client import ApiSession
from .errors import ApiError, ApiNotFound, check

__all__ = ["ApiWriter", "ObjectRef", "StatusSink", "WriteError"]

MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}

log = logging.getLogger(__name__)


class ObjectRef(Protocol):
    namespace: str
    name: str
    uid: str


class StatusSink(Protocol):
    """What the scheduler needs from a writer; tests substitute an in-memory one."""

    async def patch_status(self, ref: ObjectRef, patch: Mapping[str, Any]) -> bool: ...

    async def emit(self, ref: ObjectRef, event: EventSpec) -> None: ...


class ApiWriter:
    """Writes through the API session; bounded concurrency so a burst of changes cannot flood
    the API server."""

    def __init__(
        self,
        api: ApiSession,
        metrics: Metrics,
        *,
        concurrency: int = 16,
        component: str = "inferenceops",
    ) -> None:
        self._api = api
        self._metrics = metrics
        self._gate = asyncio.Semaphore(concurrency)
        self._component = component
        self._instance = socket.gethostname()
        self._written = {r: metrics.status_writes.labels(r) for r in ("ok", "gone", "error")}

    async def patch_status(self, ref: ObjectRef, patch: Mapping[str, Any]) -> bool:
        """Merge-patch `.status`; False when the object is gone (deleted meanwhile)."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/{PLURAL}/{ref.name}/status"
        return await self._patch(path, f"status patch of {ref.namespace}/{ref.name}", patch)

    async def patch_provider_status(
        self, key: tuple[str, str, str], patch: Mapping[str, Any]
    ) -> bool:
        """The same for an InferenceProvider or ClusterInferenceProvider (provider_status.py)."""
        kind, namespace, name = key
        if namespace:
            path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{NAMESPACED_PLURAL}/{name}"
        else:
            path = f"/apis/{GROUP}/{VERSION}/{CLUSTER_PLURAL}/{name}"
        try:
            return await self._patch(f"{path}/status", f"status patch of {kind} {name}", patch)
        except WriteError as err:
            log.warning("%s", err)
            return False

    async def _patch(self, path: str, what: str, patch: Mapping[str, Any]) -> bool:
        body = json.dumps({"status": patch}, separators=(",", ":"))
        async with self._gate:
            try:
                async with self._api.session.patch(
                    self._api.url(path), data=body, headers=MERGE_PATCH
                ) as response:
                    await check(response, what)
            except ApiNotFound:
                self._written["gone"].inc()
                return False
            except ApiError as err:
                self._written["error"].inc()
                raise WriteError(str(err)) from None
            except (aiohttp.ClientError, TimeoutError) as err:
                self._written["error"].inc()
                raise WriteError(f"{what} failed: {type(err).__name__}") from None
        self._written["ok"].inc()
        return True

    async def emit(self, ref: ObjectRef, event: EventSpec) -> None:
        await self._emit(KIND, ref.namespace, ref.name, ref.uid, event)

    async def emit_for_provider(
        self, key: tuple[str, str, str], uid: str, event: EventSpec
    ) -> None:
        kind, namespace, name = key
        await self._emit(kind, namespace, name, uid, event)

    async def _emit(self, kind: str, namespace: str, name: str, uid: str, event: EventSpec) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"apiVersion": API_VERSION, "kind": kind, "name": name, "uid": uid}
        if namespace:
            involved["namespace"] = namespace
        # Events about a cluster-scoped object live in "default", as kubectl describe expects.
        where = namespace or "default"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": where},
            "involvedObject": involved,
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        path = f"/api/v1/namespaces/{where}/events"
        async with self._gate:
            try:
                async with self._api.session.post(self._api.url(path), json=body) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as err:
                log.warning("event for %s/%s not posted: %s", where, name, type(err).__name__)
                return
        if status >= 400:
            log.warning("event for %s/%s not posted: HTTP %s", where, name, status)
            return
        self._metrics.events.labels(event.type).inc()


class WriteError(RuntimeError):
    pass
