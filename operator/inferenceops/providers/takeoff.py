"""Takeoff (self-hosted): `GET {url}/status` on the management API (port 3001 by default).

Spec: shared/providers/takeoff-management-status.md; mapping in docs/providers/takeoff.md.
Takeoff reports readers (model worker processes), not an endpoint state: the phase is derived
from how many readers are live, loading and dead. `/status` answers 503 while the server is not
available, which `get_json` already reports as Unreachable. Takeoff documents no authentication
for its management API, so no credential is sent.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from .base import Observation, Phase, Provider, RemoteEndpoint, Target, Workers
from .config import ProviderConfig
from .http import ProviderURL, excerpt, get_json
from .wire import Reduced

__all__ = ["CONSUMER_GROUP_PATTERN", "PROVIDER", "TakeoffConfig", "TakeoffProvider", "map_status"]

CONSUMER_GROUP_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"

#: The errorCode when every reader (in the consumer group) is dead.
READERS_DEAD = "ReadersDead"
#: A live reader is silent once this many heartbeats are overdue...
MISSED_HEARTBEATS = 3
#: ...and never sooner than this: the heartbeat was stamped by the Takeoff host's clock and is
#: read against ours, so a few seconds of skew must not read as silence.
MIN_SILENCE_SECONDS = 30.0
#: Heartbeat timestamps above this are in milliseconds (it is 5138 AD in seconds): the contract
#: says int64 without a unit.
_MILLISECONDS_ABOVE = 1e11


class TakeoffConfig(ProviderConfig):
    # Each Takeoff server is its own management API: an InferenceProvider only shares a budget.
    endpoint_fields: ClassVar[frozenset[str]] = frozenset({"url", "consumer_group"})

    url: Annotated[
        ProviderURL,
        Field(
            description="Base URL of the Takeoff management API, e.g. http://takeoff.ml.svc:3001.",
        ),
    ]
    consumer_group: Annotated[
        str | None,
        Field(
            pattern=CONSUMER_GROUP_PATTERN,
            description=(
                "Only count readers in this consumer group (Takeoff's `consumer_groups`); "
                "all readers when unset."
            ),
        ),
    ] = None


#: A group a manifest can hold (the spec's pattern); a listed group that is not one is left out.
_GROUP = re.compile(CONSUMER_GROUP_PATTERN)


class _Reader(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Documented as required, but only the filter needs it: a reader without it is simply in no
    # group, rather than a reason to fail the whole poll.
    consumer_groups: list[str] = Field(default_factory=list)


#: A reader as the mapping uses it: its consumer groups (the reader ids are the maps' keys).
_Groups = Annotated[frozenset[str], Reduced(_Reader, lambda r: frozenset(r.consumer_groups))]


class _Heartbeat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Documented as required; a half-filled entry is no evidence of silence, not a bad answer.
    heartbeat_timestamp: float | None = None
    heartbeat_wait_interval: float | None = None


#: (timestamp, wait interval) of a reader's last heartbeat.
_Beat = Annotated[
    tuple[float | None, float | None],
    Reduced(_Heartbeat, lambda h: (h.heartbeat_timestamp, h.heartbeat_wait_interval)),
]


def _silent(beat: tuple[float | None, float | None], now: float) -> bool:
    """Whether the reader has missed MISSED_HEARTBEATS beats (wait interval: how long a reader
    waits between beats, TAKEOFF_HEARTBEAT_WAIT_INTERVAL, seconds)."""
    timestamp, interval = beat
    if timestamp is None or interval is None:
        return False
    if timestamp > _MILLISECONDS_ABOVE:
        timestamp /= 1000
    limit = max(MISSED_HEARTBEATS * interval, MIN_SILENCE_SECONDS)
    return now - timestamp > limit


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Missing or null maps count as empty, so a version that omits an empty map still parses.
    live_readers: dict[str, _Groups] | None = None
    loading_readers: dict[str, _Groups] | None = None
    dead_readers: dict[str, _Groups] | None = None
    last_heartbeat: dict[str, _Beat] | None = None


class _Config(BaseModel):
    # Nothing of it is read: declaring no field lets pydantic-core skip its contents unbuilt,
    # however large (docs/providers.md, "Hostile bodies").
    model_config = ConfigDict(extra="ignore")


class _StatusResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # The contract requires `config` and makes `status` optional and nullable. Requiring the
    # object, not its fields, keeps an unrelated server's `{}` out while older servers, whose
    # config has fewer fields, still pass.
    config: _Config
    status: _Status | None = None


def _in_group(readers: dict[str, frozenset[str]] | None, group: str | None) -> list[str]:
    if not readers:
        return []
    return sorted(rid for rid, groups in readers.items() if group is None or group in groups)


def _dead_message(dead: list[str], total: int) -> str:
    return excerpt(f"{len(dead)} of {total} readers dead: {', '.join(dead)}", 200)


def _silent_message(silent: list[str], live: int) -> str:
    # No age in it: the message must not change with every poll while the reader stays silent.
    return f"{len(silent)} of {live} live readers without a heartbeat: {', '.join(silent)}"


def map_status(body: _StatusResponse, consumer_group: str | None, now: float) -> Observation:
    """`now` is the current Unix time, for the heartbeats' age."""
    status = body.status
    if status is None:
        # The server answers (the contract: 200 means it is running) but reports no reader state
        # yet, as before its readers have registered: it is starting, not serving.
        said = "status=null" if "status" in body.model_fields_set else "no status"
        return Observation(phase=Phase.PROVISIONING, provider_status=said)
    live = _in_group(status.live_readers, consumer_group)
    loading = _in_group(status.loading_readers, consumer_group)
    dead = _in_group(status.dead_readers, consumer_group)
    total = len(live) + len(loading) + len(dead)
    counts = f"live={len(live)} loading={len(loading)} dead={len(dead)}"
    beats = status.last_heartbeat or {}
    # A live reader whose heartbeats stopped may have hung: Takeoff still routes to it, so the
    # endpoint serves, but not as well as it says. Only a reader we have a beat for can be silent.
    silent = [r for r in live if r in beats and _silent(beats[r], now)]
    workers = Workers(ready=len(live) - len(silent), total=total)
    if live:
        if dead or silent:
            problems = [_dead_message(dead, total)] if dead else []
            problems += [_silent_message(silent, len(live))] if silent else []
            return Observation(
                phase=Phase.DEGRADED,
                provider_status=counts,
                error_message=excerpt("; ".join(problems), 300),
                workers=workers,
            )
        return Observation(phase=Phase.RUNNING, provider_status=counts, workers=workers)
    if loading:
        return Observation(phase=Phase.PROVISIONING, provider_status=counts, workers=workers)
    if dead:
        return Observation(
            phase=Phase.FAILED,
            provider_status=counts,
            error_code=READERS_DEAD,
            error_message=_dead_message(dead, total),
            workers=workers,
        )
    # No readers at all: nothing serves, and nothing has failed either. A server still spawning
    # readers looks exactly like this, so Provisioning; the status text says why it is not
    # Running, since a misspelt consumer group also lands here.
    where = f" in consumer group {consumer_group!r}" if consumer_group is not None else ""
    return Observation(
        phase=Phase.PROVISIONING, provider_status=f"{counts} (no readers{where})", workers=workers
    )


