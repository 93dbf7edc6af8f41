"""FriendliAI Dedicated Endpoints (`{base}/friendli/dedicated/beta/endpoint...`).

Assumptions where the docs are silent:
- Errors use FastAPI's `{"detail": "..."}`; an out-of-range `limit` is FastAPI's 422 validation
  document, a cursor we did not issue is 400.
- Team scoping is strict both ways: an endpoint is visible only to requests whose
  `X-Friendli-Team` equals the endpoint's team, and an endpoint without a team only to requests
  without the header (the caller's default team).
- `nextCursor` is an opaque offset; it is null on the last page.
- `project_id` filters the list on the endpoint's project (`project`, default
  `emulator-project`); an unknown project lists nothing, as a filter does.
- Any status string is served as given, so clients can be tested against values added later.
- The details document (`DedicatedEndpointSpec`) carries only the official members; those the
  emulator has no state for take the official example's values, and `teamId` (a required
  string) is `emulator-default-team` for an endpoint put without a team.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._core import (
    Emulation,
    Reply,
    Route,
    Store,
    bearer_auth,
    int_or_none,
    iso_now,
    public_fields,
    reason,
)

_META = ("endpoint_id", "created_at", "updated_at")
PREFIX = "/friendli/dedicated/beta/endpoint"
#: The team of an endpoint put without one: the caller's default team, whose id the API still
#: names.
DEFAULT_TEAM = "emulator-default-team"


@dataclass
class FriendliEndpoint:
    endpoint_id: str
    status: str
    phase: str | None
    error_code: str | None
    team: str | None
    name: str
    curr_replicas: int | None
    desired_replicas: int | None
    updated_replicas: int | None
    autoscaling_min: int
    autoscaling_max: int
    project: str
    created_at: str
    updated_at: str

    def status_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "errorCode": self.error_code,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "phase": self.phase,
        }

    def details_json(self) -> dict[str, Any]:
        # DedicatedEndpointSpec: no status, model or timestamps; the status route has those.
        return {
            "name": self.name,
            "gpuType": "NVIDIA H100",
            "numGpu": 1,
            "instanceId": f"instance-{self.endpoint_id}",
            "projectId": self.project,
            "creatorId": "emulator-user",
            "teamId": self.team or DEFAULT_TEAM,
            "autoscalingMin": self.autoscaling_min,
            "autoscalingMax": self.autoscaling_max,
            "autoscalingCooldown": 300,
            "maxBatchSize": 256,
            "maxInputLength": None,
            "maxContextLength": None,
            "tokenizerSkipSpecialTokens": True,
            "tokenizerAddSpecialTokens": False,
            "currReplicaCnt": self.curr_replicas,
            "desiredReplicaCnt": self.desired_replicas,
            "updatedReplicaCnt": self.updated_replicas,
        }


class FriendliStore(Store[FriendliEndpoint]):
    provider = "friendli"

    def put(
        self,
        endpoint_id: str,
        *,
        status: str = "RUNNING",
        phase: str | None = None,
        error_code: str | None = None,
        team: str | None = None,
        name: str | None = None,
        curr_replicas: int | None = 1,
        desired_replicas: int | None = 1,
        updated_replicas: int | None = 1,
        autoscaling_min: int = 0,
        autoscaling_max: int = 1,
        project: str = "emulator-project",
    ) -> FriendliEndpoint:
        """Create or replace an endpoint; fields not given take their defaults."""
        old = self._items.get(endpoint_id)
        now = iso_now()
        rec = FriendliEndpoint(
            endpoint_id=str(endpoint_id),
            status=str(status),
            phase=phase,
            error_code=error_code,
            team=team,
            name=name if name is not None else str(endpoint_id),
            curr_replicas=int_or_none(curr_replicas),
            desired_replicas=int_or_none(desired_replicas),
            updated_replicas=int_or_none(updated_replicas),
            autoscaling_min=int(autoscaling_min),
            autoscaling_max=int(autoscaling_max),
            project=str(project),
            created_at=old.created_at if old else now,
            updated_at=now,
        )
        return self._save(rec.endpoint_id, rec)

    def patch(self, endpoint_id: str, **changes: Any) -> FriendliEndpoint:
        """Change only the given fields of an existing endpoint (KeyError if unknown)."""
        current = public_fields(self._items[endpoint_id], _META)
        return self.put(endpoint_id, **{**current, **changes})

    def visible(self, endpoint_id: str, team: str | None) -> FriendliEndpoint | None:
        rec = self._items.get(endpoint_id)
        return rec if rec is not None and rec.team == team else None

    def scoped(self, team: str | None, project: str | None = None) -> Iterator[FriendliEndpoint]:
        return (
            r
            for r in self._items.values()
            if r.team == team and (project is None or r.project == project)
        )


def error(_request: web.Request, status: int, message: str | None) -> Reply:
    return Reply(status=status, body={"detail": message or reason(status)})


def _team(request: web.Request) -> str | None:
    return request.headers.get("X-Friendli-Team") or None


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not text.startswith("o:") or not text[2:].isdigit():
        return None
    return int(text[2:])


def _limit_error(raw: str, kind: str, msg: str, ctx: dict[str, Any] | None) -> Reply:
    item: dict[str, Any] = {"type": kind, "loc": ["query", "limit"], "msg": msg, "input": raw}
    if ctx is not None:
        item["ctx"] = ctx
    return Reply(status=422, body={"detail": [item]})


def routes(store: FriendliStore) -> list[Route]:
    def not_found(endpoint_id: str) -> Reply:
        return Reply(status=404, body={"detail": f"Endpoint {endpoint_id} not found"})

    async def status(request: web.Request) -> Reply:
        endpoint_id = request.match_info["endpoint_id"]
        rec = store.visible(endpoint_id, _team(request))
        return not_found(endpoint_id) if rec is None else Reply(body=rec.status_json())

    async def details(request: web.Request) -> Reply:
        endpoint_id = request.match_info["endpoint_id"]
        rec = store.visible(endpoint_id, _team(request))
        return not_found(endpoint_id) if rec is None else Reply(body=rec.details_json())

    async def listing(request: web.Request) -> Reply:
        raw_limit = request.query.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            return _limit_error(
                raw_limit,
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
                None,
            )
        if limit < 1:
            return _limit_error(
                raw_limit,
                "greater_than_equal",
                "Input should be greater than or equal to 1",
                {"ge": 1},
            )
        if limit > 100:
            return _limit_error(
                raw_limit,
                "less_than_equal",
                "Input should be less than or equal to 100",
                {"le": 100},
            )
        offset = 0
        cursor = request.query.get("cursor")
        if cursor:
            decoded = _decode_cursor(cursor)
            if decoded is None:
                return Reply(status=400, body={"detail": "Invalid cursor"})
            offset = decoded
        project = request.query.get("project_id") or None
        scoped = store.scoped(_team(request), project)
        page = list(itertools.islice(scoped, offset, offset + limit + 1))
        more = len(page) > limit
        data = {r.endpoint_id: r.status_json() for r in page[:limit]}
        next_cursor = _encode_cursor(offset + limit) if more else None
        return Reply(body={"data": data, "nextCursor": next_cursor})

    async def unknown_path(request: web.Request) -> Reply:
        return error(request, 404, None)

    def ep_keys(request: web.Request) -> tuple[str, ...]:
        return (request.match_info["endpoint_id"],)

    def no_keys(_request: web.Request) -> tuple[str, ...]:
        return ()

    return [
        Route(PREFIX, listing, no_keys),
        Route(PREFIX + "/{endpoint_id}", details, ep_keys),
        Route(PREFIX + "/{endpoint_id}/status", status, ep_keys),
        Route("/friendli/{tail:.*}", unknown_path, no_keys, method="*"),
    ]


EMULATION = Emulation(
    name="friendli",
    key=("endpoint",),
    urls={"friendli": "/friendli"},
    auth=bearer_auth,
    error=error,
    new_store=FriendliStore,
    routes=routes,
)
