"""The scheduler's side of a membership change (handover.py, remote.py) and the budget division
between members (accounts.Account.use_share), on virtual time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool, AccountSettings
from inferenceops.kube.secrets import SecretCache
from inferenceops.remote import Others, budget_key
from inferenceops.scheduler import Scheduler
from inferenceops.timestamps import format_timestamp

from .support import FakeWriter, Provider, VirtualClock, body, ns_ready

Handler = Callable[[str | None, Mapping[str, Any]], None]


def ns_spec(name: str) -> dict[str, Any]:
    return {"pollInterval": "30s", "nsModelServer": {"url": f"http://{name}.test:8080"}}


def polled(provider: Provider) -> list[str]:
    return [r.url.host.removesuffix(".test") for r in provider.requests]


class Listing:
    """The endpoints as the API server would list them again (Informer.relist)."""

    def __init__(self) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}
        self.lists = 0

    async def relist(self, handler: Handler) -> None:
        self.lists += 1
        for item in self.bodies.values():
            handler(None, item)


@pytest.fixture
async def member(
    provider: Provider, writer: FakeWriter, clock: VirtualClock
) -> AsyncIterator[tuple[Scheduler, set[str], Listing]]:
    owned: set[str] = set()
    listing = Listing()
    accounts = AccountPool(transport=httpx.MockTransport(provider), clock=clock)
    sched = Scheduler(writer, SecretCache(), accounts, clock=clock, owns=owned.__contains__)
    sched.handover.relist = listing.relist
    task = asyncio.create_task(sched.run())
    try:
        yield sched, owned, listing
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sched.stop()
        await accounts.aclose()


async def test_only_owned_endpoints_are_polled_and_others_kept_by_identity(
    member: tuple[Scheduler, set[str], Listing], provider: Provider
) -> None:
    sched, owned, _ = member
    owned |= {"ml/a"}
    sched.upsert(body("a", ns_spec("a")))
    sched.upsert(body("b", ns_spec("b")))
    await asyncio.sleep(1)
    assert polled(provider) == ["a"]
    assert len(sched) == 1
    others = sched.handover.others
    assert others.remote_keys() == [("ml", "b")]
    assert others.same_object(("ml", "b"), "uid-b")
    assert not others.same_object(("ml", "b"), "uid-other")
    assert others.get(("ml", "b")) is None, "no record of one naming no provider object"


async def test_release_stops_polling_and_waits_for_the_write_in_flight(
    member: tuple[Scheduler, set[str], Listing], provider: Provider, writer: FakeWriter
) -> None:
    sched, owned, _ = member
    owned |= {"ml/a", "ml/b"}
    gate = asyncio.Event()

    async def slow_write() -> None:
        await gate.wait()

    writer.delay = slow_write
    sched.upsert(body("a", ns_spec("a")))
    sched.upsert(body("b", ns_spec("b")))
    await asyncio.sleep(1)  # both polled; their first writes wait at the gate
    owned.discard("ml/a")
    release = asyncio.create_task(sched.handover.release())
    await asyncio.sleep(0.5)
    assert not release.done(), "a release waits for the in-flight status write of what it gives up"
    gate.set()
    assert await release == 1
    writer.delay = None
    before = len(provider.requests)
    await asyncio.sleep(120)
    assert set(polled(provider)[before:]) == {"b"}, "a is not polled after it was given up"
    assert ("ml", "a") in sched.handover.others


async def test_release_is_bounded_by_its_timeout(
    member: tuple[Scheduler, set[str], Listing], writer: FakeWriter
) -> None:
    sched, owned, _ = member
    owned |= {"ml/a"}

    async def never() -> None:
        await asyncio.Event().wait()

    writer.delay = never
    sched.upsert(body("a", ns_spec("a")))
    await asyncio.sleep(1)
    owned.clear()
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await sched.handover.release() == 1
    assert loop.time() - start == pytest.approx(sched.settings.release_timeout, abs=0.1)


async def test_acquire_lists_once_and_polls_at_the_due_time(
    member: tuple[Scheduler, set[str], Listing], provider: Provider, clock: VirtualClock
) -> None:
    sched, owned, listing = member
    # Fresh: its previous owner polled it 10 s ago (30 s interval): due in 20 s, not now.
    fresh = body(
        "fresh",
        ns_spec("fresh"),
        status={
            "phase": "Running",
            "observedGeneration": 1,
            "lastPollTime": format_timestamp(clock.now() - timedelta(seconds=10)),
        },
    )
    never = body("never", ns_spec("never"))
    for item in (fresh, never):
        listing.bodies[item["metadata"]["name"]] = item
        sched.upsert(item)
    await asyncio.sleep(1)
    assert polled(provider) == [] and len(sched) == 0
    owned |= {"ml/fresh", "ml/never"}
    assert await sched.handover.acquire() == 2
    assert listing.lists == 1, "one listing for every key taken, not one GET each"
    await asyncio.sleep(1)
    assert polled(provider) == ["never"]
    await asyncio.sleep(20)
    assert polled(provider) == ["never", "fresh"]
    assert sched.handover.others.remote_keys() == []


def test_budget_divided_by_the_share_of_the_accounts_endpoints() -> None:
    others = Others(changed=lambda: None)
    account = ("ml", (("runpod", "https://api.runpod.test", ()),))
    others.count(("ml", "a"), account, owned=True)
    for name in ("b", "c", "d"):
        others.count(("ml", name), account, owned=False)
    assert others.share(("ml", "a")) == pytest.approx(0.25)
    others.forget(("ml", "b"))
    assert others.share(("ml", "a")) == pytest.approx(1 / 3)


async def test_account_rate_follows_the_share_with_a_floor(clock: VirtualClock) -> None:
    pool = AccountPool(AccountSettings.at_rate(40), transport=httpx.MockTransport(ns_ready))
    try:
        account = pool.get("runpod", "key", share=0.25)
        assert account.bucket.rate == pytest.approx(10)
        assert account.bucket.capacity == pytest.approx(20)
        # One endpoint among thousands is not starved: at least 1 request per second.
        account = pool.get("runpod", "key", share=0.0001)
        assert account.bucket.rate == pytest.approx(1.0)
        account = pool.get("runpod", "key", share=1.0)
        assert account.bucket.rate == pytest.approx(40)
        small = pool.get("runpod", "small", requests_per_second=0.5, share=0.1)
        assert small.bucket.rate == pytest.approx(0.5)
    finally:
        await pool.aclose()


async def test_provider_users_count_the_endpoints_other_members_poll(
    member: tuple[Scheduler, set[str], Listing],
) -> None:
    sched, _, _ = member
    acct = ("InferenceProvider", "ml", "acct")
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    sched.upsert(body("b", {"providerRef": {"name": "acct"}}, status=ready))
    assert sched.provider_users(acct) == [ready]
    sched.forget("ml", "b")
    assert sched.provider_users(acct) == []


def test_a_status_write_of_another_members_endpoint_only_moves_its_ready() -> None:
    changes: list[int] = []
    others = Others(lambda: changes.append(1))
    key, spec = ("ml", "b"), {"providerRef": {"name": "acct"}}
    others.remember(key, body("b", spec))
    first = others.get(key)
    assert first is not None and first.provider == ("InferenceProvider", "ml", "acct")
    others.remember(key, body("b", spec))
    assert others.get(key) is first and len(changes) == 1, "an unchanged object changes nothing"
    others.remember(
        key, body("b", spec, status={"conditions": [{"type": "Ready", "status": "True"}]})
    )
    moved = others.get(key)
    assert moved is not None and (moved.ready, moved.provider) == ("True", first.provider)
    assert len(changes) == 2
    others.remember(key, body("b", {"providerRef": {"name": "other"}}, generation=2))
    edited = others.get(key)
    assert edited is not None and edited.provider == ("InferenceProvider", "ml", "other")
    others.remember(key, body("b", ns_spec("b"), generation=3))
    assert others.get(key) is None and key in others, "no record once it names no object"


def test_budget_keys_are_kept_once_per_account() -> None:
    """Each event's spec builds its budget key anew; a member keeps one copy per account."""
    others = Others(lambda: None)
    for name in ("b", "c"):
        others.remember(("ml", name), body(name, ns_spec("shared")))
    assert others.share(("ml", "b")) == pytest.approx(0.5), "counted: neither polled here"
    kept = {id(b.key) for b in others._budget_of.values()}
    assert len(kept) == 1


