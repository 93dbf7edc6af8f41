"""What exists: the tracked InferenceEndpoints, their resolved specs, and who uses what.

The scheduler's intake (`scheduler.Scheduler.upsert`) hands bodies here; this module keeps one
`Endpoint` record per resource, resolves its spec (and providerRef), and indexes the endpoints by
the Secret, the provider object and the listing group they use with one `ReverseIndex` each (as
client-go's `tools/cache` indexers), so a changed Secret or provider object finds its endpoints.
No time and no asyncio: when anything is polled is the scheduler's.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Set
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from . import status as st
from .api import InvalidSpecError, ParsedSpec, parse_spec
from .api.v1alpha1 import DEFAULT_POLL_INTERVAL_SECONDS
from .kube.informer import object_key as key_of
from .kube.secrets import SecretCache
from .provider_objects import ObjectKey, ProviderObjects, Unresolved, ref_key
from .providers import Observation
from .timestamps import parse_timestamp

__all__ = ["RECONCILE_ANNOTATION", "Endpoint", "Endpoints", "Key", "ReverseIndex", "key_of"]

RECONCILE_ANNOTATION = "inferenceops.io/reconcile-requested-at"

Key = tuple[str, str]

_I = TypeVar("_I", bound=Hashable)
_V = TypeVar("_V", bound=Hashable)


class ReverseIndex(Generic[_V, _I]):
    """Items by the value each points at (a Secret, a provider object, a group). The item keeps
    its own current value; `move` is told both, so the index holds nothing but the reverse."""

    def __init__(self, emptied: Callable[[_V], None] | None = None) -> None:
        self._items: dict[_V, set[_I]] = {}
        #: Called with a value when its last item leaves it.
        self._emptied = emptied

    def move(self, item: _I, old: _V | None, new: _V | None) -> None:
        """`item` now points at `new` instead of `old` (None: at nothing)."""
        if old is not None:
            items = self._items.get(old)
            if items is not None:
                items.discard(item)
                if not items:
                    del self._items[old]
                    if self._emptied is not None:
                        self._emptied(old)
        if new is not None:
            self._items.setdefault(new, set()).add(item)

    def items_of(self, value: _V) -> Set[_I]:
        return self._items.get(value, frozenset())

    def values(self) -> Set[_V]:
        return self._items.keys()


@dataclass(eq=False)
class Endpoint:
    """One tracked InferenceEndpoint (implements `poller.Polled`)."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    parsed: ParsedSpec | None
    spec_error: str | None
    status: dict[str, Any]
    reconcile_token: str | None
    last_success: datetime | None
    spec_reason: str = st.INVALID_SPEC
    #: The provider object its spec.providerRef names, whether or not that exists.
    provider_object: ObjectKey | None = None
    failures: int = 0
    group: Hashable = None
    #: When this process started tracking the resource: the staleness window starts no earlier,
    #: so a restart followed by one failed poll does not make an old lastPollTime look stale.
    tracked_since: datetime | None = None
    #: The (observation, generation, reconcile token) the current status was computed from: the
    #: same answer again cannot change the status, so a steady poll skips computing it.
    status_source: tuple[Observation, int, str | None] | None = None
    #: The (namespace, name) of the Secret its spec references, wanted from the SecretCache.
    secret: Key | None = None
    #: Monotonic time of the last successful poll (or of tracking start): the status goes stale
    #: `stale_after(interval)` later. A steady poll moves this, not its deadline in the queue.
    fresh_since: float = 0.0

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def interval(self) -> float:
        return self.parsed.poll_interval if self.parsed else DEFAULT_POLL_INTERVAL_SECONDS


def _names(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str]:
    return body.get("metadata") or {}, *key_of(body)


