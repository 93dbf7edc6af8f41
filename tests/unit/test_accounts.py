"""Per-account request budget: slots in order, one sleep per request, 429 pauses the account."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from inferenceops.accounts import AccountPool, AccountSettings, TokenBucket

from .support import ManualClock, VirtualClock


def test_burst_then_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=10, capacity=3, clock=clock)
    assert [round(bucket.reserve(), 3) for _ in range(5)] == [0, 0, 0, 0.1, 0.2]
    clock.advance(1.0)  # idle long enough to refill
    assert [round(bucket.reserve(), 3) for _ in range(4)] == [0, 0, 0, 0.1]


def test_a_pause_delays_everyone_and_resumes_without_a_burst() -> None:
    bucket = TokenBucket(rate=10, capacity=5, clock=ManualClock())
    bucket.pause(2.0)
    assert [round(bucket.reserve(), 3) for _ in range(3)] == [2.0, 2.1, 2.2]


async def test_each_waiting_request_sleeps_once() -> None:
    # Re-checking a shared count would wake every waiter per token: O(N^2) wake-ups for N
    # requests queued on one account (a FriendliAI team's details calls at start-up).
    class Counting(VirtualClock):
        reads = 0

        def monotonic(self) -> float:
            self.reads += 1
            return super().monotonic()

    clock = Counting()
    bucket = TokenBucket(rate=2000, capacity=1, clock=clock)
    started = clock.monotonic()
    await asyncio.gather(*(bucket.acquire() for _ in range(400)))
    assert clock.monotonic() - started == pytest.approx(399 / 2000)
    assert clock.reads <= 2 * 400 + 2, f"{clock.reads} clock reads for 400 requests"


async def test_a_429_pauses_the_whole_account_not_other_accounts() -> None:
    seen: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, loop.time()))
        if request.url.path == "/busy":
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(200, json={})

    pool = AccountPool(AccountSettings(), transport=httpx.MockTransport(handler))
    try:
        a = pool.get("runpod", ("runpod", "a")).client
        b = pool.get("runpod", ("runpod", "b")).client
        assert (await a.get("http://a.test/busy")).status_code == 429
        paused_at = loop.time()
        await asyncio.gather(a.get("http://a.test/ok"), b.get("http://b.test/ok"))
        waits = {host: t - paused_at for host, t in seen[1:]}
        assert waits["a.test"] == pytest.approx(1.0), "the same account waits out Retry-After"
        assert waits["b.test"] == 0, "another account does not"
    finally:
        await pool.aclose()


async def test_a_429_without_retry_after_pauses_one_second() -> None:
    answers = iter([429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(answers), json={})

    pool = AccountPool(transport=httpx.MockTransport(handler))
    try:
        client = pool.get("friendli", ("friendli", "t")).client
        await client.get("http://f.test/x")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.get("http://f.test/x")
        assert loop.time() - started == pytest.approx(1.0)
    finally:
        await pool.aclose()


async def test_idle_accounts_are_closed_and_reopened_on_demand() -> None:
    pool = AccountPool()
    try:
        old = pool.get("takeoff", ("takeoff", "http://gone.test")).client
        await asyncio.sleep(10)
        kept = pool.get("takeoff", ("takeoff", "http://busy.test")).client
        await pool.close_idle(idle_seconds=5.0)
        assert old.is_closed, "a deleted endpoint's account must not keep its sockets"
        assert not kept.is_closed
        fresh = pool.get("takeoff", ("takeoff", "http://gone.test")).client
        assert fresh is not old and not fresh.is_closed
    finally:
        await pool.aclose()


async def test_provider_calls_go_through_the_environment_proxy_except_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cluster that reaches providers through a proxy: HTTP_PROXY/HTTPS_PROXY/NO_PROXY are
    honoured (httpx ignores them once a transport is passed, and each account passes one)."""
    from aiohttp import web

    from inferenceops.providers import Target
    from inferenceops.providers.nsmodelserver import PROVIDER, NSModelServerConfig
    from tests.unit.local_http import serving

    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        # A forward proxy receives the absolute URL; this one answers as the NS server would.
        seen.append(f"{request.host}{request.path}")
        return web.json_response({"data": {"stage": "READY", "progress": 100}})

    async with serving(proxy) as proxy_url:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.setenv("NO_PROXY", "localhost,.internal.test,10.0.0.0/8")
        pool = AccountPool(AccountSettings(connect_timeout=1, read_timeout=2))
        try:

            async def poll(url: str) -> object:
                account = pool.get("nsModelServer", url)
                target = Target(key="k", config=NSModelServerConfig(url=url))
                return (await PROVIDER.observe(account.client, [target]))["k"]

            # ns.example.test does not resolve: only the proxy can answer for it.
            result = await poll("http://ns.example.test:8080")
            assert getattr(result, "provider_status", None) == "READY", result
            assert len(seen) == 1 and seen[0].startswith("ns.example.test"), seen
            assert seen[0].endswith("/status")
            # NO_PROXY hosts (a domain suffix, a CIDR) go direct, so they fail to connect here.
            for direct in ("http://ns.internal.test:8080", "http://10.255.255.1:9"):
                result = await poll(direct)
                assert getattr(result, "reason", None) is not None, result
            assert len(seen) == 1
        finally:
            await pool.aclose()


def test_the_default_rate_is_written_once() -> None:
    from inferenceops.cli import _parser

    args = _parser().parse_args(["run"])
    assert args.requests_per_second == AccountSettings().requests_per_second
    assert AccountSettings.at_rate(args.requests_per_second) == AccountSettings()
