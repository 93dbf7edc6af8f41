"""The one interface every provider adapter implements, and the values it hands back.

An adapter turns targets (validated provider blocks plus their credential) into HTTP requests and
the answers into `Observation`s. It never touches Kubernetes and knows nothing of status
conditions: `inferenceops.status` turns observations into status.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Generic, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "CREDENTIAL_SEPARATOR",
    "CredentialedConfig",
    "ErrorReason",
    "Observation",
    "Phase",
    "PollResult",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "Queue",
    "SecretKeyRef",
    "Target",
    "Workers",
    "caught",
    "concurrently",
    "list_then_fetch",
    "rate_limited",
]

_T = TypeVar("_T")


async def concurrently(awaitables: Sequence[Awaitable[_T]]) -> list[_T]:
    """`asyncio.gather` without its Task when there is only one: most polls are of one endpoint,
    and a Task per poll (twice) showed in the steady-state profile at 10,000 endpoints."""
    if len(awaitables) == 1:
        return [await awaitables[0]]
    return list(await asyncio.gather(*awaitables))


class Phase(StrEnum):
    """Our provider-neutral phase; each adapter documents its mapping in docs/providers.md."""

    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    RUNNING = "Running"
    IDLE = "Idle"
    UPDATING = "Updating"
    DEGRADED = "Degraded"
    SLEEPING = "Sleeping"
    WAKING = "Waking"
    SUSPENDED = "Suspended"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Workers:
    """Worker counts; a field is None when the provider does not say."""

    ready: int | None = None
    total: int | None = None
    min: int | None = None
    max: int | None = None


@dataclass(frozen=True, slots=True)
class Queue:
    """Jobs waiting for and held by an endpoint's workers; a field is None when not said."""

    in_queue: int | None = None
    in_progress: int | None = None
    failed: int | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What one successful poll learned about one endpoint."""

    phase: Phase
    provider_status: str
    provider_phase: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    progress: int | None = None
    workers: Workers | None = None
    #: Only where a user opted in: queue depth changes constantly, and each change is a write.
    queue: Queue | None = None
    #: When the provider says the endpoint last changed, where it says (for the freshness metric).
    changed_at: datetime | None = None


class ErrorReason(StrEnum):
    """Why a poll failed; these become the `Synced` condition's reason."""

    UNAUTHORIZED = "Unauthorized"
    NOT_FOUND = "NotFound"
    TIMEOUT = "Timeout"
    RATE_LIMITED = "RateLimited"
    UNREACHABLE = "Unreachable"
    BAD_RESPONSE = "BadResponse"
    #: The URL's host is (or resolves to) an address the operator may not connect to (egress.py).
    DESTINATION_DENIED = "DestinationDenied"


class ProviderError(Exception):
    """A poll that did not yield an observation.

    `message` is safe to show a user: it never holds a credential, and body excerpts are short.
    """

    def __init__(
        self,
        reason: ErrorReason,
        message: str,
        *,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"ProviderError({self.reason.value}, {self.message!r})"


PollResult = Observation | ProviderError


#: A Kubernetes object name (DNS-1123 subdomain): what the API server accepts for a Secret, so
#: nothing else (`../x`) reaches the Secret lookup.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class SecretKeyRef(BaseModel):
    """A key of a Secret in the resource's own namespace."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_NAME_PATTERN,
        description="Name of the Secret (a DNS-1123 subdomain, as Kubernetes requires).",
    )
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


class ProviderConfig(BaseModel):
    """Base of every provider block in `spec`; fields are camelCase in YAML."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )

    #: Fields that name one remote endpoint: only an InferenceEndpoint sets them, never an
    #: InferenceProvider (api/provider_kinds.py builds the provider's block without them).
    endpoint_fields: ClassVar[frozenset[str]] = frozenset({"endpoint_id"})
    #: Fields naming Secrets: set on the endpoint or on the provider object, never both.
    credential_fields: ClassVar[tuple[str, ...]] = ()
    #: Fields that decide where requests (and so credentials) go: an endpoint using a provider
    #: object's credentials may not change them, or it could send them to a server of its own.
    destination_fields: ClassVar[frozenset[str]] = frozenset({"url"})
    #: Fields choosing which part of an account a request acts on (a team, a workspace): one
    #: key may read several. Through a provider object an endpoint may set them only to what
    #: the object's `spec.allowedOverrides` lists (provider_objects.py).
    account_fields: ClassVar[frozenset[str]] = frozenset()

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        """The Secret keys a poll reads, in the order the adapter expects their values (all in
        one Secret); empty for providers without credentials."""
        return ()

    def destinations(self) -> dict[str, str]:
        """Where requests go, by field alias: each destination field's value, or the default
        the adapter applies when it is unset (a provider whose default is computed says so)."""
        out = {}
        for name in sorted(self.destination_fields):
            value = getattr(self, name, None)
            if value is not None:
                out[type(self).model_fields[name].alias or name] = str(value)
        return out


class CredentialedConfig(ProviderConfig):
    """A provider block whose requests carry a credential read from a Secret."""

    credential_fields: ClassVar[tuple[str, ...]] = ("credentials_secret_ref",)

    credentials_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the API credential, in the resource's namespace."
    )

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.credentials_secret_ref,)


ConfigT = TypeVar("ConfigT", bound=ProviderConfig)


