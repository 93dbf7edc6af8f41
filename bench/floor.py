"""The floor: the provider requests the operator makes, made by a bare asyncio + httpx loop.

The floor sends the same requests (same URLs, same headers, same count per cycle) to the same
emulator and parses every JSON body, but keeps no status, writes nothing to Kubernetes and has no
scheduler, kopf, pydantic or metrics. Its CPU seconds per 1,000 endpoint observations are what
polling costs at all; the operator's CPU divided by the floor's is the operator's overhead.

The plan (one cycle of requests) comes from the benchmark's layout (`make_layout`):

* one paged list walk per account of the list-capable providers, exactly as the adapters page
  (DataArts `offset`/`limit=100` per workspace, Friendli `limit=100` + `cursor` per team,
  RunPod v1 `/endpoints?includeWorkers=true`, RunPod v2 `/serverless`), and
* per-endpoint calls: RunPod v2 `/serverless/{id}/workers`, Takeoff and NS `/status`.

`with_observed_requests` replaces the per-endpoint calls with the ones the operator really sent
in its steady window (the emulator's `/requests/summary` delta, by exact path), so adapter
extras such as Friendli's details refresh are in the floor too.

    python bench/floor.py --plan plan.json --cycles 3 [--interval 0]    # prints a JSON result
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "KINDS",
    "LIST_KINDS",
    "Endpoint",
    "GetCall",
    "ListCall",
    "Plan",
    "bulk_bodies",
    "expected_requests_per_cycle",
    "make_layout",
    "parse_mix",
    "plan_from_layout",
    "run_floor",
    "split",
    "with_observed_requests",
]

#: The benchmark's kinds of resource: a provider, and for RunPod the API version.
KINDS = ("dataarts", "friendli", "runpod-v1", "runpod-v2", "takeoff", "ns")
#: Kinds whose adapter answers a whole account with one paged list.
LIST_KINDS = ("dataarts", "friendli", "runpod-v1")
DEFAULT_MIX = "dataarts=30,friendli=25,runpod-v1=20,runpod-v2=5,takeoff=10,ns=10"
#: The emulator's name for each kind's provider (the name of its block in the spec).
PROVIDER_OF_KIND = {
    "dataarts": "dataArtsFabric",
    "friendli": "friendli",
    "runpod-v1": "runpod",
    "runpod-v2": "runpod",
    "takeoff": "takeoff",
    "ns": "nsModelServer",
}
#: The kind of each provider but RunPod, whose kind depends on the API version of the path.
KIND_OF_PROVIDER = {v: k for k, v in PROVIDER_OF_KIND.items() if v != "runpod"}
PAGE = 100
DATAARTS_PREFIX = "bench-dataarts-endpoint-"  # + "w{i}-" + 6 digits: 33 chars (32-36 allowed)


# --- layout ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str
    #: Resource name (DNS-1123).
    name: str
    namespace: str
    #: The emulator's endpoint id / instance name.
    key: str
    #: DataArts workspace or Friendli team; "" for the others.
    account: str = ""


def parse_mix(text: str) -> dict[str, float]:
    """`dataarts=30,friendli=25,...` -> weights (any scale; normalised by `split`)."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kind, _, weight = part.partition("=")
        kind = kind.strip()
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} in --mix; expected {', '.join(KINDS)}")
        value = float(weight)
        if value < 0:
            raise ValueError(f"negative weight for {kind}")
        mix[kind] = value
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("--mix needs at least one positive weight")
    return mix