class Endpoints:
    """The tracked endpoints by key, with their specs resolved and indexed."""

    def __init__(
        self,
        secrets: SecretCache,
        providers: ProviderObjects,
        refusal: Callable[[ParsedSpec], object | None],
        *,
        users_changed: Callable[[], None],
        group_emptied: Callable[[Hashable], None],
    ) -> None:
        self._secrets = secrets
        self.providers = providers
        #: Why a poll of a spec must not start (`poller.Poller.refusal`): then no Secret is read.
        self._refusal = refusal
        #: A provider object's set of endpoints changed (its status counts them).
        self._users_changed = users_changed
        self._entries: dict[Key, Endpoint] = {}
        self._by_secret: ReverseIndex[Key, Key] = ReverseIndex()
        self._by_provider: ReverseIndex[ObjectKey, Key] = ReverseIndex()
        self._by_group: ReverseIndex[Hashable, Key] = ReverseIndex(group_emptied)

    def get(self, key: Key) -> Endpoint | None:
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[Endpoint]:
        return list(self._entries.values())

    def track(self, body: Mapping[str, Any], *, since: datetime) -> tuple[Endpoint, bool]:
        """Start tracking a resource not tracked under its key; also True when its status is
        already current (for its generation and any reconcile request)."""
        meta, namespace, name = _names(body)
        generation = int(meta.get("generation") or 0)
        spec = body.get("spec") or {}
        token = (meta.get("annotations") or {}).get(RECONCILE_ANNOTATION)
        status = dict(body.get("status") or {})
        entry = Endpoint(
            namespace=namespace,
            name=name,
            uid=str(meta.get("uid", "")),
            generation=generation,
            spec=spec,
            parsed=None,
            spec_error=None,
            status=status,
            reconcile_token=status.get("lastHandledReconcileAt"),
            last_success=parse_timestamp(status.get("lastPollTime")),
            tracked_since=since,
        )
        self._apply_spec(entry, spec, generation)
        self._entries[entry.key] = entry
        current = (
            bool(status)
            and status.get("observedGeneration") == generation
            and (token is None or token == entry.reconcile_token)
        )
        if token is not None:
            entry.reconcile_token = token
        return entry, current

    def update(self, entry: Endpoint, body: Mapping[str, Any]) -> bool:
        """A tracked resource was modified; True when its spec changed or a reconcile was asked
        for (it needs polling)."""
        meta, _, _ = _names(body)
        generation = int(meta.get("generation") or 0)
        spec = body.get("spec") or {}
        token = (meta.get("annotations") or {}).get(RECONCILE_ANNOTATION)
        changed = generation != entry.generation or spec != entry.spec
        asked = token is not None and token != entry.reconcile_token
        if changed:
            self._apply_spec(entry, spec, generation)
        if asked:
            entry.reconcile_token = token
        return changed or asked

    def forget(self, key: Key) -> Endpoint | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._by_group.move(entry.key, entry.group, None)
            self._use_secret(entry, None)
            self._use_provider(entry, None)
        return entry

    def resolve_again(self, entry: Endpoint) -> bool:
        """Resolve `entry`'s spec again (its provider object changed); True if that changed."""
        before = (entry.parsed, entry.spec_error)
        self._apply_spec(entry, entry.spec, entry.generation)
        return (entry.parsed, entry.spec_error) != before

    def secret_users(self, secret: Key) -> list[Endpoint]:
        return self._live(self._by_secret.items_of(secret))

    def provider_users(self, key: ObjectKey | None) -> list[Endpoint]:
        """The endpoints naming provider object `key` (None: any ClusterInferenceProvider)."""
        if key is not None:
            return self._live(self._by_provider.items_of(key))
        keys = [k for k in self._by_provider.values() if k[1] == ""]
        return self._live({u for k in keys for u in self._by_provider.items_of(k)})

    def group_members(self, group: Hashable) -> Set[Key]:
        return self._by_group.items_of(group)

    def _live(self, keys: Set[Key]) -> list[Endpoint]:
        return [entry for key in list(keys) if (entry := self._entries.get(key)) is not None]

    def _apply_spec(self, entry: Endpoint, spec: Mapping[str, Any], generation: int) -> None:
        entry.spec, entry.generation = spec, generation
        entry.spec_reason = st.INVALID_SPEC
        self._use_provider(entry, ref_key(entry.namespace, spec))
        try:
            if spec.get("providerRef") is None:
                entry.parsed = parse_spec(spec)
            else:
                resolved = self.providers.resolve(entry.namespace, spec)
                entry.parsed = replace(parse_spec(resolved.spec), account=resolved.account)
            entry.spec_error = None
        except InvalidSpecError as err:
            entry.parsed, entry.spec_error = None, str(err)
        except Unresolved as err:
            entry.parsed, entry.spec_error, entry.spec_reason = None, err.message, err.reason
        # Leave the old group before joining the new one, even when they are the same: a group
        # left empty ends its burst of arrivals (`group_emptied`).
        self._by_group.move(entry.key, entry.group, None)
        entry.group = _group_of(entry)
        self._by_group.move(entry.key, None, entry.group)
        secret = None
        parsed = entry.parsed
        # A refused poll reads no Secret: not even into the cache.
        if (
            parsed is not None
            and (refs := parsed.config.secret_refs())
            and self._refusal(parsed) is None
        ):
            account = parsed.account
            secret = (account.secret_namespace if account else entry.namespace, refs[0].name)
        self._use_secret(entry, secret)

    def _use_provider(self, entry: Endpoint, key: ObjectKey | None) -> None:
        if key == entry.provider_object:
            return
        self._users_changed()
        self._by_provider.move(entry.key, entry.provider_object, key)
        entry.provider_object = key

    def _use_secret(self, entry: Endpoint, secret: Key | None) -> None:
        if secret == entry.secret:
            return
        if entry.secret is not None:
            self._secrets.unwant(*entry.secret)
        if secret is not None:
            self._secrets.want(*secret)
        self._by_secret.move(entry.key, entry.secret, secret)
        entry.secret = secret


def _group_of(entry: Endpoint) -> Hashable:
    """The listing group: endpoints one listing of one account can answer together."""
    parsed = entry.parsed
    if parsed is None:
        return ("invalid", entry.key)
    secret = None
    if refs := parsed.config.secret_refs():
        account = parsed.account
        namespace = account.secret_namespace if account else entry.namespace
        secret = (namespace, refs[0].name, tuple(r.key for r in refs))
    return (
        parsed.provider.name,
        parsed.provider.account_key(parsed.config),
        secret,
        parsed.account,
    )