class TakeoffProvider(Provider[TakeoffConfig]):
    name = "takeoff"
    display_name = "Takeoff"
    config_model = TakeoffConfig
    lists = True
    listing = (
        "the consumer groups of the server's readers (GET /status); a Takeoff provider object "
        "names no server, so it has no inventory"
    )

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        # Wall-clock time: heartbeats are Unix timestamps.
        self._clock = clock

    async def list_endpoints(
        self, client: httpx.AsyncClient, account: Target[TakeoffConfig]
    ) -> AsyncIterator[list[RemoteEndpoint]]:
        url = account.config.url.rstrip("/")
        body = await get_json(client, url + "/status", _StatusResponse)
        status = body.status
        groups: set[str] = set()
        if status is not None:
            for readers in (status.live_readers, status.loading_readers, status.dead_readers):
                for reader_groups in (readers or {}).values():
                    groups |= reader_groups
        fine = sorted(g for g in groups if _GROUP.fullmatch(g))
        yield [RemoteEndpoint(g, g, {"url": url, "consumerGroup": g}) for g in fine]

    def endpoint_label(self, config: TakeoffConfig) -> str:
        if config.consumer_group is None:
            return config.url
        return f"{config.url}#{config.consumer_group}"

    async def observe_one(
        self, client: httpx.AsyncClient, target: Target[TakeoffConfig]
    ) -> Observation:
        url = target.config.url.rstrip("/") + "/status"
        body = await get_json(client, url, _StatusResponse)
        return map_status(body, target.config.consumer_group, self._clock())


PROVIDER = TakeoffProvider()
