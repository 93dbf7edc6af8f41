"""Client CPU per status PATCH: httpx against aiohttp, the choice behind kube/writer.py.

    .venv/bin/python bench/writes.py [--requests 4000] [--repeats 3]

A local aiohttp server (its own process, so its CPU is not counted) answers merge-patches the
size of a status; each client sends them 16 at a time over 16 connections, as the writer does.
Prints CPU milliseconds per request for each client (median of the repeats) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import httpx

CONCURRENCY = 16
CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "Running",
    "message": "endpoint is Running",
    "lastTransitionTime": "2026-11-23T00:00:00Z",
    "observedGeneration": 1,
}
BODY = {"status": {"phase": "Running", "conditions": [CONDITION] * 4}}
HEADERS = {"Content-Type": "application/merge-patch+json"}


def serve(port: int) -> None:
    from aiohttp import web

    async def patch(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(BODY)

    app = web.Application()
    app.router.add_route("PATCH", "/status", patch)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def with_httpx(url: str, n: int) -> float:
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with gate:
                r = await client.patch(url, json=BODY, headers=HEADERS)
                r.raise_for_status()

        start = cpu()
        await asyncio.gather(*(one() for _ in range(n)))
        return cpu() - start


async def with_aiohttp(url: str, n: int) -> float:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Semaphore(CONCURRENCY)
        data = json.dumps(BODY)

        async def one() -> None:
            async with gate, session.patch(url, data=data, headers=HEADERS) as r:
                await r.read()
                r.raise_for_status()

        start = cpu()
        await asyncio.gather(*(one() for _ in range(n)))
        return cpu() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/status"
        clients: dict[str, Callable[[str, int], Coroutine[Any, Any, float]]] = {
            "httpx": with_httpx,
            "aiohttp": with_aiohttp,
        }
        ms: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.repeats):
            for name, run in clients.items():
                seconds = asyncio.run(run(url, args.requests))
                ms[name].append(seconds / args.requests * 1000)
        medians = {name: statistics.median(values) for name, values in ms.items()}
        for name, value in medians.items():
            runs = ", ".join(f"{v:.3f}" for v in ms[name])
            print(f"{name:8} {value:.3f} ms CPU per PATCH (median of {runs})")
        print(f"httpx / aiohttp = {medians['httpx'] / medians['aiohttp']:.1f}")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