@dataclass(frozen=True, slots=True)
class Target(Generic[ConfigT]):
    """One endpoint to poll. `key` is opaque to adapters: results are returned under it.

    `credential` holds the values of `config.secret_refs()`, joined by CREDENTIAL_SEPARATOR when
    there are several (an access key and its secret key): one string keeps account keys,
    fingerprints and redaction as they are for the one-token providers.
    """

    key: str
    config: ConfigT
    credential: str | None = None


#: Joins the values of several Secret keys into one `Target.credential`; a newline cannot be
#: part of a value, as Secret values are stripped and HTTP header values cannot hold one.
CREDENTIAL_SEPARATOR = "\n"


class Provider(ABC, Generic[ConfigT]):
    """A provider adapter.

    Subclasses set the class variables and implement `observe_one`, or override `observe` when
    the provider can answer many targets with one request.
    """

    #: The key of the provider block in `spec`, e.g. "friendli".
    name: ClassVar[str]
    #: Shown in the Provider printer column and in docs.
    display_name: ClassVar[str]
    #: The pydantic model of the provider block; the CRD schema is generated from it.
    config_model: ClassVar[type[ProviderConfig]]

    @property
    def batches(self) -> bool:
        """Whether one request can answer many targets (the adapter overrides `observe`); the
        scheduler coalesces due targets only for such providers."""
        return type(self).observe is not Provider.observe

    def account_key(self, config: ConfigT) -> Hashable:
        """Targets with equal keys (and equal credentials) share an HTTP client, a request budget,
        and may be answered by one request. The core adds the credential itself."""
        return (self.name, getattr(config, "url", None))

    def by_account(self, targets: Sequence[Target[ConfigT]]) -> list[list[Target[ConfigT]]]:
        """Targets split by account and credential, for adapters that batch.

        The core already hands over one account at a time; splitting again keeps a direct caller
        that mixes accounts from having one account's answers attributed to another.
        """
        groups: dict[tuple[Hashable, str | None], list[Target[ConfigT]]] = {}
        for target in targets:
            groups.setdefault((self.account_key(target.config), target.credential), []).append(
                target
            )
        return list(groups.values())

    async def each_account(
        self,
        client: httpx.AsyncClient,
        targets: Sequence[Target[ConfigT]],
        observe_account: Callable[
            [httpx.AsyncClient, Sequence[Target[ConfigT]]], Awaitable[Mapping[str, PollResult]]
        ],
    ) -> dict[str, PollResult]:
        """`observe_account` once per account among `targets` (`by_account`), concurrently, for
        adapters whose one request answers one account; the results merged."""
        parts = await concurrently(
            [observe_account(client, group) for group in self.by_account(targets)]
        )
        return {key: result for part in parts for key, result in part.items()}

    @abstractmethod
    def endpoint_label(self, config: ConfigT) -> str:
        """What identifies the remote endpoint to a human (id or URL), for `kubectl get -o wide`."""

    async def observe(
        self, client: httpx.AsyncClient, targets: Sequence[Target[ConfigT]]
    ) -> Mapping[str, PollResult]:
        """Poll every target and return one result per `target.key`.

        Per-target failures are returned as `ProviderError` values, not raised. The default polls
        each target on its own, concurrently; the client's connection limit bounds concurrency.
        """
        results = await concurrently([self._observe_caught(client, t) for t in targets])
        return {t.key: r for t, r in zip(targets, results, strict=True)}

    async def _observe_caught(
        self, client: httpx.AsyncClient, target: Target[ConfigT]
    ) -> PollResult:
        try:
            return await self.observe_one(client, target)
        except ProviderError as err:
            return err

    async def observe_one(self, client: httpx.AsyncClient, target: Target[ConfigT]) -> Observation:
        """Poll one target; raise `ProviderError` when the poll yields no observation."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither observe nor observe_one"
        )


_R = TypeVar("_R")


async def list_then_fetch(
    ids: Sequence[str],
    listing: Callable[[], Awaitable[tuple[Mapping[str, _R], ProviderError | None]]],
    fetch_one: Callable[[str], Awaitable[_R]],
    *,
    final: Callable[[ProviderError], bool],
) -> dict[str, _R | ProviderError]:
    """The batching every listing adapter uses: one listing answers several endpoints, and each
    endpoint it did not answer gets its own request.

    `listing` returns what it found and the error that cut it short, if any (a paged listing can
    fail half-way). Only with two or more ids is it worth a listing. Whether a listing error
    stops the fan-out is the provider's rule, `final(error)`: True when each endpoint's own
    request would fail the same way (retrying them would only multiply requests, and 429s,
    against the same account); those endpoints then report the listing's error.
    """
    found: Mapping[str, _R] = {}
    error: ProviderError | None = None
    if len(ids) >= 2:
        found, error = await listing()
    missing = [i for i in ids if i not in found]
    results: dict[str, _R | ProviderError] = dict(found)
    if error is not None and final(error):
        results.update(dict.fromkeys(missing, error))
        return results
    answers = await concurrently([caught(fetch_one(i)) for i in missing]) if missing else []
    results.update(zip(missing, answers, strict=True))
    return results


def rate_limited(error: ProviderError) -> bool:
    """The default stop rule of `list_then_fetch`: a 429 on the listing means the account is out
    of budget, so per-endpoint requests would only dig the hole deeper. Other errors (a listing
    route the credential may not use, a 5xx on the heavier call) leave the per-endpoint
    requests worth trying."""
    return error.reason is ErrorReason.RATE_LIMITED


async def caught(answer: Awaitable[_R]) -> _R | ProviderError:
    """The answer, or the `ProviderError` it raised, as a value (one result per endpoint)."""
    try:
        return await answer
    except ProviderError as err:
        return err
