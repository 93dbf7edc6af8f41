"""What a member keeps of an endpoint another member polls (membership.py): its identity, the
provider object it names, its budget and its Ready/Synced status only, never its spec or full
status. That is what a provider object's status (endpoint counts) and the division of an
account's budget between members need; the full object is listed again on taking it over.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .endpoints import Key, ReverseIndex
from .provider_objects import ObjectKey, ref_key
from .providers import declared_id

__all__ = ["Others", "Remote", "budget_key", "remote_of", "updated"]


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
    namespace: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: dict[str, Any]
    provider_object: ObjectKey | None


@dataclass(frozen=True, slots=True)
class Remote:
    uid: str
    provider: ObjectKey | None
    budget: Hashable
    #: The Ready condition's status ("True", "False", "Unknown") or None.
    ready: str | None
    #: The spec's generation: an event of the same uid and generation (a status write, the
    #: most common event) changes nothing but `ready`, so nothing else is computed again.
    generation: int = 0
    #: (provider block, remote id) of an endpoint naming a provider object: what its inventory
    #: counts as watched (inventory.py), whoever polls it.
    declared: tuple[str, str] | None = None

    @property
    def status(self) -> Mapping[str, Any]:
        """As much of a status as a provider object's status reads (its Ready count)."""
        if self.ready is None:
            return {}
        return {"conditions": [{"type": "Ready", "status": self.ready}]}

    @classmethod
    def of_entry(cls, entry: _Tracked) -> Remote:
        return cls(
            entry.uid,
            entry.provider_object,
            budget_key(entry.namespace, entry.spec),
            _ready(entry.status),
            entry.generation,
            _declared(entry.provider_object, entry.spec),
        )


def remote_of(body: Mapping[str, Any]) -> Remote:
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    spec = body.get("spec") or {}
    provider = ref_key(namespace, spec)
    return Remote(
        str(meta.get("uid", "")),
        provider,
        budget_key(namespace, spec),
        _ready(body.get("status") or {}),
        int(meta.get("generation") or 0),
        _declared(provider, spec),
    )


def _declared(provider: ObjectKey | None, spec: Mapping[str, Any]) -> tuple[str, str] | None:
    if provider is None:
        return None
    for name, block in spec.items():
        if (ident := declared_id(block)) is not None:
            return sys.intern(str(name)), ident
    return None


def updated(old: Remote | None, body: Mapping[str, Any]) -> Remote:
    """`old` as `body` shows it now: only its Ready when the spec did not change."""
    meta = body.get("metadata") or {}
    if (
        old is None
        or old.uid != str(meta.get("uid", ""))
        or old.generation != int(meta.get("generation") or 0)
    ):
        return remote_of(body)
    ready = _ready(body.get("status") or {})
    return old if ready == old.ready else replace(old, ready=ready)


def _ready(status: Mapping[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return str(cond.get("status"))
    return None


class Others:
    """The endpoints other members poll (`Remote` each), indexed by provider object, and the
    endpoints per account budget, owned here and in all, whoever polls them."""

    def __init__(self, changed: Callable[[], None]) -> None:
        #: A provider object's endpoints (or their Ready) changed.
        self._changed = changed
        self._remote: dict[Key, Remote] = {}
        self._by_provider: ReverseIndex[ObjectKey, Key] = ReverseIndex()
        #: Endpoints per budget: [owned here, all]; and each key's (budget, owned here).
        self._budgets: dict[Hashable, list[int]] = {}
        self._budget_of: dict[Key, tuple[Hashable, int]] = {}

    def get(self, key: Key) -> Remote | None:
        return self._remote.get(key)

    def remote_keys(self) -> list[Key]:
        return list(self._remote)

    def __len__(self) -> int:
        return len(self._remote)

    def remember(self, key: Key, remote: Remote) -> None:
        old = self._remote.get(key)
        if old is remote:
            return
        self._remote[key] = remote
        self._by_provider.move(key, old.provider if old else None, remote.provider)
        self.count(key, remote.budget, owned=False)
        if old is None or old.provider != remote.provider or old.ready != remote.ready:
            self._changed()

    def forget(self, key: Key) -> None:
        """`key` is gone, or polled here now: neither remembered nor counted."""
        self.count(key, None, owned=False)
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
        old = self._budget_of.pop(key, None)
        if old is not None:
            counts = self._budgets[old[0]]
            counts[0] -= old[1]
            counts[1] -= 1
            if counts[1] <= 0:
                del self._budgets[old[0]]
        if budget is not None:
            self._budget_of[key] = (budget, int(owned))
            counts = self._budgets.setdefault(budget, [0, 0])
            counts[0] += int(owned)
            counts[1] += 1

    def share(self, key: Key) -> float:
        """The part of `key`'s account budget this member may use: the part of that account's
        endpoints it polls (at least one; accounts.MIN_SHARED_RATE is the floor of the rate)."""
        budget = self._budget_of.get(key)
        counts = self._budgets.get(budget[0]) if budget else None
        if not counts or counts[1] <= 0:
            return 1.0
        return min(1.0, max(counts[0], 1) / counts[1])
