"""Credentials from Secrets, kept in memory by a watch so a poll costs no Secret read.

Every Secret of the watched namespaces passes through `observe` (the Secret informer's handler),
but only the ones some InferenceEndpoint references are decoded and held: memory does not grow
with a cluster's unrelated Secrets (TLS certificates, tokens), and the process does not hold
their material. Of the others only the name is kept, so an endpoint that starts referencing a
Secret the watch has already passed by gets it with one GET (`fetch`) instead of a re-list.

Helm release and service-account-token Secrets are filtered out server-side (see handlers).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from ..providers import SecretKeyRef
from .client import ApiSession
from .errors import ApiError, ApiNotFound
from .informer import object_key

__all__ = ["SecretCache", "SecretMissing", "SecretPending", "get_secret"]

log = logging.getLogger(__name__)

_Key = tuple[str, str]
#: How often a wanted Secret is read before its endpoints are told it is missing.
READ_ATTEMPTS = 3
#: Returns a Secret object, or None when it does not exist.
Fetch = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]


class SecretMissing(LookupError):
    """The referenced Secret or key does not exist (yet); the message says which."""


class SecretPending(SecretMissing):
    """The Secret exists and is being read; `SecretCache`'s change callback fires when it is."""


def _decode(data: Mapping[str, Any] | None) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for key, value in (data or {}).items():
        try:
            decoded[key] = base64.b64decode(str(value), validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            continue  # not text: cannot be an HTTP credential
    return decoded


class SecretCache:
    """The Secrets endpoints reference, decoded. With `fetch` (the operator), it holds only the
    wanted ones, reads a wanted one with `fetch` when the watch has passed it by, and calls
    `changed(namespace, name)` when a wanted one changes; without (`inferenceops probe`, tests:
    no watch), it holds every Secret it is given."""

    def __init__(
        self,
        fetch: Fetch | None = None,
        changed: Callable[[str, str], None] = lambda namespace, name: None,
    ) -> None:
        self._data: dict[_Key, dict[str, str]] = {}
        self._exists: set[_Key] = set()
        self._wanted: Counter[_Key] = Counter()
        self._pending: set[_Key] = set()
        self._fetch = fetch
        self._changed = changed
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Secrets held (decoded)."""
        return len(self._data)

    # --- what references a Secret (the scheduler) -------------------------------------------

    def want(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._wanted[key] += 1
        if self._wanted[key] == 1 and key in self._exists and key not in self._data:
            self._load(key)

    def unwant(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._wanted[key] -= 1
        if self._wanted[key] <= 0:
            del self._wanted[key]
            if self._fetch is not None:
                self._data.pop(key, None)

    # --- what the watch sees --------------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """A Secret of a listing (type None) or a watch event (`kube.informer.ObjectHandler`)."""
        namespace, name = object_key(body)
        if event_type == "DELETED":
            self.delete(namespace, name)
        else:
            self.put(namespace, name, body.get("data"))

    def put(self, namespace: str, name: str, data: Mapping[str, Any] | None) -> None:
        key = (namespace, name)
        self._exists.add(key)
        if self._fetch is not None and not self._wanted[key]:
            return
        decoded = _decode(data)
        if self._data.get(key) != decoded:
            self._data[key] = decoded
            self._changed(namespace, name)

    def delete(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._exists.discard(key)
        if self._data.pop(key, None) is not None:
            self._changed(namespace, name)

    # --- what a poll reads ----------------------------------------------------------------

    def lookup(self, namespace: str, ref: SecretKeyRef) -> str:
        data = self._data.get((namespace, ref.name))
        if data is None:
            if (namespace, ref.name) in self._pending:
                raise SecretPending(f"Secret {namespace}/{ref.name} is being read")
            raise SecretMissing(f"Secret {namespace}/{ref.name} not found")
        value = data.get(ref.key)
        if not value:
            raise SecretMissing(
                f"Secret {namespace}/{ref.name} has no key {ref.key!r}"
                if value is None
                else f"Secret {namespace}/{ref.name} key {ref.key!r} is empty"
            )
        return value

    # --- reading one Secret ---------------------------------------------------------------

    def _load(self, key: _Key) -> None:
        if self._fetch is None or key in self._pending:
            return
        self._pending.add(key)
        task = asyncio.get_running_loop().create_task(self._read(key, self._fetch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, key: _Key, fetch: Fetch) -> None:
        body: Mapping[str, Any] | None = None
        try:
            for attempt in range(READ_ATTEMPTS):
                try:
                    body = await fetch(*key)
                    break
                except (ApiError, aiohttp.ClientError, TimeoutError) as err:
                    log.warning("reading Secret %s/%s failed: %s", *key, err)
                    if attempt + 1 < READ_ATTEMPTS:
                        await asyncio.sleep(2.0**attempt)
        finally:
            self._pending.discard(key)
        if body is None:
            self._exists.discard(key)
        elif self._wanted[key]:
            self._data[key] = _decode(body.get("data"))
        self._changed(*key)  # its endpoints poll now, or report the Secret missing


async def get_secret(api: ApiSession, namespace: str, name: str) -> Mapping[str, Any] | None:
    try:
        body = await api.get_json(f"/api/v1/namespaces/{namespace}/secrets/{name}", {})
    except ApiNotFound:
        return None
    return body if isinstance(body, Mapping) else None
