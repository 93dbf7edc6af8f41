"""The one interface every provider adapter implements, and the values it hands back.

An adapter turns targets (validated provider blocks plus their credential) into HTTP requests and
the answers into `Observation`s. It never touches Kubernetes and knows nothing of status
conditions: `inferenceops.status` turns observations into status. The provider blocks' base
models are in `config.py`, the batching helpers of listing adapters in `batching.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from ..aiotasks import concurrently
from .config import ProviderConfig

__all__ = [
    "CREDENTIAL_SEPARATOR",
    "MAX_LISTED",
    "ErrorReason",
    "Observation",
    "Phase",
    "PollResult",
    "Provider",
    "ProviderError",
    "Queue",
    "RemoteEndpoint",
    "Target",
    "Workers",
    "declared_id",
    "declared_ids",
]


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


#: The most endpoints a listing may hand over (100 pages of 100): each id is held while it is
#: used, and a provider sending more (a page over its limit, again and again) is not followed.
MAX_LISTED = 10_000


def too_many_listed() -> ProviderError:
    return ProviderError(
        ErrorReason.BAD_RESPONSE, f"the listing holds more than {MAX_LISTED} endpoints"
    )


@dataclass(frozen=True, slots=True)
class RemoteEndpoint:
    """One endpoint an account's listing shows (`Provider.list_endpoints`)."""

    #: The provider's id of it.
    id: str
    #: Its name at the provider (hostile: cleaned before it is shown); the id where the listing
    #: carries no name (FriendliAI's).
    name: str
    #: The endpoint fields of the spec block that name it, by their spec (camelCase) names.
    fields: Mapping[str, str]


def declared_id(block: object) -> str | None:
    """The `RemoteEndpoint.id` an InferenceEndpoint's provider block names (`endpointId`, or
    Takeoff's `consumerGroup`), if it names one: what counts an endpoint as declared."""
    if not isinstance(block, Mapping):
        return None
    ident = block.get("endpointId", block.get("consumerGroup"))
    return ident if isinstance(ident, str) else None


def declared_ids(provider: Provider[Any], endpoints: Iterable[Mapping[str, Any]]) -> set[str]:
    """The ids (`RemoteEndpoint.id`: endpointId, or Takeoff's consumer group) of `provider`'s
    endpoints the InferenceEndpoints in `endpoints` already declare."""
    found = (declared_id((e.get("spec") or {}).get(provider.name)) for e in endpoints)
    return {ident for ident in found if ident is not None}


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

    Subclasses set the class variables and implement `observe_one`, or override `observe` and
    declare `batches` when the provider can answer many targets with one request.
    """

    #: The key of the provider block in `spec`, e.g. "friendli".
    name: ClassVar[str]
    #: Shown in the Provider printer column and in docs.
    display_name: ClassVar[str]
    #: The pydantic model of the provider block; the CRD schema is generated from it.
    config_model: ClassVar[type[ProviderConfig]]

    #: Whether one request can answer many targets: such an adapter overrides `observe`, and the
    #: scheduler coalesces due targets of one account only for it. Declared rather than inferred
    #: from the code, as External Secrets' `Capabilities()`; the conformance suite checks the
    #: declaration against `observe` (tests/unit/providers/test_conformance.py).
    batches: ClassVar[bool] = False
    #: Whether `list_endpoints` can list the endpoints an account (a provider object, or the
    #: server a block names) holds; `listing` says what a listing covers, or why there is none.
    lists: ClassVar[bool] = False
    listing: ClassVar[str] = "this provider cannot list its endpoints"
    #: Values for the endpoint fields a block needs before it validates, so that an account's
    #: block (which has none) can become the config a listing is made with.
    listing_stub: ClassVar[Mapping[str, Any]] = {}

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

    def listing_config(self, block: Mapping[str, Any]) -> ConfigT:
        """The config a listing of the account in `block` (a provider object's or an endpoint's
        block) is made with; pydantic's ValidationError when the block is not one."""
        config = self.config_model.model_validate({**block, **self.listing_stub})
        return config  # type: ignore[return-value]

    async def list_endpoints(
        self, client: httpx.AsyncClient, account: Target[ConfigT]
    ) -> AsyncIterator[list[RemoteEndpoint]]:
        """Every endpoint of `account`, a page at a time (each page one request through the
        account's client, so its budget); raises `ProviderError` when a page fails, after the
        pages before it were yielded. Declared by `lists`."""
        raise ProviderError(ErrorReason.BAD_RESPONSE, self.listing)
        yield []  # pragma: no cover (makes this a generator, as the overrides are)

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
