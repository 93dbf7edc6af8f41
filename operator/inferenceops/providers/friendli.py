"""FriendliAI Dedicated Endpoints: `GET {url}/dedicated/beta/endpoint/{id}/status`, plus details.

Spec: shared/providers/friendli-dedicated-endpoint-status.md and NOTES.md (list and details calls).
The status document carries no worker counts, so they come from the endpoint details
(`GET {url}/dedicated/beta/endpoint/{id}`). Details are a nice-to-have: a details call that fails
in any way leaves the observation without workers, it never fails the poll.

With two or more endpoints in one account the list call (`GET {url}/dedicated/beta/endpoint`)
answers all of them in a page or a few, and details are refreshed only when an endpoint's status
changed or its cached details are about `details_max_age` old. See docs/providers/friendli.md.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, OnErrorOmit

from ..timestamps import parse_timestamp
from .base import (
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    Provider,
    ProviderError,
    RemoteEndpoint,
    Target,
    Workers,
)
from .batching import list_then_fetch, rate_limited
from .config import CredentialedConfig
from .http import MAX_PAGE_BYTES, SAFE_ID_PATTERN, ProviderURL, get_json
from .wire import ParseContext, wanted_key

__all__ = [
    "PROVIDER",
    "FriendliConfig",
    "FriendliProvider",
    "Replicas",
    "map_details",
    "map_status",
]

DEFAULT_URL = "https://api.friendli.ai"
ENDPOINT_ID_PATTERN = SAFE_ID_PATTERN
# Friendli does not document the team id's format; this only keeps it a safe header value.
TEAM_ID_PATTERN = r"^[!-~]{1,256}$"

#: Largest page the list call accepts (NOTES.md: `limit` 1-100).
LIST_PAGE_SIZE = 100
#: Stops a provider that keeps handing out cursors from holding a poll forever (10,000 endpoints).
MAX_LIST_PAGES = 100
#: Longest `nextCursor` followed (100 pages of them are kept while a listing is read).
MAX_CURSOR_CHARS = 1024
#: An id a manifest can hold (the spec's pattern); a listed id that is not one is left out.
_SAFE_ID = re.compile(ENDPOINT_ID_PATTERN)
#: Cached details of an endpoint no target has asked about for this long are dropped.
CACHE_IDLE_SECONDS = 3600.0


class FriendliConfig(CredentialedConfig):
    # One key may act for several teams (X-Friendli-Team).
    account_fields: ClassVar[frozenset[str]] = frozenset({"team_id"})

    endpoint_id: Annotated[
        str,
        Field(
            pattern=ENDPOINT_ID_PATTERN,
            description="ID of the Friendli Dedicated Endpoint.",
        ),
    ]
    team_id: Annotated[
        str | None,
        Field(
            pattern=TEAM_ID_PATTERN,
            description="Team to run requests as (sent as X-Friendli-Team); the key's default "
            "team when unset.",
        ),
    ] = None
    url: Annotated[
        ProviderURL,
        Field(
            description="Base URL of the Friendli API.",
        ),
    ] = DEFAULT_URL

    def base_url(self) -> str:
        return self.url.rstrip("/")


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Plain str, not enums: a new status, phase or error code must map to Unknown or pass through
    # verbatim, not fail the poll.
    status: str
    phase: str | None = None
    errorCode: str | None = None
    updatedAt: str | None = None


class _ListPage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # An entry the model rejects is left out, so that one odd entry sends only its own endpoint
    # to the per-endpoint fallback instead of discarding the whole page; so is every entry of an
    # endpoint not asked about, as it is parsed (`wanted_key`).
    data: dict[Annotated[str, wanted_key], OnErrorOmit[_Status]]
    # Every cursor of a listing is kept (to stop on a repeated one) and sent back in a URL: a
    # page whose cursor is longer than any opaque token needs to be is refused.
    nextCursor: Annotated[str, Field(max_length=MAX_CURSOR_CHARS)] | None = None


class _IdPage(BaseModel):
    """A list page as an import reads it: the ids only (the list carries no names)."""

    model_config = ConfigDict(extra="ignore")
    data: dict[str, OnErrorOmit[_Status]]
    nextCursor: Annotated[str, Field(max_length=MAX_CURSOR_CHARS)] | None = None


_Page = TypeVar("_Page", _ListPage, _IdPage)


async def _pages(
    client: httpx.AsyncClient,
    base: str,
    model: type[_Page],
    headers: Mapping[str, str],
    context: ParseContext | None = None,
) -> AsyncGenerator[_Page, None]:
    """The pages of the endpoint list, following `nextCursor` (polling and import read it
    alike). A repeated cursor ends it (it would loop forever); one longer than MAX_LIST_PAGES
    pages is refused."""
    url = f"{base}/dedicated/beta/endpoint"
    cursor: str | None = None
    used: set[str] = set()
    for _ in range(MAX_LIST_PAGES):
        params: dict[str, str | int] = {"limit": LIST_PAGE_SIZE}
        if cursor:
            params["cursor"] = cursor
        page = await get_json(
            client,
            url,
            model,
            headers=headers,
            params=params,
            max_bytes=MAX_PAGE_BYTES,
            context=context,
        )
        yield page
        cursor = page.nextCursor
        if not cursor or cursor in used:
            return
        used.add(cursor)
    raise ProviderError(
        ErrorReason.BAD_RESPONSE,
        f"endpoint list did not end after {MAX_LIST_PAGES} pages of {LIST_PAGE_SIZE}",
    )


class _Details(BaseModel):
    model_config = ConfigDict(extra="ignore")
    currReplicaCnt: NonNegativeInt | None = None
    desiredReplicaCnt: NonNegativeInt | None = None
    autoscalingMin: NonNegativeInt | None = None
    autoscalingMax: NonNegativeInt | None = None
    updatedReplicaCnt: NonNegativeInt | None = None


@dataclass(frozen=True, slots=True)
class Replicas:
    """What the details call adds to the status document: worker counts, and how many replicas
    already run the endpoint's new version (for a rollout's progress)."""

    workers: Workers
    updated: int | None = None


_STATUS_PHASES: dict[str, Phase] = {
    "INITIALIZING": Phase.PROVISIONING,
    "RUNNING": Phase.RUNNING,
    "READY": Phase.RUNNING,
    "UPDATING": Phase.UPDATING,
    "SLEEPING": Phase.SLEEPING,
    "AWAKING": Phase.WAKING,
    "FAILED": Phase.FAILED,
    "STOPPING": Phase.TERMINATING,
    "TERMINATING": Phase.TERMINATING,
    "TERMINATED": Phase.TERMINATED,
    "UNKNOWN": Phase.UNKNOWN,
}


def map_status(body: _Status, replicas: Replicas | None = None) -> Observation:
    phase = _STATUS_PHASES.get(body.status, Phase.UNKNOWN)
    error_code = (body.errorCode or "FAILED") if phase is Phase.FAILED else None
    provider_phase, progress = body.phase, None
    desired = replicas.workers.total if replicas else None
    if phase is Phase.UPDATING and replicas and replicas.updated is not None and desired:
        # Friendli documents no sub-phase for UPDATING; the replicas already on the new version
        # say how far the rollout is, as RunPod's stale workers do.
        updated = min(replicas.updated, desired)
        provider_phase = provider_phase or f"rolling update: {updated}/{desired} replicas updated"
        progress = 100 * updated // desired
    return Observation(
        phase=phase,
        provider_status=body.status,
        provider_phase=provider_phase,
        error_code=error_code,
        progress=progress,
        workers=replicas.workers if replicas else None,
        changed_at=parse_timestamp(body.updatedAt),
    )


def map_details(body: _Details) -> Replicas:
    workers = Workers(
        ready=body.currReplicaCnt,
        total=body.desiredReplicaCnt,
        min=body.autoscalingMin,
        max=body.autoscalingMax,
    )
    return Replicas(workers, body.updatedReplicaCnt)


@dataclass(slots=True)
class _CachedDetails:
    status: str
    replicas: Replicas
    refresh_at: float
    seen_at: float


#: (base URL, team id, endpoint id): the same id in another team or deployment is another endpoint.
_CacheKey = tuple[str, str | None, str]


class FriendliProvider(Provider[FriendliConfig]):
    name = "friendli"
    display_name = "FriendliAI"
    config_model = FriendliConfig
    batches = True
    lists = True
    listing = (
        "every endpoint of the team, 100 a page (GET /dedicated/beta/endpoint); the list "
        "carries no names, so names come from the ids"
    )
    listing_stub = {"endpointId": "listing"}

    def __init__(
        self,
        *,
        details_max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.details_max_age = details_max_age
        self._clock = clock
        self._rng = rng
        self._details: dict[_CacheKey, _CachedDetails] = {}

    def account_key(self, config: FriendliConfig) -> Hashable:
        return (self.name, config.base_url(), config.team_id)

    def endpoint_label(self, config: FriendliConfig) -> str:
        return config.endpoint_id

    async def observe(
        self, client: httpx.AsyncClient, targets: Sequence[Target[FriendliConfig]]
    ) -> Mapping[str, PollResult]:
        self._evict(self._clock())
        return await self.each_account(client, targets, self._observe_account)

    async def _observe_account(
        self, client: httpx.AsyncClient, targets: Sequence[Target[FriendliConfig]]
    ) -> dict[str, PollResult]:
        config = targets[0].config
        base, team = config.base_url(), config.team_id
        headers = _headers(targets[0])
        ids = list(dict.fromkeys(t.config.endpoint_id for t in targets))
        batched = len(ids) >= 2

        statuses = await list_then_fetch(
            ids,
            lambda: self._list(client, base, headers, set(ids)),
            lambda i: self._status(client, base, i, headers),
            final=rate_limited,
        )

        now = self._clock()
        refresh = [
            (i, s)
            for i, s in statuses.items()
            if isinstance(s, _Status) and (not batched or self._stale((base, team, i), s, now))
        ]
        refreshed = await asyncio.gather(
            *(self._details_or_none(client, base, i, headers) for i, _ in refresh)
        )
        for (i, status), replicas in zip(refresh, refreshed, strict=True):
            if replicas is None:
                # Forget stale counts: the next poll asks again instead of showing old numbers.
                self._details.pop((base, team, i), None)
            else:
                # A random age in [max/2, 3max/2) (mean: max): details fetched together at
                # start-up come due spread over several cycles, not all in one.
                age = self.details_max_age * (0.5 + self._rng())
                self._details[(base, team, i)] = _CachedDetails(
                    status.status, replicas, now + age, now
                )

        observations: dict[str, PollResult] = {}
        for i, answer in statuses.items():
            if isinstance(answer, ProviderError):
                observations[i] = answer
                continue
            cached = self._details.get((base, team, i))
            if cached is not None:
                cached.seen_at = now
            observations[i] = map_status(answer, cached.replicas if cached else None)
        return {t.key: observations[t.config.endpoint_id] for t in targets}

    async def _list(
        self,
        client: httpx.AsyncClient,
        base: str,
        headers: Mapping[str, str],
        wanted: set[str],
    ) -> tuple[dict[str, _Status], ProviderError | None]:
        """Status of the wanted endpoints the list shows, and the error that cut it short."""
        found: dict[str, _Status] = {}
        pages = _pages(client, base, _ListPage, headers, ParseContext(wanted=wanted))
        try:
            async for page in pages:
                found.update(page.data)
                if wanted <= found.keys():  # every wanted endpoint seen: no more pages
                    break
        except ProviderError as err:
            return found, err
        finally:
            await pages.aclose()
        return found, None

    async def list_endpoints(
        self, client: httpx.AsyncClient, account: Target[FriendliConfig]
    ) -> AsyncIterator[list[RemoteEndpoint]]:
        async for page in _pages(client, account.config.base_url(), _IdPage, _headers(account)):
            yield [
                RemoteEndpoint(i, i, {"endpointId": i}) for i in page.data if _SAFE_ID.fullmatch(i)
            ]

    async def _status(
        self,
        client: httpx.AsyncClient,
        base: str,
        endpoint_id: str,
        headers: Mapping[str, str],
    ) -> _Status:
        url = f"{base}/dedicated/beta/endpoint/{endpoint_id}/status"
        return await get_json(client, url, _Status, headers=headers)

    async def _details_or_none(
        self,
        client: httpx.AsyncClient,
        base: str,
        endpoint_id: str,
        headers: Mapping[str, str],
    ) -> Replicas | None:
        url = f"{base}/dedicated/beta/endpoint/{endpoint_id}"
        try:
            return map_details(await get_json(client, url, _Details, headers=headers))
        except ProviderError:
            return None

    def _stale(self, key: _CacheKey, status: _Status, now: float) -> bool:
        cached = self._details.get(key)
        return cached is None or cached.status != status.status or now >= cached.refresh_at

    def _evict(self, now: float) -> None:
        for key in [k for k, v in self._details.items() if now - v.seen_at > CACHE_IDLE_SECONDS]:
            del self._details[key]


def _headers(target: Target[FriendliConfig]) -> dict[str, str]:
    headers: dict[str, str] = {}
    if target.credential is not None:
        headers["Authorization"] = f"Bearer {target.credential}"
    if target.config.team_id is not None:
        headers["X-Friendli-Team"] = target.config.team_id
    return headers


PROVIDER = FriendliProvider()
