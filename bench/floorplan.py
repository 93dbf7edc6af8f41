"""The floor's plan: the provider requests of one steady cycle (paged list walks per account and
per-endpoint calls), from the layout or from what the operator really sent, and which provider
account each request belongs to."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.endpoints import Endpoint

#: Items per list page, as the adapters ask for.
PAGE = 100


@dataclass(slots=True)
class ListCall:
    """One paged list walk per cycle."""

    kind: str  # dataarts | friendli | runpod-v1 | runpod-v2
    url: str
    headers: dict[str, str]
    wanted: list[str]


@dataclass(slots=True)
class GetCall:
    url: str
    headers: dict[str, str]
    #: The endpoint this call observes, if it is one we watch (counted as an observation).
    key: str | None
    per_cycle: float = 1.0


@dataclass(slots=True)
class Plan:
    lists: list[ListCall] = field(default_factory=list)
    gets: list[GetCall] = field(default_factory=list)
    endpoints: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            lists=[ListCall(**x) for x in data.get("lists", [])],
            gets=[GetCall(**x) for x in data.get("gets", [])],
            endpoints=int(data.get("endpoints", 0)),
        )


def _headers(provider: str, token: str, team: str = "") -> dict[str, str]:
    h = {"Accept": "application/json", "User-Agent": "inferenceops-bench-floor"}
    if provider in ("friendli", "runpod"):
        h["Authorization"] = f"Bearer {token}"
    if provider == "friendli" and team:
        h["X-Friendli-Team"] = team
    if provider == "dataArtsFabric":
        h["X-Auth-Token"] = token
    return h


def plan_from_layout(layout: Sequence[Endpoint], base: str, token: str) -> Plan:
    """The requests of one steady cycle as the provider docs (docs/providers/) describe them."""
    plan = Plan(endpoints=len(layout))
    by_account: dict[tuple[str, str], list[str]] = defaultdict(list)
    for ep in layout:
        if ep.kind in ("dataarts", "friendli", "runpod-v1", "runpod-v2"):
            by_account[(ep.kind, ep.account)].append(ep.key)
    for (kind, account), keys in by_account.items():
        if kind == "dataarts":
            url = f"{base}/dataarts/v1/workspaces/{account}/endpoints"
            headers = _headers("dataArtsFabric", token)
        elif kind == "friendli":
            url = f"{base}/friendli/dedicated/beta/endpoint"
            headers = _headers("friendli", token, account)
        elif kind == "runpod-v1":
            url = f"{base}/runpod/v1/endpoints"
            headers = _headers("runpod", token)
        else:
            url = f"{base}/runpod/v2/serverless"
            headers = _headers("runpod", token)
        plan.lists.append(ListCall(kind, url, headers, list(keys)))
    for ep in layout:
        if ep.kind == "runpod-v2":
            url = f"{base}/runpod/v2/serverless/{ep.key}/workers"
            plan.gets.append(GetCall(url, _headers("runpod", token), ep.key))
        elif ep.kind == "takeoff":
            plan.gets.append(
                GetCall(f"{base}/takeoff/{ep.key}/status", _headers("", token), ep.key)
            )
        elif ep.kind == "ns":
            plan.gets.append(GetCall(f"{base}/ns/{ep.key}/status", _headers("", token), ep.key))
    return plan


_LIST_PATHS = (
    "/friendli/dedicated/beta/endpoint",
    "/runpod/v1/endpoints",
    "/runpod/v2/serverless",
)


def _is_list_path(path: str) -> bool:
    return path in _LIST_PATHS or (
        path.startswith("/dataarts/v1/workspaces/") and path.endswith("/endpoints")
    )


def with_observed_requests(
    plan: Plan,
    layout: Sequence[Endpoint],
    base: str,
    token: str,
    summary_paths: Mapping[str, Mapping[str, int]],
    cycles: float,
) -> Plan:
    """The plan with its per-endpoint calls replaced by those the operator sent: every non-list
    path of the emulator's `/requests/summary` delta (`paths`: provider -> path -> count), at
    count / cycles per cycle. List walks stay one per account per cycle."""
    team_of = {ep.key: ep.account for ep in layout if ep.kind == "friendli"}
    wanted = {ep.key for ep in layout}
    gets: list[GetCall] = []
    for provider, paths in sorted(summary_paths.items()):
        for path, count in sorted(paths.items()):
            if count <= 0 or _is_list_path(path):
                continue
            parts = path.strip("/").split("/")
            key: str | None = None
            team = ""
            if provider == "friendli":  # /friendli/dedicated/beta/endpoint/{id}[/status]
                key = parts[4] if len(parts) > 4 else None
                team = team_of.get(key or "", "")
            elif (
                provider == "runpod"
            ):  # /runpod/v2/serverless/{id}[/workers], /runpod/v1/endpoints/{id}
                key = parts[3] if len(parts) > 3 else None
            elif provider in ("takeoff", "nsModelServer"):  # /takeoff/{inst}/status
                key = parts[1] if len(parts) > 1 else None
            elif provider == "dataArtsFabric":
                key = parts[-1]
            observes = key in wanted and (
                provider in ("takeoff", "nsModelServer")
                or path.endswith("/workers")
                or path.endswith("/status")
            )
            gets.append(
                GetCall(
                    f"{base}{path}",
                    _headers(provider, token, team),
                    key if observes else None,
                    count / cycles,
                )
            )
    return Plan(lists=plan.lists, gets=gets, endpoints=plan.endpoints)


def expected_requests_per_cycle(plan: Plan, list_sizes: Mapping[str, int]) -> int:
    """Requests one cycle should send when each list URL (+ team) holds `list_sizes[url]` items
    (a missing size means every wanted item). RunPod lists are unpaginated."""
    total = 0
    for call in plan.lists:
        size = list_sizes.get(_list_id(call), len(call.wanted))
        total += max(1, math.ceil(size / PAGE)) if call.kind in ("dataarts", "friendli") else 1
    total += round(sum(g.per_cycle for g in plan.gets))
    return total


def _list_id(call: ListCall) -> str:
    team = call.headers.get("X-Friendli-Team")
    return f"{call.url}#{team}" if team else call.url


def account_of(url: str, headers: Mapping[str, str]) -> tuple[str, str]:
    """What the operator treats as one provider account, from an emulator URL: a self-hosted
    server per instance, a DataArts workspace, a FriendliAI team, a RunPod API version."""
    parts = url.split("/")  # http:, '', host:port, provider, ...
    provider = parts[3]
    if provider in ("takeoff", "ns", "runpod"):
        return provider, parts[4]  # the instance; for RunPod the API version (another base URL)
    if provider == "dataarts":
        return provider, parts[6]
    return provider, headers.get("X-Friendli-Team", "")
