"""List, then watch, one kind of object and hand each to its handler: one class for every watch
of the operator (InferenceEndpoints, Secrets, the provider objects, Namespaces; handlers.py).

Why not kopf's `on.event` handler: kopf runs every watch event through a per-object worker,
cause detection, loggers and a handler invocation. At start-up with 10,000 resources that is
20,000 events (the listing, then the echo of each first status write) and it was 36 % of the
operator's start-up CPU (docs/performance.md); the handler itself was 1.3 %. kopf keeps only
login, the probes, start-up and cleanup.

The protocol is the API server's: a paged LIST (`limit`/`continue`), then a WATCH from the
list's `resourceVersion` with bookmarks, re-opened from the last seen version when the server
ends it or the connection fails, and a fresh LIST only when the version is too old (410 Gone):
a network blip must not cost a re-list of every object. A watch that stays silent for longer
than `inactivity_timeout` (bookmarks arrive about once a minute) is taken for a half-open
connection and re-opened. Objects that disappeared while no watch was open are reported as
deleted after a re-list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from ..metrics import Metrics
from .client import ApiSession
from .errors import ApiError, ApiGone, check

__all__ = ["Informer", "ObjectHandler", "object_key"]

log = logging.getLogger(__name__)

#: `(event type, object)`: type None for an object of a (re-)listing, as kopf marks them;
#: "ADDED", "MODIFIED" or "DELETED" from the watch.
ObjectHandler = Callable[[str | None, Mapping[str, Any]], None]

_Key = tuple[str, str]


class _Expired(Exception):
    """The watch's resourceVersion is gone from the API server's history: list again."""


class Informer:
    def __init__(
        self,
        api: ApiSession,
        paths: Sequence[str],
        handler: ObjectHandler,
        *,
        params: Mapping[str, str] | None = None,
        page_size: int = 500,
        watch_seconds: int = 300,
        inactivity_timeout: float = 150.0,
        backoff_max: float = 30.0,
    ) -> None:
        self._api = api
        self._paths = list(paths)
        self._handler = handler
        self._params = dict(params or {})
        self._page_size = page_size
        #: Set once every path has been listed: the handler has seen every object once.
        self.synced = asyncio.Event()
        self._unsynced = set(self._paths)
        self._watch_seconds = watch_seconds
        self._inactivity_timeout = inactivity_timeout
        self._backoff_max = backoff_max
        #: Where the time of each list page, watch event and bookmark goes (the operator's).
        self.metrics: Metrics | None = None

    async def run(self) -> None:
        """Until cancelled; API errors are logged and retried with backoff."""
        await asyncio.gather(*(self._run_path(path) for path in self._paths))

    async def _run_path(self, path: str) -> None:
        known: set[_Key] = set()
        outage = _Outage(path)
        version: str | None = None
        while True:
            try:
                if version is None:
                    version = await self._relist(path, known)
                    outage.over()
                    self._unsynced.discard(path)
                    if not self._unsynced:
                        self.synced.set()
                version = await self._watch(path, version, known, outage)
            except asyncio.CancelledError:
                raise
            except (_Expired, ApiGone):
                log.info("watch of %s expired; listing again", path)
                version = None
            except (ApiError, aiohttp.ClientError, TimeoutError, ValueError) as err:
                # The version stays: the next watch resumes where this one stopped, and the
                # API server answers 410 if that is too old.
                failures = outage.failed(err)
                delay = min(self._backoff_max, 0.5 * 2**failures) * (0.5 + random.random() / 2)
                await asyncio.sleep(delay)

    async def relist(self, handler: ObjectHandler) -> None:
        """List every path once more, paged, handing each object to `handler` (a member
        taking over endpoints needs their full objects); the watches go on as they were."""
        for path in self._paths:
            async for page in self._pages(path):
                for item in page.get("items") or []:
                    handler(None, item)

    async def _pages(self, path: str) -> AsyncIterator[Mapping[str, Any]]:
        """The pages of one LIST of `path` (`limit`/`continue`)."""
        token: str | None = None
        while True:
            params = {**self._params, "limit": str(self._page_size)}
            if token:
                params["continue"] = token
            page = await self._api.get_json(path, params)
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    async def _relist(self, path: str, known: set[_Key]) -> str:
        seen: set[_Key] = set()
        version = ""
        async for page in self._pages(path):
            self._heard(path)
            for item in page.get("items") or []:
                seen.add(object_key(item))
                self._handler(None, item)
            version = str((page.get("metadata") or {}).get("resourceVersion") or version)
        for namespace, name in known - seen:
            self._handler("DELETED", {"metadata": {"namespace": namespace, "name": name}})
        known.clear()
        known.update(seen)
        return version

    async def _watch(self, path: str, version: str, known: set[_Key], outage: _Outage) -> str:
        """One watch request; returns the last resourceVersion seen when the server ends it."""
        params = {
            **self._params,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": version,
            "timeoutSeconds": str(self._watch_seconds),
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_read=self._inactivity_timeout)
        async with self._api.session.get(
            self._api.url(path), params=params, timeout=timeout
        ) as response:
            await check(response, f"watch {path}")
            outage.over()
            async for event in _lines(response.content):
                kind = event.get("type")
                obj = event.get("object") or {}
                self._heard(path)
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    code, message = int(obj.get("code") or 0), str(obj.get("message") or "")
                    raise ApiError(f"watch {path}", code, message)
                new_version = (obj.get("metadata") or {}).get("resourceVersion")
                if new_version:
                    version = str(new_version)
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    known.discard(object_key(obj))
                elif kind in ("ADDED", "MODIFIED"):
                    known.add(object_key(obj))
                else:
                    continue
                self._handler(kind, obj)
        return version

    def _heard(self, path: str) -> None:
        """The API server answered on `path`: a watch that goes quiet for long shows as an old
        timestamp (bookmarks arrive about once a minute even when nothing changes)."""
        if self.metrics is not None:
            resource = path.rsplit("/", 1)[-1]
            self.metrics.watch_last_event.labels(resource).set(time.time())


class _Outage:
    """Logs an API-server outage once when it starts and once when it ends, not per retry."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._failures = 0
        self._since = 0.0

    def failed(self, err: Exception) -> int:
        self._failures += 1
        if self._failures == 1:
            self._since = time.monotonic()
            log.warning("watch of %s failed (%s); retrying with backoff", self._path, err)
        else:
            log.debug("watch of %s failed again (%s)", self._path, err)
        return self._failures

    def over(self) -> None:
        if self._failures:
            log.warning(
                "watch of %s works again after %d failed attempts in %.0f s",
                self._path,
                self._failures,
                time.monotonic() - self._since,
            )
            self._failures = 0


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """JSON objects, one per line, of any length (aiohttp's readline caps a line at 128 KiB; an
    object's annotations alone may be 256 KiB)."""
    buffer = b""
    async for chunk in stream.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if buffer.strip():
        yield json.loads(buffer)


def object_key(obj: Mapping[str, Any]) -> _Key:
    """The (namespace, name) of an object as the API server hands it over; the handlers key
    what they keep by it too."""
    meta = obj.get("metadata") or {}
    # Interned: a few namespaces, thousands of objects each keeping its own copy otherwise.
    return sys.intern(str(meta.get("namespace", ""))), str(meta.get("name", ""))
