"""Replicas share the work through Leases: who is a member, and which member owns which key.

Every copy of `inferenceops run` holds one Lease (`kube/leases.py`) named after its group and
member id, renewed every `duration / 3`. The live Leases of the group are the members; the view
is their sorted ids. A key (an endpoint's `namespace/name`, a provider object's
`provider:<namespace>/<name>`) belongs to the member of highest rendezvous weight, so a change of
the view moves about 1/N of the keys.

Hand-over without overlap (docs/operations.md, "Replicas: membership and hand-over"): on a view
change a member first releases what it no longer owns (`Assignee.release`: no new poll or write
of those keys, in-flight writes finished), then acks the view in its own Lease (annotation
`inferenceops.io/view`), and acquires what the view newly gives it only once every live member
of the view has acked the same view. Until then it owns a key only if both the new view and the
last fully acked one give it to it.

Liveness as client-go's leader election sees it: a member is live while the local monotonic time
at which its Lease's renewTime last changed is less than `leaseDurationSeconds` ago, so no other
host's clock is trusted. Fencing: a member that has not renewed for `renew_deadline` (2/3 of the
duration, counted from when its last successful renewal was sent) owns nothing; the others drop
it only a whole duration after they last saw it renew, so it stopped at least a third of the
duration before anyone takes its keys.

Leaving: a member stopping gracefully marks its Lease as left (annotation `inferenceops.io/left`)
once it has released everything, then deletes it; the others drop it at once. A Lease deleted by
anyone else (kubectl, or the garbage collector deleting it with its force-deleted pod: it names
the pod as owner) may belong to a member still polling, so the others drop it only when it would
have expired, and the member itself owns nothing from the moment it sees the deletion until it
holds a new Lease and the view is acked again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .clock import SYSTEM_CLOCK, Clock
from .kube.errors import ApiForbidden
from .kube.leases import LEFT_ANNOTATION, VIEW_ANNOTATION, HeldLease, LeaseStore
from .metrics import Metrics
from .peers import Peers

__all__ = [
    "Assignee",
    "Membership",
    "MembershipError",
    "MembershipSettings",
    "Owns",
    "owner",
    "owns_all",
    "view_hash",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MembershipSettings:
    """Who this copy is among the copies sharing the work (`inferenceops run --group ...`)."""

    group: str = "inferenceops"
    member_id: str = "inferenceops"
    lease_namespace: str = "default"
    lease_duration: int = 15
    #: The ownerReference its Lease carries (kube.leases.own_pod): the member's Pod, when it
    #: runs in one in the Lease's namespace.
    owner: Mapping[str, str] | None = None


#: Whether this member owns a key (`Membership.owns`).
Owns = Callable[[str], bool]


def owns_all(key: str) -> bool:
    """A copy working alone (no membership) owns every key."""
    return True


def _weight(member: str, key: str) -> bytes:
    return hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()


def owner(members: Sequence[str], key: str) -> str | None:
    """The member of highest rendezvous weight for `key` (None: no members)."""
    return max(members, key=lambda m: _weight(m, key), default=None)


def view_hash(view: Sequence[str]) -> str:
    return hashlib.blake2b("\0".join(view).encode(), digest_size=8).hexdigest()


class MembershipError(RuntimeError):
    """The member cannot hold a Lease at all (RBAC): start-up fails with this line."""


class Assignee(Protocol):
    """What owns keys (the scheduler and the provider status): told to drop the keys it no
    longer owns, and to take up the ones it newly owns; each returns how many."""

    async def release(self) -> int: ...

    async def acquire(self) -> int: ...


class _Nobody:
    async def release(self) -> int:
        return 0

    async def acquire(self) -> int:
        return 0


class Membership:
    def __init__(
        self,
        store: LeaseStore,
        group: str,
        member: str,
        *,
        duration: int = 15,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
        owner: Mapping[str, str] | None = None,
    ) -> None:
        self._lease = HeldLease(store, group, member, duration, clock, owner)
        self.member = member
        self.group = group
        self.name = self._lease.name
        self.duration = float(duration)
        self.renew_every = duration / 3
        self.renew_deadline = duration * 2 / 3
        self._metrics = metrics
        self._clock = clock
        self.assignee: Assignee = _Nobody()
        self._peers = Peers(member, self.duration)
        self._renewed_at = -float("inf")  # when the last successful renewal was sent
        self._ack: str | None = None  # the view hash our Lease shows
        #: (ack, renewTime of the first write that showed it): acks of others count only once
        #: the watch has shown us that write, so none is read from a stale watch.
        self._ack_written: tuple[str | None, str] = (None, "")
        self.view: tuple[str, ...] = ()
        self._acquired: tuple[str, ...] | None = None
        self._changed = asyncio.Event()
        self.settled = asyncio.Event()  # set once a view was acquired after start
        self._writing = asyncio.Lock()
        self._lost_logged = False
        self._stopped = False
        #: Set when the Lease must be written now, not at the next renewal.
        self._renew_now = asyncio.Event()
        self._deleted_at = -float("inf")

    # --- who owns what ------------------------------------------------------------------------

    @property
    def held(self) -> bool:
        since = self._clock.monotonic() - self._renewed_at
        return not self._stopped and since < self.renew_deadline

    def owns_anything(self) -> bool:
        """Whether this member may write at all (it holds its Lease and acked a view)."""
        return self.held and self._acquired is not None

    def owns(self, key: str) -> bool:
        if not self.held or self._acquired is None or owner(self.view, key) != self.member:
            return False
        return self._acquired == self.view or owner(self._acquired, key) == self.member

    def alive(self) -> None:
        """Raises RuntimeError when the Lease was not renewed for a whole duration."""
        since = self._clock.monotonic() - self._renewed_at
        if since >= self.duration:
            raise RuntimeError(
                f"the Lease {self.name} was not renewed for {since:.0f} s "
                f"(lease duration {self.duration:.0f} s)"
            )

    # --- what the Lease informer sees ---------------------------------------------------------

    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        spec = body.get("spec") or {}
        member = str(spec.get("holderIdentity") or "")
        meta = body.get("metadata") or {}
        if not member or (member == self.member and meta.get("name") != self.name):
            return
        annotations = meta.get("annotations") or {}
        if annotations.get(LEFT_ANNOTATION):
            self._peers.left(member)  # gracefully: its keys are free at once
        elif event_type == "DELETED" and member == self.member:
            self._deleted_under_us(str(meta.get("uid") or ""))
        elif event_type == "DELETED":
            # By someone else (kubectl, the garbage collector after a force-deleted pod): it
            # may still be polling until it sees the deletion itself.
            self._peers.deleted(member)
        else:
            view = str(annotations.get(VIEW_ANNOTATION) or "")
            self._peers.renewed(member, spec, view, self._clock.monotonic())
        self._changed.set()

    def _deleted_under_us(self, uid: str) -> None:
        """Our own Lease was deleted, not by us: the others may take our keys as soon as it
        expires, so own nothing from now on, and hold a new Lease at once (then rejoin)."""
        if self._stopped or (uid and uid != self._lease.uid):
            return  # our own leave, or an older Lease of ours
        log.warning(
            "its Lease %s was deleted by someone else; stopped polling until it holds a new one "
            "and the members ack the view again",
            self.name,
        )
        # Not held (so nothing is written) until the new Lease is; the next step releases
        # everything and acks the view afresh.
        self._renewed_at = -float("inf")
        self.view, self._acquired, self._ack = (), None, None
        now = self._clock.monotonic()
        if now - self._deleted_at >= self.renew_every:
            # A new Lease at once, but not again and again: deleted again soon after, its owner
            # (the pod) is gone and the garbage collector deletes every new one.
            self._renew_now.set()
        self._deleted_at = now

    def _live(self, now: float) -> tuple[str, ...]:
        live = self._peers.live_others(now, self.view)
        if self.held:
            live.add(self.member)
        return tuple(sorted(live))

    # --- the Lease ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the Lease (or take over a stale one of the same member id)."""
        try:
            await self._renew(create=True)
        except ApiForbidden:
            raise MembershipError(
                f"the operator may not use Leases in namespace {self._namespace()}: its RBAC "
                "needs leases (coordination.k8s.io) get, list, watch, create, update, patch, "
                "delete there (--lease-namespace)"
            ) from None
        self._publish()

    def _namespace(self) -> str:
        return str(getattr(self._lease.store, "namespace", "?"))

    async def _renew(self, *, create: bool = False) -> None:
        async with self._writing:
            sent = self._clock.monotonic()
            renewed = await self._lease.write(self._ack, create=create)
            if self._ack_written[0] != self._ack:
                self._ack_written = (self._ack, renewed)
            self._renewed_at = sent

    async def _keep_renewing(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.renew_every):
                    await self._renew_now.wait()
            self._renew_now.clear()
            was_held = self.held
            try:
                async with asyncio.timeout(self.renew_every):
                    await self._renew()
            except Exception as err:  # an API error, a network error, a timeout: try again
                self._count_failure(err)
                continue
            if not was_held:
                log.warning("holds its Lease %s again; rejoining", self.name)
                self._lost_logged = False
                self._changed.set()
            self._publish()

    def _count_failure(self, err: BaseException) -> None:
        log.debug("renewing the Lease %s failed: %r", self.name, err)
        if self._metrics is not None:
            self._metrics.lease_renew_failures.inc()

    def _publish(self) -> None:
        if self._metrics is not None:
            self._metrics.lease_held.set(1 if self.held else 0)
            self._metrics.members.set(len(self.view))

    # --- the hand-over protocol ---------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: renew, and follow the view."""
        renewing = asyncio.create_task(self._keep_renewing(), name="inferenceops-lease-renewal")
        try:
            while True:
                await self._step()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._next_deadline()):
                        await self._changed.wait()
                self._changed.clear()
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    def _next_deadline(self) -> float:
        now = self._clock.monotonic()
        times = self._peers.expiries()
        if self.held:
            times.append(self._renewed_at + self.renew_deadline)
        upcoming = [t - now for t in times if t > now]
        return max(0.01, min(upcoming, default=self.renew_every))

    async def _step(self) -> None:
        now = self._clock.monotonic()
        view = self._live(now)
        if view != self.view:
            lost = self.member in self.view and self.member not in view
            self.view = view
            if self.member not in view:
                self._acquired, self._ack = None, None
            released = await self.assignee.release()
            if lost and not self._lost_logged:
                self._lost_logged = True
                log.warning(
                    "lost its Lease %s (not renewed for %.1f s); stopped polling %d endpoints "
                    "until it holds one again",
                    self.name,
                    now - self._renewed_at,
                    released,
                )
            if self.member in view:
                self._ack = view_hash(view)
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.renew_every):
                        await self._renew()
            self._publish()
        if self._acquired != self.view and self._all_acked():
            self._acquired = self.view
            await self.assignee.acquire()
            self.settled.set()

    def _all_acked(self) -> bool:
        if not self.held or self.member not in self.view:
            return False
        ack = view_hash(self.view)
        mine = self._peers.seen.get(self.member)
        if self._ack != ack or self._ack_written[0] != ack:
            return False
        if mine is None or mine.view != ack or mine.renewed < self._ack_written[1]:
            return False  # the watch has not caught up with our own ack yet
        return all(
            (seen := self._peers.seen.get(m)) is not None and seen.view == ack
            for m in self.view
            if m != self.member
        )

    async def leave(self) -> None:
        """A graceful stop: release everything, mark the Lease as left (the others take over at
        once), then delete it."""
        self._stopped = True
        self.view, self._acquired = (), None
        await self.assignee.release()
        with contextlib.suppress(Exception):  # one bound for both: a stop is not held up
            async with asyncio.timeout(self.renew_every):
                with contextlib.suppress(Exception):
                    await self._lease.write(None, left=True)
                await self._lease.store.delete(self.name)
        self._publish()
