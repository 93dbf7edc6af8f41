"""What a member keeps of an endpoint another member polls (membership.py): its uid's hash and
its account budget, and, if it names a provider object, that object, its Ready status and its
remote id; never its spec or status. That is what a provider object's status (endpoint counts)
and inventory and the division of an account's budget between members need; the full object is
listed again on taking it over.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .endpoints import Key, ReverseIndex
from .provider_objects import ObjectKey, ref_key
from .providers import declared_id

__all__ = ["Others", "Remote", "budget_key"]


def budget_key(namespace: str, spec: Mapping[str, Any]) -> Hashable:
    """Which account budget an endpoint draws from, from its spec alone (no Secret read): the
    provider object it names, else its namespace, provider block, URL and Secret names."""
    ref = ref_key(namespace, spec)
    if ref is not None:
        return ref
    blocks = []
    for name, block in sorted(spec.items()):
        if not isinstance(block, Mapping):
            continue
        secrets = sorted(
            json.dumps(value, sort_keys=True)
            for field, value in block.items()
            if field.endswith("SecretRef") or field.endswith("secretRef")
        )
        blocks.append((name, str(block.get("url") or ""), tuple(secrets)))
    return (namespace, tuple(blocks))


class _Tracked(Protocol):
    @property
    def key(self) -> Key: ...

    uid: str
    spec: Mapping[str, Any]
    status: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Remote:
    """What is kept of another member's endpoint that names a provider object: what that
    object's status (its Ready count) and inventory (its remote ids) read."""

    provider: ObjectKey
    #: The Ready condition's status ("True", "False", "Unknown") or None.
    ready: str | None
    #: (provider block, remote id): what its inventory counts as watched (inventory.py),
    #: whoever polls it.
    declared: tuple[str, str] | None = None

    @property
    def status(self) -> Mapping[str, Any]:
        """As much of a status as a provider object's status reads (its Ready count)."""
        if self.ready is None:
            return {}
        return {"conditions": [{"type": "Ready", "status": self.ready}]}


def _declared(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    for name, block in spec.items():
        if (ident := declared_id(block)) is not None:
            return sys.intern(str(name)), ident
    return None


def _ready(status: Mapping[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            # Interned: thousands of records would each keep their own copy of "True".
            return sys.intern(str(cond.get("status")))
    return None


class _Budget:
    """One account budget's endpoints: polled here, and in all."""

    __slots__ = ("key", "owned", "total")

    def __init__(self, key: Hashable) -> None:
        #: The one copy of the budget key every endpoint of the account points at.
        self.key = key
        self.owned = 0
        self.total = 0


class Others:
    """The endpoints other members poll, and the endpoints per account budget, owned here and
    in all, whoever polls them.

    Of another member's endpoint only its uid's hash and its account budget are kept, plus a
    `Remote` if it names a provider object. A record of each (uid, generation, its own budget
    key, Ready: ~1 KB) cost a member ~11 MB of RSS at 10,000 endpoints on 3 members, more than
    their size: each pinned memory its event was parsed into (docs/performance.md, "Replicas")."""

    def __init__(self, changed: Callable[[], None]) -> None:
        #: A provider object's endpoints (or their Ready) changed.
        self._changed = changed
        #: hash(uid) of each: taking one over checks the listing shows the same object.
        self._uids: dict[Key, int] = {}
        self._remote: dict[Key, Remote] = {}
        self._by_provider: ReverseIndex[ObjectKey, Key] = ReverseIndex()
        #: Endpoints per budget, each key's budget and the keys polled here. A budget key is
        #: built anew from each event's spec; only its first copy is kept (one per account).
        self._budgets: dict[Hashable, _Budget] = {}
        self._budget_of: dict[Key, _Budget] = {}
        self._owned: set[Key] = set()

    def __contains__(self, key: Key) -> bool:
        return key in self._uids

    def __len__(self) -> int:
        return len(self._uids)

    def remote_keys(self) -> list[Key]:
        return list(self._uids)

    def get(self, key: Key) -> Remote | None:
        """The record of `key` if it names a provider object."""
        return self._remote.get(key)

    def same_object(self, key: Key, uid: str) -> bool:
        """Whether `uid` is the object remembered as `key` (a listing may be older)."""
        return self._uids.get(key) == hash(uid)

    def remember(self, key: Key, body: Mapping[str, Any]) -> None:
        """`key` as a listing or watch event shows it, polled by another member."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        self._note(key, uid, body.get("spec") or {}, body.get("status") or {})

    def remember_entry(self, entry: _Tracked) -> None:
        """`entry`, polled here until now, is another member's."""
        self._note(entry.key, entry.uid, entry.spec, entry.status)

    def _note(self, key: Key, uid: str, spec: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        namespace = key[0]
        self._uids[key] = hash(uid)
        self.count(key, budget_key(namespace, spec), owned=False)
        provider = ref_key(namespace, spec)
        old = self._remote.get(key)
        remote = None if provider is None else Remote(provider, _ready(status), _declared(spec))
        if remote == old:
            return
        if remote is None:
            del self._remote[key]
        else:
            self._remote[key] = remote
        self._by_provider.move(
            key, old.provider if old else None, remote.provider if remote else None
        )
        self._changed()

    def forget(self, key: Key) -> None:
        """`key` is gone, or polled here now: neither remembered nor counted."""
        self.count(key, None, owned=False)
        self._uids.pop(key, None)
        old = self._remote.pop(key, None)
        if old is not None:
            self._by_provider.move(key, old.provider, None)
            self._changed()

    def provider_specs(self, key: ObjectKey) -> list[Mapping[str, Any]]:
        """As much of the specs of provider object `key`'s endpoints others poll as its
        inventory reads: each one's remote id in its provider block."""
        out: list[Mapping[str, Any]] = []
        for k in self._by_provider.items_of(key):
            declared = self._remote[k].declared
            if declared is not None:
                out.append({"spec": {declared[0]: {"endpointId": declared[1]}}})
        return out

    def provider_users(self, key: ObjectKey, own: Sequence[_Tracked]) -> list[Mapping[str, Any]]:
        """The statuses of provider object `key`'s endpoints: `own` (polled here) and others'."""
        remote = [self._remote[k].status for k in self._by_provider.items_of(key)]
        return [entry.status for entry in own] + remote

    def count(self, key: Key, budget: Hashable | None, *, owned: bool) -> None:
        """`key` now draws from `budget` (None: from none), polled here or not."""
        kept = self._budget_of.get(key)
        if (
            kept is not None
            and budget is not None
            and kept is self._budgets.get(budget)
            and owned == (key in self._owned)
        ):
            # Unchanged (most events): the key stored stays the first one seen. Storing each
            # event's would pin that event's key tuple and name string, scattered through the
            # memory the event was parsed into.
            return
        old = self._budget_of.pop(key, None)
        if old is not None:
            old.total -= 1
            if key in self._owned:
                self._owned.discard(key)
                old.owned -= 1
            if old.total <= 0:
                del self._budgets[old.key]
        if budget is None:
            return
        counts = self._budgets.get(budget)
        if counts is None:
            counts = self._budgets[budget] = _Budget(budget)
        self._budget_of[key] = counts
        counts.total += 1
        if owned:
            self._owned.add(key)
            counts.owned += 1

    def share(self, key: Key) -> float:
        """The part of `key`'s account budget this member may use: the part of that account's
        endpoints it polls (at least one; accounts.MIN_SHARED_RATE is the floor of the rate)."""
        counts = self._budget_of.get(key)
        if counts is None or counts.total <= 0:
            return 1.0
        return min(1.0, max(counts.owned, 1) / counts.total)