def test_an_inventory_counts_as_watched_the_endpoints_other_members_poll() -> None:
    """A provider object's inventory is listed by the member writing its status: the remote ids
    of the endpoints other members poll must still count as watched, not unmanaged."""
    acct = ("InferenceProvider", "ml", "acct")
    others = Others(lambda: None)
    spec = {"providerRef": {"name": "acct"}, "friendli": {"endpointId": "ep-7"}}
    others.remember(("ml", "b"), body("b", spec))
    others.remember(("ml", "c"), body("c", {"friendli": {"endpointId": "ep-8"}}))
    assert others.provider_specs(acct) == [{"spec": {"friendli": {"endpointId": "ep-7"}}}]
    others.remember(("ml", "b"), body("b", spec, status={"conditions": []}))
    moved = others.get(("ml", "b"))
    assert moved is not None and moved.declared == ("friendli", "ep-7"), "kept across writes"


def test_an_unchanged_event_does_not_replace_the_key_kept() -> None:
    """Each watch event brings its own key tuple and name string; keeping the latest would pin
    one of each per endpoint another member polls, inside the memory its event was parsed
    into. The first one seen stays."""
    others = Others(lambda: None)
    first = ("ml", "b")
    others.remember(first, body("b", ns_spec("b")))
    later = ("ml", "".join(["b"]))
    others.remember(later, body("b", ns_spec("b"), generation=2))
    kept = next(k for k in others._budget_of if k == first)
    assert kept is first
    others.count(later, budget_key("ml", ns_spec("b")), owned=True)
    assert others.share(first) == 1.0, "taken over here: counted as owned"
