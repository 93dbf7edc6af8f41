"""The only place that writes to the API server: status patches and Events."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from ..api import API_VERSION, GROUP, KIND, PLURAL, VERSION
from ..metrics import Metrics
from ..status import EventSpec

__all__ = ["ApiWriter", "ObjectRef", "StatusSink"]

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
    """Writes through an httpx client to the API server; bounded concurrency so a burst of
    changes cannot flood it."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        metrics: Metrics,
        *,
        concurrency: int = 16,
        component: str = "inferenceops",
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._gate = asyncio.Semaphore(concurrency)
        self._component = component
        self._instance = socket.gethostname()

    async def patch_status(self, ref: ObjectRef, patch: Mapping[str, Any]) -> bool:
        """Merge-patch `.status`; False when the object is gone (deleted meanwhile)."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/{PLURAL}/{ref.name}/status"
        async with self._gate:
            try:
                response = await self._client.patch(
                    path,
                    json={"status": patch},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
            except httpx.HTTPError as err:
                self._metrics.status_writes.labels("error").inc()
                raise WriteError(
                    f"status patch of {ref.namespace}/{ref.name} failed: {type(err).__name__}"
                ) from None
        if response.status_code == 404:
            self._metrics.status_writes.labels("gone").inc()
            return False
        if response.is_error:
            self._metrics.status_writes.labels("error").inc()
            raise WriteError(
                f"status patch of {ref.namespace}/{ref.name} failed: "
                f"HTTP {response.status_code} {response.text[:300]}"
            )
        self._metrics.status_writes.labels("ok").inc()
        return True

    async def emit(self, ref: ObjectRef, event: EventSpec) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
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
        async with self._gate:
            try:
                response = await self._client.post(
                    f"/api/v1/namespaces/{ref.namespace}/events", json=body
                )
            except httpx.HTTPError as err:
                log.warning(
                    "event for %s/%s not posted: %s", ref.namespace, ref.name, type(err).__name__
                )
                return
        if response.is_error:
            log.warning(
                "event for %s/%s not posted: HTTP %s", ref.namespace, ref.name, response.status_code
            )
            return
        self._metrics.events.labels(event.type).inc()


class WriteError(RuntimeError):
    pass
