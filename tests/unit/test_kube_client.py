"""kube.client.ApiSession: a rotated token is picked up on 401 (the request is retried once) and
on a timer, one re-login serves concurrent requests, embedded client certificates leave no files
behind, a 429 is retried after its (capped) Retry-After, and errors are typed. Against a small
aiohttp.web server on 127.0.0.1; the e2e suite rotates a real projected token in a real pod."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import kopf
import pytest
from aiohttp import web

from inferenceops.kube import client as kube_client
from inferenceops.kube.client import ApiSession
from inferenceops.kube.errors import (
    ApiError,
    ApiForbidden,
    ApiGone,
    ApiNotFound,
    ApiServerError,
    ApiTooManyRequests,
)
from tests.unit.local_http import serving


class TokenServer:
    """Accepts only `valid` as a bearer token; records the tokens it saw."""

    def __init__(self) -> None:
        self.valid = "token-1"
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.seen.append(token)
        if token != self.valid:
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        if request.method == "PATCH":
            return web.json_response({"echo": await request.text()})
        return web.json_response({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[tuple[TokenServer, str]]:
    fake = TokenServer()
    async with serving(fake.handle) as url:
        yield fake, url


class TokenFile:
    """What the kubelet does to a projected token: rewrites the file; login() reads it."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server
        self.token = token
        self.logins = 0

    def login(self) -> kopf.ConnectionInfo:
        self.logins += 1
        return kopf.ConnectionInfo(server=self.server, token=self.token, insecure=True)


async def test_rotated_token_is_reread_on_401_and_the_request_retried(
    server: tuple[TokenServer, str],
) -> None:
    fake, url = server
    source = TokenFile(url, "token-1")
    api = ApiSession(source.login(), relogin=source.login)
    try:
        assert await api.get_json("/api", {}) == {"ok": True}
        # Rotation: the file holds a new token and the old one is no longer accepted.
        source.token, fake.valid = "token-2", "token-2"
        async with api.session.patch(api.url("/x/status"), data='{"a":1}') as response:
            assert response.status == 200
            assert (await response.json())["echo"] == '{"a":1}'  # the body was sent again
        assert fake.seen[-2:] == ["token-1", "token-2"]
        assert source.logins == 2
        assert await api.get_json("/api", {}) == {"ok": True}
        assert fake.seen[-1] == "token-2" and source.logins == 2
    finally:
        await api.aclose()


async def test_concurrent_401s_log_in_once(server: tuple[TokenServer, str]) -> None:
    fake, url = server
    source = TokenFile(url, "token-1")
    api = ApiSession(source.login(), relogin=source.login)
    try:
        source.token, fake.valid = "token-2", "token-2"
        results = await asyncio.gather(*(api.get_json("/api", {}) for _ in range(10)))
        assert results == [{"ok": True}] * 10
        assert source.logins == 2  # the first login, then one re-login for all ten
    finally:
        await api.aclose()


async def test_credentials_refresh_on_a_timer(server: tuple[TokenServer, str]) -> None:
    fake, url = server
    source = TokenFile(url, "token-1")
    api = ApiSession(source.login(), relogin=source.login, refresh_every=0.05)
    try:
        source.token = "token-2"  # rotated, but the old one is still accepted
        fake.valid = "token-1"
        assert await api.get_json("/api", {}) == {"ok": True}
        await asyncio.sleep(0.1)
        fake.valid = "token-2"
        assert await api.get_json("/api", {}) == {"ok": True}
        assert fake.seen == ["token-1", "token-2"]  # no 401 needed: the timer re-read it
    finally:
        await api.aclose()


async def test_without_relogin_a_401_is_the_answer(server: tuple[TokenServer, str]) -> None:
    fake, url = server
    api = ApiSession(kopf.ConnectionInfo(server=url, token="stale", insecure=True))
    try:
        with pytest.raises(kube_client.ApiError, match="HTTP 401"):
            await api.get_json("/api", {})
        assert fake.seen == ["stale"]
    finally:
        await api.aclose()


async def test_a_failing_relogin_keeps_the_old_credentials(
    server: tuple[TokenServer, str],
) -> None:
    fake, url = server

    def broken() -> kopf.ConnectionInfo:
        raise kopf.LoginError("token file gone")

    api = ApiSession(kopf.ConnectionInfo(server=url, token="token-1"), relogin=broken)
    try:
        fake.valid = "token-2"
        with pytest.raises(kube_client.ApiError, match="HTTP 401"):
            await api.get_json("/api", {})
        fake.valid = "token-1"
        assert await api.get_json("/api", {}) == {"ok": True}
    finally:
        await api.aclose()


async def test_embedded_client_certificates_leave_no_files(tmp_path: Path) -> None:
    from tests.controlplane.localcp import _Certs

    certs = _Certs(tmp_path / "certs")
    before = set(os.listdir(tempfile.gettempdir()))
    info = kopf.ConnectionInfo(
        server="https://127.0.0.1:1",
        ca_data=certs.ca_pem,
        certificate_data=certs.admin_cert_pem,
        private_key_data=certs.admin_key_pem,
    )
    api = ApiSession(info)
    await api.aclose()
    assert set(os.listdir(tempfile.gettempdir())) - before == set()


class Scripted:
    """Answers with the scripted (status, headers, body) tuples in turn, then 200."""

    def __init__(self, *answers: tuple[int, dict[str, str], str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.answers:
            status, headers, body = self.answers.pop(0)
            return web.Response(status=status, headers=headers, text=body)
        return web.json_response({"ok": True})


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, ApiSession]]:
    fake = Scripted()
    async with serving(fake.handle) as url:
        api = ApiSession(kopf.ConnectionInfo(server=url, insecure=True))
        try:
            yield fake, api
        finally:
            await api.aclose()


async def test_429_is_retried_after_its_retry_after(
    scripted: tuple[Scripted, ApiSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, api = scripted
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(kube_client.asyncio, "sleep", sleep)
    fake.answers = [(429, {"Retry-After": "2"}, ""), (429, {"Retry-After": "1e9"}, "")]
    assert await api.get_json("/api", {}) == {"ok": True}
    assert fake.calls == 3
    assert slept == [2.0, kube_client.MAX_RETRY_AFTER]  # a huge Retry-After is capped


async def test_429_gives_up_after_a_few_retries(
    scripted: tuple[Scripted, ApiSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, api = scripted
    monkeypatch.setattr(kube_client, "MAX_RETRY_AFTER", 0.0)
    fake.answers = [(429, {"Retry-After": "1"}, "")] * 10
    with pytest.raises(ApiTooManyRequests):
        await api.get_json("/api", {})
    assert fake.calls == kube_client.RETRIES_ON_429 + 1


@pytest.mark.parametrize(
    ("status", "kind"),
    [(403, ApiForbidden), (404, ApiNotFound), (410, ApiGone), (503, ApiServerError)],
)
async def test_errors_are_typed_and_say_why(
    scripted: tuple[Scripted, ApiSession], status: int, kind: type[ApiError]
) -> None:
    fake, api = scripted
    body = '{"kind":"Status","reason":"Because","message":"the reason, in words"}'
    fake.answers = [(status, {}, body)]
    with pytest.raises(kind) as caught:
        await api.get_json("/api/v1/x", {})
    assert caught.value.status == status
    assert caught.value.reason == "Because"
    assert str(caught.value) == f"GET /api/v1/x: HTTP {status}: Because (the reason, in words)"
