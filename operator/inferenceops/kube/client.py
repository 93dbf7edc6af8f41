"""A client for the API server, built from the credentials kopf logged in with.

kopf offers no public call to patch an object outside a handler, so status and Events go through
this client; using kopf's ConnectionInfo keeps one login path for both.

A 429 (API Priority and Fairness) is retried after its Retry-After, capped, a few times. Errors
are typed (kube/errors.py).

Credentials are not read once: a projected service-account token is rewritten by the kubelet
about every hour and the old one stops being accepted. As client-go does, the session logs in
again (re-reading the token file, re-running an exec plugin) every `refresh_every` seconds, and
at once when the API server answers 401, then retries that request once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import kopf

from ..clock import SYSTEM_CLOCK, Clock
from ..providers.http import parse_retry_after
from .errors import ApiError, check

__all__ = ["ApiError", "ApiSession", "Login", "login", "own_namespace"]

log = logging.getLogger(__name__)

#: Returns fresh credentials; blocking (it reads files, may run a kubeconfig exec plugin).
Login = Callable[[], kopf.ConnectionInfo]

#: How often a request refused with 429 is sent again, and the longest pause honoured per retry:
#: the API server's Retry-After is usually 1 s; a longer one is capped so a write is never held
#: for long (the caller retries later anyway).
RETRIES_ON_429 = 3
MAX_RETRY_AFTER = 10.0


def login(**kwargs: Any) -> kopf.ConnectionInfo:
    """In-cluster first, then the kubeconfig (KUBECONFIG or ~/.kube/config), through the
    `kubernetes` client: in a pod it reaches the API server at KUBERNETES_SERVICE_HOST/PORT as
    client-go does (kopf's own in-cluster login needs cluster DNS for kubernetes.default.svc),
    and it runs kubeconfig exec credential plugins."""
    kwargs.setdefault("logger", log)
    info = kopf.login_via_client(**kwargs)
    if info is None:
        raise kopf.LoginError("no in-cluster service account and no kubeconfig found")
    return info


#: Where the kubelet puts the pod's namespace next to its service-account token.
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def own_namespace(service_account_namespace: str = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The namespace the operator runs in: its pod's (the service-account namespace file), else
    the current kubeconfig context's namespace, else `default` (what kubectl would use)."""
    try:
        with open(service_account_namespace, encoding="utf-8") as f:
            namespace = f.read().strip()
    except OSError:
        namespace = ""
    if namespace:
        return namespace
    try:
        from kubernetes import config

        # KUBECONFIG as it is now: the client read it once, when it was imported.
        _, active = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            os.environ.get("KUBECONFIG") or None
        )
    except Exception:  # no kubeconfig, or one the client cannot read: not ours to judge here
        active = None
    context = (active or {}).get("context") or {}
    return str(context.get("namespace") or "default")


def _pem(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if raw.lstrip().startswith(b"-----") else base64.b64decode(raw)


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=os.fsdecode(info.ca_path))
    elif info.ca_data:
        context.load_verify_locations(cadata=_pem(info.ca_data).decode())
    cert = os.fsdecode(info.certificate_path) if info.certificate_path else None
    key = os.fsdecode(info.private_key_path) if info.private_key_path else None
    if not (info.certificate_data or info.private_key_data):
        if cert:
            context.load_cert_chain(cert, key)
        return context
    # The ssl module loads client certificates only from files: write embedded ones to a
    # private directory just long enough to load them.
    with tempfile.TemporaryDirectory(prefix="inferenceops-") as scratch:
        if info.certificate_data:
            cert = _write(scratch, "client.crt", _pem(info.certificate_data))
        if info.private_key_data:
            key = _write(scratch, "client.key", _pem(info.private_key_data))
        if cert:
            context.load_cert_chain(cert, key)
    return context


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _authorization(info: kopf.ConnectionInfo) -> str | None:
    if info.token:
        return f"{info.scheme or 'Bearer'} {info.token}"
    if info.username:
        return aiohttp.BasicAuth(info.username, info.password or "").encode()
    return None


class ApiSession:
    """The API server at `server`, over an aiohttp session (kopf's own HTTP library).

    aiohttp, not httpx, for this one client: a status patch through httpx cost ~2 ms of CPU
    against ~0.15 ms through aiohttp (bench/, start-up of 10,000 resources is 10,000 patches).
    Provider requests stay on httpx, whose errors the adapters map.

    `relogin` (e.g. `login`) makes the credentials refreshable; without it the session keeps
    the ones it was built with.
    """

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        relogin: Login | None = None,
        refresh_every: float = 60.0,
        max_connections: int = 16,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._authorization = _authorization(info)
        self._relogin = relogin
        self._refresh_every = refresh_every
        self._clock = clock
        self._logged_in_at = clock.monotonic()
        self._relogged_at = float("-inf")
        self._refreshing = asyncio.Lock()
        self.server = (info.server or "").rstrip("/")
        self.session = aiohttp.ClientSession(
            headers={"User-Agent": "inferenceops/0.1", "Accept": "application/json"},
            connector=aiohttp.TCPConnector(limit=max_connections, ssl=_ssl_context(info)),
            timeout=aiohttp.ClientTimeout(total=30.0, connect=10.0),
            raise_for_status=False,
            middlewares=(self._retry_too_many_requests, self._authorize),
        )

    def url(self, path: str) -> str:
        return f"{self.server}{path}"

    async def get_json(self, path: str, params: Mapping[str, str]) -> Any:
        async with self.session.get(self.url(path), params=params) as response:
            await check(response, f"GET {path}")
            return await response.json(content_type=None)

    async def aclose(self) -> None:
        await self.session.close()

    async def _retry_too_many_requests(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        for _ in range(RETRIES_ON_429):
            response = await handler(request)
            if response.status != 429:
                return response
            delay = _retry_after(response.headers.get("Retry-After"))
            response.release()
            log.info("the API server asked to retry %s in %.1f s (429)", request.url.path, delay)
            await asyncio.sleep(delay)
        return await handler(request)

    async def _authorize(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if self._relogin and self._clock.monotonic() - self._logged_in_at >= self._refresh_every:
            await self._refresh(self._authorization)
        sent_with = self._set_authorization(request)
        response = await handler(request)
        if response.status != 401 or self._relogin is None:
            return response
        response.release()
        await self._refresh(sent_with)
        self._set_authorization(request)
        return await handler(request)

    def _set_authorization(self, request: aiohttp.ClientRequest) -> str | None:
        current = self._authorization
        if current is not None:
            request.headers["Authorization"] = current
        return current

    async def _refresh(self, stale: str | None) -> None:
        """Log in again, once for all the requests that found `stale` credentials."""
        assert self._relogin is not None
        async with self._refreshing:
            if self._authorization != stale or self._clock.monotonic() - self._relogged_at < 1.0:
                return  # another request refreshed them just now
            self._relogged_at = self._clock.monotonic()
            try:
                info = await asyncio.to_thread(self._relogin)
            except Exception as err:  # keep the old credentials; the request reports the 401
                log.warning("logging in to the API server again failed: %s", type(err).__name__)
                self._logged_in_at = self._clock.monotonic()
                return
            self._authorization = _authorization(info)
            self._logged_in_at = self._clock.monotonic()


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header, 1 s when it says nothing usable, capped."""
    seconds = parse_retry_after(value, limit=MAX_RETRY_AFTER)
    return 1.0 if seconds is None else seconds
