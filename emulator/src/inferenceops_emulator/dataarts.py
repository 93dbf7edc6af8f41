"""Huawei Cloud DataArts Fabric endpoints (`{base}/dataarts/v1/workspaces/{ws}/endpoints...`).

Assumptions where the docs are silent:
- Service-specific error codes use the `DataArtsFabric.` prefix (Huawei services name codes
  `<Service>.<8 digits>`, e.g. `DataArtsInsight.20010003`): unknown workspace
  `DataArtsFabric.00010003`, unknown endpoint `DataArtsFabric.00010009`, both HTTP 400.
- Gateway errors come from APIG: 401 `APIG.1002`, 404 `APIG.0101` (unknown route), 429
  `APIG.0308`, 503 `APIG.0202`; 403/408/500 use the documented bodies.
- Listing keeps creation order (oldest first); `name` matches as a case-insensitive substring;
  `visibility` blank or ALL returns both visibilities.
- The single GET returns the same EndpointBriefInfo object as the list.
- `model_id` is stored for the filter but, as in the documented EndpointBriefInfo, not returned.
- `error_code`/`error_msg` are present only when set; a *_FAILED status without them gets a
  generic pair. `ray_resource` is present only for `ray` and `ray_service`; `reserved_resource`
  carries `dpu` for `sql` endpoints and `apu` for the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from inferenceops.providers.hwsign import ALGORITHM, verify

from ._core import Accepted, Emulation, Hub, Reply, Route, iso_now, public_fields

TYPES = ("service", "ray", "inference", "job", "ray_service", "sql")
STATUSES = (
    "CREATING",
    "RUNNING",
    "CREATE_FAILED",
    "DELETING",
    "DELETED",
    "UPDATING",
    "UPDATE_FAILED",
    "DELETE_FAILED",
    "FROZEN",
    "INACTIVE",
    "TRIAL_ENDED",
)
CODE_PREFIX = "DataArtsFabric"
WORKSPACE_NOT_FOUND = f"{CODE_PREFIX}.00010003"
ENDPOINT_NOT_FOUND = f"{CODE_PREFIX}.00010009"
BAD_REQUEST = "common.01000001"
_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_META = ("workspace", "endpoint_id", "created_at", "updated_at", "rendered")

_ERRORS: dict[int, tuple[str, str]] = {
    400: (BAD_REQUEST, "failed to read http request, please check your input"),
    401: ("APIG.1002", "Incorrect token or token resolution failed"),
    404: ("APIG.0101", "The API does not exist or has not been published in the environment"),
    408: ("common.00000408", "timeout exception occurred"),
    429: (
        "APIG.0308",
        "The throttling threshold has been reached: policy user over ratelimit, "
        "limit:100, time:1 minute",
    ),
    500: ("common.00000500", "internal error"),
    503: ("APIG.0202", "Backend unavailable"),
}


def _hex(*parts: str) -> str:
    return hashlib.blake2s("/".join(parts).encode(), digest_size=16).hexdigest()


_OWNER = {
    "domain_name": "emulator",
    "domain_id": _hex("domain"),
    "user_name": "emulator",
    "user_id": _hex("user"),
}


@dataclass
class DataArtsEndpoint:
    workspace: str
    endpoint_id: str
    name: str
    status: str
    type: str
    warm_up_num: int
    max_num: int | None
    spec_code: str
    model_id: str | None
    visibility: str
    description: str
    error_code: str | None
    error_msg: str | None
    worker_groups: list[dict[str, Any]] | None
    public_access: bool
    created_at: str
    updated_at: str
    rendered: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def brief(self) -> dict[str, Any]:
        # Cached: a record is replaced, never mutated, so its rendering never goes stale.
        if self.rendered is None:
            self.rendered = self._render()
        return self.rendered

    def _render(self) -> dict[str, Any]:
        max_num = self.max_num if self.max_num is not None else self.warm_up_num
        if self.type == "sql":
            reserved: dict[str, Any] = {
                "dpu": {
                    "spec_code": self.spec_code,
                    "warm_up_num": self.warm_up_num,
                    "max_num": max_num,
                    "use_public_resource": False,
                }
            }
        else:
            reserved = {
                "apu": {
                    "spec_code": self.spec_code,
                    "warm_up_num": self.warm_up_num,
                    "max_num": max_num,
                }
            }
        body: dict[str, Any] = {
            "visibility": self.visibility,
            "id": self.endpoint_id,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "description": self.description,
            "create_time": self.created_at,
            "update_time": self.updated_at,
            "owner": dict(_OWNER),
            "cap": {
                "cap_id": _hex("cap", self.endpoint_id),
                "version_id": _hex("cap-version", self.endpoint_id),
            },
            "reserved_resource": reserved,
            "caches": [],
            "public_access": self.public_access,
        }
        if self.type in ("ray", "ray_service"):
            groups = self.worker_groups
            if groups is None:
                groups = [
                    {
                        "name": "worker",
                        "spec_code": self.spec_code,
                        "min_replicas": self.warm_up_num,
                        "max_replicas": max_num,
                    }
                ]
            body["ray_resource"] = {
                "head_group_spec": {"spec_code": self.spec_code},
                "worker_group_spec": [dict(g) for g in groups],
            }
        error_code, error_msg = self.error_code, self.error_msg
        if self.status.endswith("_FAILED"):
            error_code = error_code or f"{CODE_PREFIX}.00040001"
            error_msg = error_msg or f"endpoint {self.status.lower().replace('_', ' ')}"
        if error_code is not None:
            body["error_code"] = error_code
        if error_msg is not None:
            body["error_msg"] = error_msg
        return body


class _Workspace:
    """Endpoints of one workspace, kept in creation order for cheap offset paging."""

    def __init__(self) -> None:
        self.items: dict[str, DataArtsEndpoint] = {}
        self._order: list[str] = []
        self._dirty = False

    def order(self) -> list[str]:
        if self._dirty:
            # Deletions compact lazily so deleting many endpoints stays linear overall.
            self._order = [i for i in self._order if i in self.items]
            self._dirty = False
        return self._order

    def put(self, rec: DataArtsEndpoint) -> None:
        if rec.endpoint_id not in self.items:
            self.order().append(rec.endpoint_id)
        self.items[rec.endpoint_id] = rec

    def delete(self, endpoint_id: str) -> bool:
        if self.items.pop(endpoint_id, None) is None:
            return False
        self._dirty = True
        return True


class DataArtsStore:
    provider = "dataArtsFabric"

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._workspaces: dict[str, _Workspace] = {}

    def create_group(self, workspace: str) -> None:
        """Make an (empty) workspace exist; putting an endpoint creates its workspace too."""
        if not _ID_RE.match(workspace):
            raise ValueError(f"workspace id {workspace!r}: 1-36 letters, digits, hyphens")
        self._workspaces.setdefault(workspace, _Workspace())

    def put(
        self,
        workspace: str,
        endpoint_id: str,
        *,
        status: str = "RUNNING",
        type: str = "inference",
        name: str | None = None,
        warm_up_num: int = 1,
        max_num: int | None = None,
        spec_code: str = "a1x",
        model_id: str | None = None,
        visibility: str = "PRIVATE",
        description: str = "",
        error_code: str | None = None,
        error_msg: str | None = None,
        worker_groups: Sequence[Mapping[str, Any]] | None = None,
        public_access: bool = False,
    ) -> DataArtsEndpoint:
        """Create or replace an endpoint (creating the workspace if needed).

        `max_num` None serves `warm_up_num`, as the doc says for an unset maximum.
        `worker_groups` overrides `ray_resource.worker_group_spec` for ray types.
        """
        if type not in TYPES:
            raise ValueError(f"type {type!r} not in {TYPES}")
        if visibility not in ("PRIVATE", "PUBLIC"):
            raise ValueError(f"visibility {visibility!r} not PRIVATE or PUBLIC")
        if not _ID_RE.match(endpoint_id):
            raise ValueError(f"endpoint id {endpoint_id!r}: 1-36 letters, digits, hyphens")
        ws = self._workspaces.get(workspace)
        if ws is None:
            self.create_group(workspace)
            ws = self._workspaces[workspace]
        old = ws.items.get(endpoint_id)
        now = iso_now()
        rec = DataArtsEndpoint(
            workspace=workspace,
            endpoint_id=endpoint_id,
            name=name if name is not None else f"endpoint-{endpoint_id}",
            status=str(status),
            type=type,
            warm_up_num=int(warm_up_num),
            max_num=None if max_num is None else int(max_num),
            spec_code=str(spec_code),
            model_id=model_id,
            visibility=visibility,
            description=str(description),
            error_code=error_code,
            error_msg=error_msg,
            worker_groups=None if worker_groups is None else [dict(g) for g in worker_groups],
            public_access=bool(public_access),
            created_at=old.created_at if old else now,
            updated_at=now,
        )
        ws.put(rec)
        self._hub.touch(self.provider, endpoint_id)
        return rec

    def patch(self, workspace: str, endpoint_id: str, **changes: Any) -> DataArtsEndpoint:
        """Change only the given fields of an existing endpoint (KeyError if unknown)."""
        current = public_fields(self._workspaces[workspace].items[endpoint_id], _META)
        return self.put(workspace, endpoint_id, **{**current, **changes})

    def delete(self, workspace: str, endpoint_id: str | None = None) -> bool:
        """Delete an endpoint, or without `endpoint_id` the workspace and all its endpoints."""
        if endpoint_id is None:
            gone = self._workspaces.pop(workspace, None)
            for key in [] if gone is None else gone.items:
                self._hub.touch(self.provider, key)
            return gone is not None
        ws = self._workspaces.get(workspace)
        if ws is None or not ws.delete(endpoint_id):
            return False
        self._hub.touch(self.provider, endpoint_id)
        return True

    def get(self, workspace: str, endpoint_id: str) -> DataArtsEndpoint | None:
        ws = self._workspaces.get(workspace)
        return None if ws is None else ws.items.get(endpoint_id)

    def ids(self, workspace: str | None = None) -> list[str]:
        """The workspaces, or the endpoints of one (KeyError for an unknown workspace)."""
        if workspace is None:
            return list(self._workspaces)
        return list(self._workspaces[workspace].order())

    def clear(self) -> None:
        self._workspaces.clear()

    def workspace(self, workspace: str) -> _Workspace | None:
        return self._workspaces.get(workspace)


def error(
    _request: web.Request, status: int, message: str | None, code: str | None = None
) -> Reply:
    if status == 403:
        msg = message or "X-Auth-Token is invalid in the request"
        return Reply(
            status=403,
            body={
                "error": {"code": "403", "message": msg, "title": "Forbidden"},
                "error_code": 403,
                "error_msg": msg,
                "title": "Forbidden",
            },
        )
    default_code, default_msg = _ERRORS.get(status, (f"common.00000{status}", "error"))
    return Reply(
        status=status,
        body={"error_code": code or default_code, "error_msg": message or default_msg},
    )


def _auth(request: web.Request, accepted: Accepted) -> bool:
    """An unexpired X-Auth-Token, or a request signed (SDK-HMAC-SHA256) with a known access key
    and a recent X-Sdk-Date, checked by the operator's verifier (providers/hwsign.py)."""
    if request.headers.get("Authorization", "").startswith(ALGORITHM):
        why = verify(
            request.method,
            request.path,
            list(request.query.items()),
            dict(request.headers),
            b"",  # every DataArts route emulated is a GET
            accepted.access_keys.get,
            datetime.now(UTC),
        )
        return why is None
    return accepted.token is not None and request.headers.get("X-Auth-Token") == accepted.token


