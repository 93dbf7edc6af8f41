"""Per-account request budget: slots in order, one sleep per request, 429 pauses the account."""

from __future__ import annotations

import asyncio
import time

import httpx

from inferenceops.accounts import AccountPool, AccountSettings, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, capacity=3, clock=clock)
    assert [round(bucket.reserve(), 3) for _ in range(5)] == [0, 0, 0, 0.1, 0.2]
    clock.now += 1.0  # idle long enough to refill
    assert [round(bucket.reserve(), 3) for _ in range(4)] == [0, 0, 0, 0.1]


def test_a_pause_delays_everyone_and_resumes_without_a_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, capacity=5, clock=clock)
    bucket.pause(2.0)
    assert [round(bucket.reserve(), 3) for _ in range(3)] == [2.0, 2.1, 2.2]


async def test_each_waiting_request_sleeps_once() -> None:
    # Re-checking a shared count would wake every waiter per token: O(N^2) wake-ups for N
    # requests queued on one account (a FriendliAI team's details calls at start-up).
    calls = 0

    def counting() -> float:
        nonlocal calls
        calls += 1
        return time.monotonic()

    bucket = TokenBucket(rate=2000, capacity=1, clock=counting)
    started = time.monotonic()
    await asyncio.gather(*(bucket.acquire() for _ in range(400)))
    assert time.monotonic() - started >= 399 / 2000 * 0.9
    assert calls <= 2 * 400, f"{calls} clock reads for 400 requests"


async def test_a_429_pauses_the_whole_account_not_other_accounts() -> None:
    seen: list[tuple[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, time.monotonic()))
        if request.url.path == "/busy":
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(200, json={})

    pool = AccountPool(AccountSettings(), transport=httpx.MockTransport(handler))
    try:
        a = pool.get("runpod", ("runpod", "a")).client
        b = pool.get("runpod", ("runpod", "b")).client
        assert (await a.get("http://a.test/busy")).status_code == 429
        paused_at = time.monotonic()
        await asyncio.gather(a.get("http://a.test/ok"), b.get("http://b.test/ok"))
        waits = {host: t - paused_at for host, t in seen[1:]}
        assert waits["a.test"] >= 0.95, "the same account waits out Retry-After"
        assert waits["b.test"] < 0.5, "another account does not"
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
        started = time.monotonic()
        await client.get("http://f.test/x")
        assert time.monotonic() - started >= 0.95
    finally:
        await pool.aclose()


async def test_idle_accounts_are_closed_and_reopened_on_demand() -> None:
    pool = AccountPool()
    try:
        old = pool.get("takeoff", ("takeoff", "http://gone.test")).client
        kept = pool.get("takeoff", ("takeoff", "http://busy.test")).client
        pool.get("takeoff", ("takeoff", "http://gone.test")).last_used -= 10.0
        await pool.close_idle(idle_seconds=5.0)
        assert old.is_closed, "a deleted endpoint's account must not keep its sockets"
        assert not kept.is_closed
        fresh = pool.get("takeoff", ("takeoff", "http://gone.test")).client
        assert fresh is not old and not fresh.is_closed
    finally:
        await pool.aclose()
