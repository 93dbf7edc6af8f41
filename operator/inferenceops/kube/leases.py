"""The `coordination.k8s.io/v1` Lease calls of membership (membership.py): one Lease per live
member, created, renewed with a PUT (its resourceVersion, so two writers of one Lease are caught),
and deleted on a graceful stop.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import aiohttp

from ..clock import Clock
from .client import ApiSession
from .errors import ApiConflict, ApiNotFound, check

__all__ = [
    "GROUP_LABEL",
    "LEFT_ANNOTATION",
    "MANAGED_BY",
    "VIEW_ANNOTATION",
    "HeldLease",
    "LeaseApi",
    "LeaseStore",
    "lease_body",
    "lease_name",
    "leases_path",
    "micro_time",
    "own_pod",
]

GROUP_LABEL = "inferenceops.io/group"
VIEW_ANNOTATION = "inferenceops.io/view"
#: Written by a member leaving gracefully just before it deletes its Lease: the others take its
#: keys at once. A Lease deleted without it is taken for a member that went silent.
LEFT_ANNOTATION = "inferenceops.io/left"
MANAGED_BY = {"app.kubernetes.io/managed-by": "inferenceops"}


def leases_path(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def lease_name(group: str, member: str) -> str:
    """`<group>-<member>` as a DNS-1123 name of at most 63 characters: lowercase, other
    characters as '-', cut at 63 with no '-' or '.' at either end."""
    name = re.sub(r"[^a-z0-9.-]+", "-", f"{group}-{member}".lower())
    return name[:63].strip("-.") or "inferenceops"


def micro_time(at: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(
    name: str,
    group: str,
    member: str,
    duration: int,
    *,
    acquired: datetime,
    renewed: datetime,
    view: str | None,
    version: str | None = None,
    owner: Mapping[str, str] | None = None,
    left: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**MANAGED_BY, GROUP_LABEL: group},
        # Always sent, so that a PUT clears an old ack ("" is no view's hash).
        "annotations": {VIEW_ANNOTATION: view or ""},
    }
    if left:
        meta["annotations"][LEFT_ANNOTATION] = "true"
    if owner is not None:
        # Sent with every write: a PUT without it would drop it.
        meta["ownerReferences"] = [dict(owner)]
    if version is not None:
        meta["resourceVersion"] = version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": member,
            "leaseDurationSeconds": duration,
            "acquireTime": micro_time(acquired),
            "renewTime": micro_time(renewed),
        },
    }


class LeaseStore(Protocol):
    """Where a member's Lease is written; tests use an in-memory one."""

    async def create(self, body: Mapping[str, Any]) -> Mapping[str, Any]: ...

    async def get(self, name: str) -> Mapping[str, Any]: ...

    async def replace(self, body: Mapping[str, Any]) -> Mapping[str, Any]: ...

    async def delete(self, name: str) -> None: ...


class LeaseApi:
    """`LeaseStore` on the API server, each request bounded by `timeout` seconds: a renewal
    that cannot finish in time must not hold up the member's fencing (membership.py)."""

    def __init__(self, api: ApiSession, namespace: str, timeout: float) -> None:
        self._api = api
        self.namespace = namespace
        self._base = leases_path(namespace)
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def create(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return await self._send("POST", self._base, body)

    async def get(self, name: str) -> Mapping[str, Any]:
        return await self._send("GET", f"{self._base}/{name}", None)

    async def replace(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return await self._send("PUT", f"{self._base}/{body['metadata']['name']}", body)

    async def delete(self, name: str) -> None:
        await self._send("DELETE", f"{self._base}/{name}", None)

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any] | None
    ) -> Mapping[str, Any]:
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": "application/json"} if data else None
        async with self._api.session.request(
            method, self._api.url(path), data=data, headers=headers, timeout=self._timeout
        ) as response:
            await check(response, f"{method} lease {path.rsplit('/', 1)[-1]}")
            found: Mapping[str, Any] = await response.json(content_type=None)
            return found


def own_pod(lease_namespace: str, environ: Mapping[str, str] = os.environ) -> dict[str, str] | None:
    """An ownerReference to the Pod this copy runs in (POD_NAME, POD_UID and POD_NAMESPACE from
    the downward API), for its Lease: when the Pod object is deleted, Kubernetes' garbage
    collector deletes the Lease with it, even if the member could not (a `helm uninstall` removes
    the Lease Role before its pods stop). None unless the Lease is in the Pod's namespace: an
    owner named in another namespace counts as gone, and the Lease would be deleted at once."""
    name, uid = environ.get("POD_NAME"), environ.get("POD_UID")
    if not (name and uid) or environ.get("POD_NAMESPACE") != lease_namespace:
        return None
    return {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}


class HeldLease:
    """One member's own Lease: created (a stale one of the same name taken over), replaced with
    its resourceVersion on each renewal, recreated if deleted under it."""

    def __init__(
        self,
        store: LeaseStore,
        group: str,
        member: str,
        duration: int,
        clock: Clock,
        owner: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.group, self.member, self.duration = group, member, duration
        self.name = lease_name(group, member)
        self._owner = owner
        self._clock = clock
        self._acquired = clock.now()
        self._version: str | None = None
        #: The uid of the Lease last written: a deletion of an older one is not news.
        self.uid = ""

    async def write(self, view: str | None, *, create: bool = False, left: bool = False) -> str:
        """Create or renew it showing `view` (`left`: marked as left); the renewTime written."""
        body = lease_body(
            self.name,
            self.group,
            self.member,
            self.duration,
            acquired=self._acquired,
            renewed=self._clock.now(),
            view=view,
            version=self._version,
            owner=self._owner,
            left=left,
        )
        try:
            written = await (self._create(body) if create else self.store.replace(body))
        except ApiNotFound:  # deleted under us: hold a new one
            body["metadata"].pop("resourceVersion", None)
            written = await self.store.create(body)
        except ApiConflict:  # written meanwhile by someone else: ours again next time
            found = await self.store.get(self.name)
            self._version = str(found["metadata"].get("resourceVersion"))
            raise
        meta = written.get("metadata") or {}
        self._version = str(meta.get("resourceVersion") or "")
        self.uid = str(meta.get("uid") or "")
        return str(body["spec"]["renewTime"])

    async def _create(self, body: dict[str, Any]) -> Mapping[str, Any]:
        try:
            return await self.store.create(body)
        except ApiConflict:
            # A Lease of the same member id, left by a copy that did not stop cleanly.
            stale = await self.store.get(self.name)
            body["metadata"]["resourceVersion"] = stale["metadata"].get("resourceVersion")
            return await self.store.replace(body)
