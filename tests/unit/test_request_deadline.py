"""Every provider request has a whole-request deadline (connect, headers and body), counted from
when it leaves the account's budget (issue 21, point 4a)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiohttp import web
from pydantic import BaseModel

from inferenceops.accounts import AccountPool, AccountSettings
from inferenceops.providers import ErrorReason, ProviderError
from inferenceops.providers.http import get_json

from .local_http import serving


class Anything(BaseModel):
    pass


async def test_a_body_trickling_a_byte_every_50_ms_times_out_at_the_deadline() -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        # Each byte restarts httpx's read timeout; only a whole-request deadline ends this.
        # The server gives up by itself after 3 s (60 bytes).
        for _ in range(60):
            await response.write(b" ")
            await asyncio.sleep(0.05)
        await response.write(b"{}")
        return response

    accounts = AccountPool(AccountSettings(request_deadline=0.3))
    try:
        async with serving(trickle) as url:
            client = accounts.get("nsModelServer", url).client
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(ProviderError) as caught:
                await get_json(client, url + "/status", Anything)
            took = loop.time() - started
            lane = accounts.lane("another account", url)  # url is scheme://host:port
    finally:
        await accounts.aclose()
    assert caught.value.reason is ErrorReason.TIMEOUT
    assert "0.3 s request deadline" in caught.value.message
    assert caught.value.message.startswith("no complete answer from http://127.0.0.1:")
    assert took == pytest.approx(0.3, abs=0.01), took
    # A request that hit its deadline marks its host (and account) slow: the slow lane.
    assert lane == "slow"


async def test_headers_that_never_come_time_out_at_the_default_15_s() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        return httpx.Response(200, json={})

    accounts = AccountPool(transport=httpx.MockTransport(hang))
    loop = asyncio.get_running_loop()
    try:
        client = accounts.get("nsModelServer", "a").client
        started = loop.time()
        with pytest.raises(ProviderError) as caught:
            await get_json(client, "http://hang.test:8080/status", Anything)
    finally:
        await accounts.aclose()
    assert caught.value.reason is ErrorReason.TIMEOUT
    assert loop.time() - started == pytest.approx(15.0)
    assert "http://hang.test:8080 within the 15 s request deadline" in caught.value.message


async def test_waiting_for_the_accounts_budget_does_not_count_against_the_deadline() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return httpx.Response(200, json={})

    # One request a second, no burst: the third request waits 2 s for its turn, far longer than
    # its 0.3 s deadline, and must still get its answer.
    settings = AccountSettings(requests_per_second=1.0, burst=1, request_deadline=0.3)
    accounts = AccountPool(settings, transport=httpx.MockTransport(answer))
    loop = asyncio.get_running_loop()
    try:
        client = accounts.get("nsModelServer", "a").client
        started = loop.time()
        results = await asyncio.gather(
            *(get_json(client, "http://ok.test/status", Anything) for _ in range(3)),
            return_exceptions=True,
        )
    finally:
        await accounts.aclose()
    assert all(isinstance(r, Anything) for r in results), results
    assert loop.time() - started >= 2.0


async def test_lanes_follow_how_a_hosts_requests_went_for_five_minutes() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow.test":
            await asyncio.sleep(6.0)  # slower than 5 s, within the deadline
        return httpx.Response(200, json={})

    accounts = AccountPool(transport=httpx.MockTransport(answer))
    try:
        client = accounts.get("nsModelServer", "acct").client
        assert accounts.lane("acct", "http://quick.test:80") == "new"
        await get_json(client, "http://quick.test/status", Anything)
        assert accounts.lane("acct", "http://quick.test:80") == "known"
        await get_json(client, "http://slow.test/status", Anything)
        assert accounts.lane("other", "http://slow.test:80") == "slow"
        # The account that saw a slow request is slow on any host (a second URL of its own).
        assert accounts.lane("acct", "http://quick.test:80") == "slow"
        await asyncio.sleep(301.0)
        assert accounts.lane("other", "http://slow.test:80") == "new"
        assert accounts.lane("acct", "http://quick.test:80") == "new"
    finally:
        await accounts.aclose()