def split(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of n over the weights (sums to n exactly)."""
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    rest = n - sum(counts.values())
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[:rest]:
        counts[k] += 1
    return counts


def make_layout(
    n: int,
    mix: Mapping[str, float],
    *,
    workspaces: int = 3,
    teams: int = 2,
    namespaces: int = 4,
) -> list[Endpoint]:
    """N endpoints over the kinds; DataArts over `workspaces`, Friendli over `teams` (one API key
    each, so one account each). Each list account lives in one namespace (round robin); the
    self-hosted and RunPod v2 endpoints are spread over all namespaces."""
    counts = split(n, mix)
    out: list[Endpoint] = []
    account_ns = iter(range(1_000_000))

    def ns(i: int) -> str:
        return f"bench-{i % namespaces}"

    for kind in KINDS:
        count = counts.get(kind, 0)
        if count == 0:
            continue
        if kind == "dataarts":
            for w, part in enumerate(
                split(count, {str(i): 1.0 for i in range(workspaces)}).values()
            ):
                where = ns(next(account_ns))
                for i in range(part):
                    key = f"{DATAARTS_PREFIX}w{w}-{i:06d}"
                    out.append(Endpoint(kind, f"da-w{w}-{i:06d}", where, key, f"bench-ws-{w}"))
        elif kind == "friendli":
            for t, part in enumerate(split(count, {str(i): 1.0 for i in range(teams)}).values()):
                where = ns(next(account_ns))
                for i in range(part):
                    key = f"fr-t{t}-{i:06d}"
                    out.append(Endpoint(kind, key, where, key, f"team-{t}"))
        elif kind == "runpod-v1":
            where = ns(next(account_ns))
            out += [Endpoint(kind, f"rp1-{i:06d}", where, f"rp1-{i:06d}") for i in range(count)]
        else:
            short = {"runpod-v2": "rp2", "takeoff": "tk", "ns": "nsm"}[kind]
            out += [
                Endpoint(kind, f"{short}-{i:06d}", ns(i), f"{short}-{i:06d}") for i in range(count)
            ]
    return out


def bulk_bodies(layout: Sequence[Endpoint]) -> list[dict[str, Any]]:
    """Emulator `POST /_emulator/bulk` bodies that create every endpoint of the layout in a
    steady RUNNING state (keys are `{prefix}{i:06d}`, as make_layout names them)."""
    groups: dict[tuple[str, str], int] = defaultdict(int)
    for ep in layout:
        groups[(ep.kind, ep.account)] += 1
    bodies: list[dict[str, Any]] = []
    for (kind, account), count in groups.items():
        if kind == "dataarts":
            w = account.rsplit("-", 1)[1]
            body = {
                "provider": "dataArtsFabric",
                "prefix": f"{DATAARTS_PREFIX}w{w}-",
                "workspace": account,
                "fields": {"status": "RUNNING"},
            }
        elif kind == "friendli":
            t = account.rsplit("-", 1)[1]
            body = {
                "provider": "friendli",
                "prefix": f"fr-t{t}-",
                "fields": {"status": "RUNNING", "team": account},
            }
        elif kind in ("runpod-v1", "runpod-v2"):
            body = {
                "provider": "runpod",
                "prefix": "rp1-" if kind == "runpod-v1" else "rp2-",
                "fields": {"workers": ["RUNNING"]},
            }
        elif kind == "takeoff":
            body = {"provider": "takeoff", "prefix": "tk-", "fields": {"live": ["llama-3-8b"]}}
        else:
            body = {"provider": "nsModelServer", "prefix": "nsm-", "fields": {"stage": "READY"}}
        bodies.append({**body, "count": count})
    return bodies


# --- plan -----------------------------------------------------------------------------------


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


# --- the loop -------------------------------------------------------------------------------


def _ids(kind: str, body: Any) -> Iterable[str]:
    """Endpoint ids in one list page, reading each entry's status as a poller would."""
    if kind == "dataarts":
        entries = body.get("endpoints") or []
        return [e["id"] for e in entries if isinstance(e, dict) and e.get("status")]
    if kind == "friendli":
        return [k for k, v in (body.get("data") or {}).items() if v.get("status")]
    if kind == "runpod-v1":
        return [e["id"] for e in body if isinstance(e, dict) and "workers" in e]
    entries = body.get("endpoints") if isinstance(body, dict) else body
    return [e["id"] for e in entries or [] if isinstance(e, dict) and "id" in e]


@dataclass
class _Counters:
    requests: int = 0
    errors: int = 0
    seen: set[str] = field(default_factory=set)


async def _walk(client: Any, call: ListCall, c: _Counters) -> None:
    wanted = set(call.wanted)
    found: set[str] = set()
    offset, cursor = 0, None
    for _ in range(1000):  # bounded: a misbehaving server cannot hold us forever
        params: dict[str, Any]
        if call.kind == "dataarts":
            params = {"offset": offset, "limit": PAGE}
        elif call.kind == "friendli":
            params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        elif call.kind == "runpod-v1":
            params = {"includeWorkers": "true"}
        else:
            params = {}
        response = await client.get(call.url, params=params, headers=call.headers)
        c.requests += 1
        if response.status_code != 200:
            c.errors += 1
            return
        body = response.json()
        page = list(_ids(call.kind, body))
        found.update(i for i in page if i in wanted)
        if call.kind == "dataarts":
            offset += len(page)
            if not page or offset >= int(body.get("total") or 0) or found >= wanted:
                break
        elif call.kind == "friendli":
            cursor = body.get("nextCursor")
            if not cursor or found >= wanted:
                break
        else:
            break
    c.seen |= found


async def _get(client: Any, call: GetCall, c: _Counters) -> None:
    response = await client.get(call.url, headers=call.headers)
    c.requests += 1
    if response.status_code != 200:
        c.errors += 1
        return
    response.json()
    if call.key is not None:
        c.seen.add(call.key)


def _cycle_gets(plan: Plan, cycle: int) -> list[GetCall]:
    """The per-endpoint calls of cycle `cycle`: a call at r per cycle goes floor(r) or ceil(r)
    times, so that over k cycles it goes round(r * k) times, as the operator's did."""
    out: list[GetCall] = []
    for call in plan.gets:
        times = round(call.per_cycle * (cycle + 1)) - round(call.per_cycle * cycle)
        out += [call] * times
    return out


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


async def run_floor(
    plan: Plan,
    cycles: int,
    *,
    interval: float = 0.0,
    concurrency: int = 64,
    max_connections: int = 16,
) -> dict[str, Any]:
    """Run `cycles` cycles of the plan; CPU seconds are this process's, around the cycles only."""
    import httpx
    import psutil

    proc = psutil.Process()
    gate = asyncio.Semaphore(concurrency)
    # Paced on the loop's clock, which its sleeps keep to (on virtual time in the unit tests).
    clock = asyncio.get_running_loop().time
    # Keep-alive as long as the operator's (accounts.py, 75 s): a paced floor with httpx's 5 s
    # default would reconnect between a list account's cycles, which the operator does not.
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=75.0,
    )
    # A client (connection pool) per provider account, as the operator has: one pool shared by
    # many accounts makes httpcore scan every pooled connection per request, which is not the
    # cost of polling but of a pool layout.
    # Made before the measured cycles and sharing one SSL context, as the operator's are:
    # loading the CA bundle costs ~21 ms per client, which is not polling either.
    ssl_context = httpx.create_ssl_context()
    calls = [(c.url, c.headers) for c in plan.lists] + [(g.url, g.headers) for g in plan.gets]
    clients = {
        key: httpx.AsyncClient(
            verify=ssl_context, limits=limits, timeout=httpx.Timeout(30.0), follow_redirects=False
        )
        for key in {account_of(url, headers) for url, headers in calls}
    }

    def client_of(url: str, headers: Mapping[str, str]) -> Any:
        return clients[account_of(url, headers)]

    async def bounded(coro_fn: Any, *args: Any, start_at: float = 0.0) -> None:
        if start_at:
            # Paced: every request starts at its own moment of the cycle, as the operator's
            # scheduler spreads its polls, instead of all at once.
            await asyncio.sleep(max(0.0, start_at - clock()))
        async with gate:
            await coro_fn(*args)

    per_cycle: list[dict[str, Any]] = []
    try:
        before = proc.cpu_times()
        started = clock()
        for cycle in range(cycles):
            t0 = clock()
            c = _Counters()
            work: list[tuple[Any, Any]] = [(_walk, x) for x in plan.lists]
            work += [(_get, g) for g in _cycle_gets(plan, cycle)]
            # Spread over 0.9 x interval (the operator's jitter window), in a fixed shuffled
            # order so that kinds interleave; 0 = all at once.
            order = list(range(len(work)))
            random.Random(cycle).shuffle(order)
            step = 0.9 * interval / len(work) if interval > 0 and work else 0.0
            jobs = [
                bounded(
                    fn,
                    client_of(item.url, item.headers),
                    item,
                    c,
                    start_at=t0 + step * order[k] if step else 0.0,
                )
                for k, (fn, item) in enumerate(work)
            ]
            await asyncio.gather(*jobs)
            per_cycle.append(
                {
                    "requests": c.requests,
                    "errors": c.errors,
                    "observed": len(c.seen),
                    "seconds": round(clock() - t0, 3),
                }
            )
            if interval > 0 and cycle + 1 < cycles:
                await asyncio.sleep(max(0.0, interval - (clock() - t0)))
        after = proc.cpu_times()
        wall = clock() - started
    finally:
        for client in clients.values():
            await client.aclose()
    cpu = (after.user - before.user) + (after.system - before.system)
    observed = sum(x["observed"] for x in per_cycle)
    requests = sum(x["requests"] for x in per_cycle)
    return {
        "cycles": cycles,
        "interval": interval,
        "requests": requests,
        "requests_per_cycle": requests / cycles if cycles else 0.0,
        "errors": sum(x["errors"] for x in per_cycle),
        "observed": observed,
        "observed_per_cycle": observed / cycles if cycles else 0.0,
        "cpu_s": round(cpu, 4),
        "cpu_per_1k_polls": round(cpu / observed * 1000, 5) if observed else None,
        "wall_s": round(wall, 3),
        "per_cycle": per_cycle,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True, help="plan JSON (Plan.to_json()); - for stdin")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument(
        "--interval", type=float, default=0.0, help="seconds per cycle; 0 = back to back"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.plan == "-" else Path(args.plan).read_text(encoding="utf-8")
    plan = Plan.from_json(json.loads(text))
    result = asyncio.run(
        run_floor(plan, args.cycles, interval=args.interval, concurrency=args.concurrency)
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
