"""Each provider object's inventory (`spec.inventory`, issue 25): the account's remote endpoints,
listed once per account per interval, against the InferenceEndpoints that use the object.

The listing goes through the account the object's endpoints are polled with (the same client,
token bucket and Retry-After pause), so inventory spends the account's budget, never more. The
result is kept here; `ProviderStatus` puts `status()` into the object's status with the rest of
it, so it is written only when it changes and by whoever writes provider status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from .accounts import AccountPool, credential_fingerprint
from .aiotasks import concurrently
from .api import AccountSource, InvalidSpecError, parse_duration
from .api.provider_kinds import (
    CLUSTER_KIND,
    INVENTORY_IDS,
    MIN_INVENTORY_SECONDS,
    InventorySpec,
    account_model,
)
from .clock import SYSTEM_CLOCK, Clock
from .kube.secrets import SecretMissing, SecretPending
from .provider_objects import ObjectKey, ProviderObjects
from .providers import (
    CREDENTIAL_SEPARATOR,
    MAX_LISTED,
    Provider,
    ProviderError,
    SecretKeyRef,
    Target,
    declared_ids,
    too_many_listed,
)
from .providers import get as get_provider
from .providers.sanitize import MESSAGE_CHARS, clean, redacting, redactor_for
from .timestamps import format_timestamp

__all__ = ["Inventory", "inventory_status"]

log = logging.getLogger(__name__)

#: When to look again for a Secret being read, and for one that is missing.
SECRET_PENDING_SECONDS = 5.0
SECRET_RETRY_SECONDS = 60.0


class Secrets(Protocol):
    def want(self, namespace: str, name: str) -> None: ...

    def unwant(self, namespace: str, name: str) -> None: ...

    def lookup(self, namespace: str, ref: SecretKeyRef) -> str: ...


@dataclass(frozen=True, slots=True)
class Listing:
    """The last listing of one account: the ids found (None: never listed whole) and why the
    last attempt failed, if it did."""

    ids: frozenset[str] | None
    at: datetime
    error: str | None = None


def inventory_status(
    prev: Mapping[str, Any] | None,
    provider: Provider[Any] | None,
    listing: Listing | None,
    users: list[Mapping[str, Any]],
) -> dict[str, Any]:
    """`status.inventory` (pure): counts from the last whole listing, the message of the last
    failure; `lastListTime` moves only when the counts or ids change (no write otherwise)."""
    if listing is None:
        # Not listed yet in this process (a restart): what the last one wrote still holds,
        # rather than two writes (cleared, then the same numbers again).
        return dict(prev or {})
    status: dict[str, Any] = {}
    if listing.ids is not None and provider is not None:
        watched = declared_ids(provider, users) & listing.ids
        unmanaged = sorted(listing.ids - watched)
        status = {
            "remoteEndpoints": len(listing.ids),
            "watchedEndpoints": len(watched),
            "unmanagedEndpoints": len(unmanaged),
            "unmanagedIds": unmanaged[:INVENTORY_IDS],
        }
        prev = prev or {}
        same = all(prev.get(k) == v for k, v in status.items())
        status["lastListTime"] = (
            prev.get("lastListTime") if same and prev.get("lastListTime") else None
        ) or format_timestamp(listing.at)
    if listing.error is not None:
        status["message"] = listing.error
    return status


class Inventory:
    def __init__(
        self,
        objects: ProviderObjects,
        accounts: AccountPool,
        secrets: Secrets,
        users: Callable[[ObjectKey], list[Mapping[str, Any]]],
        changed: Callable[[], None],
        *,
        allow_insecure_http: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        owns: Callable[[ObjectKey], bool] = lambda key: True,
    ) -> None:
        """`users`: the specs of the endpoints naming a provider object; `changed`: asks for
        provider statuses to be recomputed; `owns`: whether this member writes the object's
        status (membership.py), so lists its account."""
        self._objects = objects
        self._accounts = accounts
        self._secrets = secrets
        self._users = users
        self._changed = changed
        self._allow_insecure_http = allow_insecure_http
        self._clock = clock
        self._owns = owns
        self._listings: dict[ObjectKey, Listing] = {}
        self._due: dict[ObjectKey, float] = {}
        self._listed_specs: dict[ObjectKey, Mapping[str, Any] | None] = {}
        self._wanted: dict[ObjectKey, set[tuple[str, str]]] = {}

    def status(self, key: ObjectKey, prev: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The object's `status.inventory`, or None when it has no `spec.inventory`."""
        spec = self._objects.spec(key)
        if spec is None or spec.get("inventory") is None:
            return None
        provider = _provider_of(spec)
        return inventory_status(prev, provider, self._listings.get(key), self._users(key))

    def interval(self, key: ObjectKey) -> float | None:
        spec = self._objects.spec(key) or {}
        if spec.get("inventory") is None:
            return None
        try:
            text = InventorySpec.model_validate(spec["inventory"]).interval
            return max(MIN_INVENTORY_SECONDS, parse_duration(text))
        except (ValidationError, InvalidSpecError):
            return None

    async def sweep(self) -> int:
        """List every account whose inventory is due; how many were listed."""
        now = self._clock.monotonic()
        keys = {key for key in self._objects.all_keys() if self._owns(key)}
        for gone in (self._due.keys() | self._wanted.keys()) - keys:
            self._forget(gone)
        due: list[tuple[ObjectKey, float]] = []
        for key in sorted(keys):
            interval = self.interval(key)
            spec = self._objects.spec(key)
            if interval is None:
                self._forget(key)
            elif self._due.get(key, 0.0) <= now or self._listed_specs.get(key) != spec:
                # A changed spec (another URL, key or interval) is listed at once.
                self._listed_specs[key] = spec
                due.append((key, interval))
        # Accounts at once: one slow provider must not hold the others' listings back; each
        # listing's requests still wait for its own account's budget.
        retries = await concurrently([self.list_account(key) for key, _ in due])
        for (key, interval), retry in zip(due, retries, strict=True):
            self._due[key] = now + (min(retry, interval) if retry is not None else interval)
        return len(due)

    async def run(self, tick: float = 5.0) -> None:
        """Until cancelled: `sweep` every `tick` seconds."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("listing provider accounts for their inventory failed")
            await asyncio.sleep(tick)

    def _forget(self, key: ObjectKey) -> None:
        self._listings.pop(key, None)
        self._due.pop(key, None)
        self._listed_specs.pop(key, None)
        for namespace, name in self._wanted.pop(key, set()):
            self._secrets.unwant(namespace, name)

    def _record(self, key: ObjectKey, ids: frozenset[str] | None, error: str | None) -> None:
        before = self._listings.get(key)
        if ids is None and before is not None:
            ids = before.ids  # a failed listing keeps the last whole one's counts
        self._listings[key] = Listing(ids, self._clock.now(), error)
        self._changed()

    async def list_account(self, key: ObjectKey) -> float | None:
        """List one account; seconds until the next try when sooner than the interval (a
        Secret still being read)."""
        spec = self._objects.spec(key) or {}
        provider = _provider_of(spec)
        if provider is None or not provider.lists:
            name = provider.name if provider else "this provider"
            listing = provider.listing if provider else "no provider block"
            self._record(key, None, f"{name}: {listing}")
            return None
        if (refused := self._objects.refusal(key)) is not None:
            self._record(key, None, f"{refused[0]}: {refused[1]}")
            return None
        try:
            shared = account_model(provider).model_validate(spec[provider.name])
            block = shared.model_dump(by_alias=True, exclude_none=True)
            rate, burst = block.pop("requestsPerSecond", None), block.pop("burst", None)
            config = provider.listing_config(block)
        except ValidationError:
            self._record(key, None, f"{provider.name}: {provider.listing}")
            return None
        refs = config.secret_refs()
        if refs and not self._allow_insecure_http:
            insecure = [u for u in config.destinations().values() if not u.startswith("https://")]
            if insecure:
                self._record(key, None, f"InsecureURL: {insecure[0]} is not https")
                return None
        kind, namespace, name = key
        secret_namespace = (
            str(spec.get("secretNamespace") or "") if kind == CLUSTER_KIND else namespace
        )
        # Held while the object lists: its Secret stays read even when no endpoint uses it.
        wanted, before = {(secret_namespace, r.name) for r in refs}, self._wanted.get(key, set())
        for item in wanted - before:
            self._secrets.want(*item)
        for item in before - wanted:
            self._secrets.unwant(*item)
        self._wanted[key] = wanted
        try:
            credential = (
                CREDENTIAL_SEPARATOR.join(self._secrets.lookup(secret_namespace, r) for r in refs)
                if refs
                else None
            )
        except SecretPending:
            return SECRET_PENDING_SECONDS
        except SecretMissing as err:
            self._record(key, None, f"SecretMissing: {err}")
            return SECRET_RETRY_SECONDS  # a Secret created later is found within a minute
        source = AccountSource(kind, namespace, name, secret_namespace, rate, burst)
        account: Hashable = (
            provider.account_key(config),
            credential_fingerprint(credential),
            source,
        )
        client = self._accounts.get(
            provider.name, account, requests_per_second=rate, burst=burst
        ).client
        target = Target(key="inventory", config=config, credential=credential)
        redactor = redactor_for(credential)
        ids: set[str] = set()
        try:
            with redacting(redactor):
                async for page in provider.list_endpoints(client, target):
                    ids.update(e.id for e in page)
                    if len(ids) > MAX_LISTED:
                        raise too_many_listed()
        except ProviderError as err:
            message = clean(err.message, MESSAGE_CHARS, redactor)
            self._record(key, None, f"listing failed: {err.reason}: {message}")
            return None
        self._record(key, frozenset(ids), None)
        return None


def _provider_of(spec: Mapping[str, Any]) -> Provider[Any] | None:
    for name, value in spec.items():
        if value is None:
            continue
        with contextlib.suppress(KeyError):
            return get_provider(name)
    return None