def _bad_request(request: web.Request, reason: str) -> Reply:
    return error(
        request,
        400,
        f"failed to read http request, please check your input, code: 400, reason: {reason}",
    )


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int | Reply:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return _bad_request(request, "Type mismatch., cause: TypeMismatchException")
    if not low <= value <= high:
        return _bad_request(request, f"{name} must be in [{low}, {high}], got {value}")
    return value


def routes(store: DataArtsStore) -> list[Route]:
    def workspace_missing(request: web.Request, workspace: str) -> Reply:
        return error(
            request, 400, f"The workspace {workspace} does not exist.", WORKSPACE_NOT_FOUND
        )

    async def listing(request: web.Request) -> Reply:
        offset = _int_param(request, "offset", 0, 0, 1_000_000_000)
        if isinstance(offset, Reply):
            return offset
        limit = _int_param(request, "limit", 10, 1, 100)
        if isinstance(limit, Reply):
            return limit
        q = request.query
        type_filter = q.get("type") or None
        if type_filter is not None and type_filter not in TYPES:
            return _bad_request(request, f"invalid type {type_filter}")
        visibility = q.get("visibility") or None
        if visibility not in (None, "PRIVATE", "PUBLIC", "ALL"):
            return _bad_request(request, f"invalid visibility {visibility}")
        workspace = request.match_info["workspace_id"]
        ws = store.workspace(workspace)
        if ws is None:
            return workspace_missing(request, workspace)
        endpoint_id = q.get("endpoint_id") or None
        name = (q.get("name") or "").lower() or None
        model_id = q.get("model_id") or None
        if visibility == "ALL":
            visibility = None

        if endpoint_id is not None:
            rec = ws.items.get(endpoint_id)
            candidates: list[DataArtsEndpoint] = [] if rec is None else [rec]
        elif name is None and type_filter is None and model_id is None and visibility is None:
            # Unfiltered: slice the ordered ids and render only the page.
            order = ws.order()
            page_ids = order[offset : offset + limit]
            return Reply(
                body={"total": len(order), "endpoints": [ws.items[i].brief() for i in page_ids]}
            )
        else:
            candidates = [ws.items[i] for i in ws.order()]

        def matches(r: DataArtsEndpoint) -> bool:
            return (
                (name is None or name in r.name.lower())
                and (type_filter is None or r.type == type_filter)
                and (model_id is None or r.model_id == model_id)
                and (visibility is None or r.visibility == visibility)
            )

        hits = [r for r in candidates if matches(r)]
        return Reply(
            body={
                "total": len(hits),
                "endpoints": [r.brief() for r in hits[offset : offset + limit]],
            }
        )

    async def single(request: web.Request) -> Reply:
        workspace = request.match_info["workspace_id"]
        ws = store.workspace(workspace)
        if ws is None:
            return workspace_missing(request, workspace)
        endpoint_id = request.match_info["endpoint_id"]
        rec = ws.items.get(endpoint_id)
        if rec is None:
            return error(
                request, 400, f"The endpoint {endpoint_id} does not exist.", ENDPOINT_NOT_FOUND
            )
        return Reply(body=rec.brief())

    async def unknown_path(request: web.Request) -> Reply:
        return error(request, 404, None)

    def list_keys(request: web.Request) -> tuple[str, ...]:
        endpoint_id = request.query.get("endpoint_id")
        ws = request.match_info["workspace_id"]
        return (ws, endpoint_id) if endpoint_id else (ws,)

    def single_keys(request: web.Request) -> tuple[str, ...]:
        return (request.match_info["workspace_id"], request.match_info["endpoint_id"])

    def no_keys(_request: web.Request) -> tuple[str, ...]:
        return ()

    base = "/dataarts/v1/workspaces/{workspace_id}/endpoints"
    return [
        Route(base, listing, list_keys),
        Route(base + "/{endpoint_id}", single, single_keys),
        Route("/dataarts/{tail:.*}", unknown_path, no_keys, method="*"),
    ]


EMULATION = Emulation(
    name="dataArtsFabric",
    # Endpoints live in workspaces: an unknown workspace and an unknown endpoint answer
    # differently, and an empty workspace exists.
    key=("workspace", "endpoint"),
    urls={"dataArtsFabric": "/dataarts"},
    auth=_auth,
    error=error,
    new_store=DataArtsStore,
    routes=routes,
)
