"""membership.py on virtual time, with Leases in memory (a watch that delivers each write to every
member a little later): rendezvous ownership, the ack-before-acquire hand-over that never lets two
members own a key at once (a join, a graceful leave, a crash, a partition), fencing and liveness."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from inferenceops.kube.errors import ApiConflict, ApiForbidden, ApiNotFound
from inferenceops.kube.leases import own_pod
from inferenceops.membership import Membership, MembershipError, owner
from inferenceops.metrics import Metrics

from .support import VirtualClock

KEYS = [f"ml/ep-{i}" for i in range(60)]
DURATION = 15
#: How late a write reaches the other members' watches.
WATCH_LATENCY = 0.05


class Leases:
    """Leases of one namespace in memory; every write is seen by every watcher, a bit later."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.watchers: list[Callable[[str | None, Mapping[str, Any]], None]] = []
        self.forbidden = False
        self.namespace = "ops"

    def _deliver(self, kind: str, body: Mapping[str, Any]) -> None:
        snapshot = copy.deepcopy(dict(body))
        loop = asyncio.get_running_loop()
        for watcher in list(self.watchers):
            loop.call_later(WATCH_LATENCY, watcher, kind, snapshot)

    def _store(self, body: Mapping[str, Any], kind: str) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(dict(body))
        stored["metadata"]["resourceVersion"] = str(self.version)
        old = self.objects.get(stored["metadata"]["name"])
        stored["metadata"]["uid"] = old["metadata"]["uid"] if old else f"uid-{self.version}"
        self.objects[stored["metadata"]["name"]] = stored
        self._deliver(kind, stored)
        return copy.deepcopy(stored)

    async def create(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        if self.forbidden:
            raise ApiForbidden("POST lease", 403)
        if body["metadata"]["name"] in self.objects:
            raise ApiConflict("POST lease", 409)
        return self._store(body, "ADDED")

    async def get(self, name: str) -> Mapping[str, Any]:
        if name not in self.objects:
            raise ApiNotFound("GET lease", 404)
        return copy.deepcopy(self.objects[name])

    async def replace(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        name = body["metadata"]["name"]
        if name not in self.objects:
            raise ApiNotFound("PUT lease", 404)
        if body["metadata"].get("resourceVersion") != self.objects[name]["metadata"].get(
            "resourceVersion"
        ):
            raise ApiConflict("PUT lease", 409)
        return self._store(body, "MODIFIED")

    async def delete(self, name: str) -> None:
        if name not in self.objects:
            raise ApiNotFound("DELETE lease", 404)
        self._deliver("DELETED", self.objects.pop(name))


class CutOff:
    """One member's way to the Leases, which the test can cut (a partition)."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.namespace = leases.namespace
        self.cut = False
        #: The watch alone is down (its events are lost until it comes back).
        self.deaf = False

    async def _check(self) -> None:
        if self.cut:
            await asyncio.sleep(1.0)
            raise OSError("the API server is unreachable")

    async def create(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        await self._check()
        return await self.leases.create(body)

    async def get(self, name: str) -> Mapping[str, Any]:
        await self._check()
        return await self.leases.get(name)

    async def replace(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        await self._check()
        return await self.leases.replace(body)

    async def delete(self, name: str) -> None:
        await self._check()
        await self.leases.delete(name)


class Member:
    def __init__(self, leases: Leases, name: str, owner: Mapping[str, str] | None = None) -> None:
        self.way = CutOff(leases)
        self.metrics = Metrics()
        self.membership = Membership(
            self.way,
            "g",
            name,
            duration=DURATION,
            metrics=self.metrics,
            clock=VirtualClock(),
            owner=owner,
        )
        self.leases = leases
        self.task: asyncio.Task[None] | None = None

    def watch(self, kind: str | None, body: Mapping[str, Any]) -> None:
        if not self.way.cut and not self.way.deaf:
            self.membership.observe(kind, body)

    def reconnect(self) -> None:
        """The watch is back: it resumes (or lists again) and so shows every Lease as it is."""
        self.way.cut = self.way.deaf = False
        for body in self.leases.objects.values():
            self.membership.observe("MODIFIED", copy.deepcopy(body))

    async def start(self) -> None:
        for body in self.leases.objects.values():  # the informer's listing
            self.membership.observe(None, copy.deepcopy(body))
        self.leases.watchers.append(self.watch)
        await self.membership.start()
        self.task = asyncio.create_task(self.membership.run())

    async def crash(self) -> None:
        assert self.task is not None
        self.leases.watchers.remove(self.watch)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def owned(self) -> set[str]:
        return {k for k in KEYS if self.membership.owns(k)}


CHECKS: list[Overlaps] = []


class Overlaps:
    """Checks, every 50 ms of virtual time, that no key is owned by two running members."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.found: list[tuple[float, str]] = []
        self.task = asyncio.create_task(self._run())
        CHECKS.append(self)

    async def _run(self) -> None:
        while True:
            owners: dict[str, int] = {}
            for m in self.members:
                for k in m.owned():
                    owners[k] = owners.get(k, 0) + 1
            now = asyncio.get_running_loop().time()
            self.found += [(now, k) for k, n in owners.items() if n > 1]
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _covered(members: list[Member]) -> bool:
    owned = [k for m in members for k in m.owned()]
    return len(owned) == len(KEYS) and set(owned) == set(KEYS)


async def _until(what: Callable[[], bool], within: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not what():
        overlaps = [found for check in CHECKS for found in check.found]
        assert not overlaps, f"owned by two members at once: {overlaps[:3]}"
        if loop.time() - start > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.1)
    return loop.time() - start


def test_rendezvous_moves_about_one_nth() -> None:
    keys = [f"ns/ep-{i}" for i in range(3000)]
    three = ["a", "b", "c"]
    four = [*three, "d"]
    before = {k: owner(three, k) for k in keys}
    after = {k: owner(four, k) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    # Only to the newcomer, about a quarter of them; the others keep theirs.
    assert all(after[k] == "d" for k in moved)
    assert 0.2 < len(moved) / len(keys) < 0.3
    counts = [sum(1 for k in keys if before[k] == m) for m in three]
    assert all(800 < c < 1200 for c in counts), counts
    assert owner([], "x") is None


async def test_join_leave_crash_and_partition_never_overlap() -> None:
    leases = Leases()
    everyone: list[Member] = []
    try:
        await _scenario(leases, everyone)
    finally:
        for check in CHECKS:
            await check.stop()
        for m in everyone:
            if m.task is not None and not m.task.done():
                m.task.cancel()
                await asyncio.gather(m.task, return_exceptions=True)


async def _scenario(leases: Leases, everyone: list[Member]) -> None:
    members = [Member(leases, n) for n in ("a", "b", "c")]
    everyone += members
    for m in members:
        await m.start()
    check = Overlaps(members)
    await _until(lambda: _covered(members) and all(m.owned() for m in members), DURATION)
    shares = [len(m.owned()) for m in members]
    assert all(8 < s < 32 for s in shares), shares

    # A fourth joins: its share within one lease period.
    d = Member(leases, "d")
    everyone.append(d)
    members.append(d)
    await d.start()
    join = await _until(lambda: _covered(members) and bool(d.owned()), DURATION)
    assert join < DURATION

    # A graceful leave: the Lease is deleted, the others take over at once.
    await members[0].crash()  # stops its loop; leave() below releases and deletes
    await members[0].membership.leave()
    left = members.pop(0)
    assert not left.owned()
    handover = await _until(lambda: _covered(members), DURATION)
    assert handover < 1.0

    # A crash: its Lease stays; the others take over after it expires.
    crashed = members.pop(0)
    await crashed.crash()
    failover = await _until(lambda: _covered(members), 2 * DURATION)
    assert DURATION * 2 / 3 < failover <= DURATION + 1

    # A partition: the cut member stops owning anything before the others take over.
    cut = members[0]
    cut.way.cut = True
    loop = asyncio.get_running_loop()
    cut_at = loop.time()
    fenced = await _until(lambda: not cut.owned(), DURATION)
    assert fenced <= DURATION * 2 / 3 + 0.1
    rest = members[1:]
    await _until(lambda: _covered(rest), 2 * DURATION)
    took_over = loop.time() - cut_at
    assert took_over >= fenced + DURATION / 3 - 0.5
    assert cut.metrics.lease_held._value.get() == 0
    with pytest.raises(RuntimeError, match="not renewed"):
        await _until(lambda: _raises(cut.membership.alive), DURATION)
        cut.membership.alive()

    # Its renewals work again but its watch does not: what it saw of the others' acks is stale,
    # so it takes nothing (its share waits, unpolled, for its watch: never polled twice).
    cut.way.cut, cut.way.deaf = False, True
    await asyncio.sleep(DURATION)
    assert not cut.owned()
    # The watch comes back: it rejoins and the normal protocol hands its share back.
    cut.reconnect()
    await _until(lambda: _covered(members) and bool(cut.owned()), 2 * DURATION)
    assert cut.metrics.lease_held._value.get() == 1
    cut.membership.alive()

    await check.stop()
    assert not check.found, check.found[:5]
    for m in members:
        await m.crash()


def _raises(check: Callable[[], None]) -> bool:
    try:
        check()
    except RuntimeError:
        return True
    return False


async def test_fenced_after_renew_deadline_and_unhealthy_after_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leases = Leases()
    m = Member(leases, "solo")
    await m.start()
    await _until(lambda: _covered([m]), 1.0)  # alone: its own ack is enough
    m.way.cut = True
    loop = asyncio.get_running_loop()
    cut = loop.time()
    await _until(lambda: not m.owned(), DURATION)
    assert loop.time() - cut <= DURATION * 2 / 3
    m.membership.alive()  # still alive: not a whole duration yet
    await _until(lambda: _raises(m.membership.alive), DURATION)
    assert DURATION * 2 / 3 < loop.time() - cut <= DURATION
    lost = [r.getMessage() for r in caplog.records if "lost its Lease" in r.getMessage()]
    assert len(lost) == 1 and "stopped polling" in lost[0]
    assert m.metrics.lease_renew_failures._value.get() >= 1
    await m.crash()


async def test_a_stale_lease_of_the_same_member_is_taken_over() -> None:
    leases = Leases()
    old = Member(leases, "same")
    await old.start()
    await old.crash()
    new = Member(leases, "same")
    await new.start()
    await _until(lambda: _covered([new]), 2.0)
    await new.crash()


async def test_every_write_of_the_lease_names_the_pod_as_its_owner() -> None:
    """The garbage collector deletes the Lease of a Pod that is gone only if the Lease still
    names it: a renewal (a PUT) without the reference would drop it, and so would taking over a
    stale Lease of the same member id."""
    leases = Leases()
    written: list[Mapping[str, Any]] = []
    leases.watchers.append(lambda kind, body: written.append(body))
    pod = own_pod(
        "ns",
        {
            "POD_NAME": "inferenceops-7d9c-x2",
            "POD_UID": "0f6c3d52-1b1e-4a59-9d7e-6b1b2f0b7a11",
            "POD_NAMESPACE": "ns",
        },
    )
    assert pod is not None
    elsewhere = Leases()
    await Member(elsewhere, "no-pod").membership.start()
    assert "ownerReferences" not in elsewhere.objects["g-no-pod"]["metadata"]
    old = Member(leases, "same", pod)
    await old.start()
    await asyncio.sleep(DURATION)  # a few renewals
    await old.crash()
    new = Member(leases, "same", pod)
    await new.start()
    await _until(lambda: _covered([new]), 2.0)
    await new.crash()
    mine = [b for b in written if b["metadata"]["name"] == "g-same"]
    assert len(mine) >= 4
    assert all(b["metadata"]["ownerReferences"] == [pod] for b in mine)


async def test_no_rbac_for_leases_fails_start_up_with_one_clear_line() -> None:
    leases = Leases()
    leases.forbidden = True
    m = Member(leases, "x")
    with pytest.raises(MembershipError, match="Leases in namespace ops: its RBAC needs leases"):
        await m.membership.start()


async def test_a_lease_deleted_under_a_live_member_never_gives_its_keys_to_two() -> None:
    """Someone else deletes a live member's Lease (kubectl, or the garbage collector after its
    pod was force-deleted): it may still be polling, so the others wait for the Lease to expire
    while the member drops everything at once, holds a new Lease and rejoins."""
    leases = Leases()
    members = [Member(leases, n) for n in ("a", "b", "c")]
    check = Overlaps(members)
    try:
        for m in members:
            await m.start()
        await _until(lambda: _covered(members) and all(m.owned() for m in members), DURATION)
        share = members[0].owned()
        await leases.delete("g-a")
        await asyncio.sleep(WATCH_LATENCY * 1.5)  # it has seen the deletion
        assert not members[0].owned(), "it stopped at once"
        assert not (share & (members[1].owned() | members[2].owned())), "nobody else took it"
        back = await _until(lambda: _covered(members) and members[0].owned() == share, DURATION)
        assert "g-a" in leases.objects, "it holds a new Lease"
        assert back < 1.0
        # Dead, then deleted: the others take over when its Lease would have expired.
        await members[0].crash()
        await leases.delete("g-a")
        rest = members[1:]
        failover = await _until(lambda: _covered(rest), 2 * DURATION)
        assert DURATION / 3 < failover <= DURATION + 1
        await check.stop()
        assert not check.found, check.found[:5]
    finally:
        await check.stop()
        CHECKS.remove(check)
        for m in members:
            if m.task is not None and not m.task.done():
                await m.crash()
