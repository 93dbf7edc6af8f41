"""The floor: the provider requests the operator makes, made by a bare asyncio + httpx loop.

The floor sends the same requests (same URLs, same headers, same count per cycle) to the same
emulator and parses every JSON body, but keeps no status, writes nothing to Kubernetes and has no
scheduler, kopf, pydantic or metrics. Its CPU seconds per 1,000 endpoint observations are what
polling costs at all; the operator's CPU divided by the floor's is the operator's overhead.

The plan (one cycle of requests, bench/floorplan.py) comes from the benchmark's layout
(bench/endpoints.py):

* one paged list walk per account of the list-capable providers, exactly as the adapters page
  (DataArts `offset`/`limit=100` per workspace, Friendli `limit=100` + `cursor` per team,
  RunPod v1 `/endpoints?includeWorkers=true`, RunPod v2 `/serverless`), and
* per-endpoint calls: RunPod v2 `/serverless/{id}/workers`, Takeoff and NS `/status`.

`floorplan.with_observed_requests` replaces the per-endpoint calls with the ones the operator
really sent in its steady window (the emulator's `/requests/summary` delta, by exact path), so
adapter extras such as Friendli's details refresh are in the floor too.

    python bench/floor.py --plan plan.json --cycles 3 [--interval 0]    # prints a JSON result
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/floor.py`: the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.floorplan import PAGE, GetCall, ListCall, Plan, account_of

__all__ = ["run_floor"]


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
