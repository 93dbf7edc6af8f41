"""Peak RSS growth while the real adapters poll 8 hostile bodies at once; run in a fresh process.

    python tests/unit/providers/hostile_bodies.py [--size BYTES | --fit-caps]

Prints one JSON object: the RSS before, the peak during, and what each poll answered. Only
`inferenceops` is imported (not the test helpers), so the same script measures another checkout
with `PYTHONPATH=<checkout>/operator`. The bodies are served by `httpx.MockTransport` in chunks of
64 KiB without a Content-Length, the other polls getting a turn between chunks, so all eight are
in flight together. Each body is a flood of `{}` where the adapter declares a list or map (or, for
Takeoff's `config`, where it reads nothing): the shape that costs a model per 3 bytes.

`--size` (default 4,000,000): every body that size. `--fit-caps`: each body the largest its route
lets through (its byte cap and its JSON token budget), so that every one of them is parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import re
import resource
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import psutil

from inferenceops.providers import (
    Observation,
    Provider,
    ProviderError,
    SecretKeyRef,
    Target,
    dataarts,
    friendli,
    nsmodelserver,
    runpod,
    takeoff,
)

CHUNK = 64 * 1024
REF = SecretKeyRef(name="s", key="token")
DA_ID = "0b5633ba2b904511ad514346f4d00000"
DA_ID2 = "0b5633ba2b904511ad514346f4d00001"


def flood(prefix: bytes, suffix: bytes, size: int, item: bytes = b"{}") -> bytes:
    """`prefix` + `item,item,...,item` + `suffix`, `size` bytes at most (no large temporaries
    beyond the result, so that building it does not raise the peak the test measures)."""
    count = max(1, (size - len(prefix) - len(suffix) + 1) // (len(item) + 1))
    return prefix + (item + b",") * (count - 1) + item + suffix


def keyed_flood(prefix: bytes, suffix: bytes, size: int) -> bytes:
    """A JSON object of distinct keys `"k0":{}, "k1":{}, ...` (reader ids, endpoint ids)."""
    parts: list[bytes] = []
    used = len(prefix) + len(suffix)
    i = 0
    while True:
        part = b'"k%d":{}' % i
        if used + len(part) + 1 > size:
            break
        parts.append(part)
        used += len(part) + 1
        i += 1
    return prefix + b",".join(parts) + suffix


def tokens(body: bytes) -> int:
    return body.count(b",") + body.count(b":") + body.count(b"{") + body.count(b"[")


def _fit(make: Callable[[int], bytes], cap: int, bytes_per_token: int) -> bytes:
    size = cap - 64
    while True:
        body = make(size)
        budget = cap // bytes_per_token
        if len(body) <= cap and tokens(body) <= budget:
            return body
        size = int(size * min(1.0, budget / tokens(body)) * 0.99)


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self._body = memoryview(body)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._body), CHUNK):
            # Another poll's turn: the eight bodies are read side by side, as from eight hosts.
            await asyncio.sleep(0)
            yield bytes(self._body[start : start + CHUNK])


class Case:
    def __init__(
        self,
        name: str,
        provider: Provider[Any],
        targets: Sequence[Target[Any]],
        bodies: dict[str, Callable[[int], bytes]],
        cap: str,
    ) -> None:
        self.name = name
        self.provider = provider
        self.targets = targets
        self.makers = bodies
        self.cap = cap  # the http.py constant bounding the flooded route
        self.bodies: dict[str, bytes] = {}

    def build(self, size: int) -> None:
        self.bodies = {path: make(size) for path, make in self.makers.items()}

    def fit(self, cap: int, bytes_per_token: int) -> None:
        """The largest bodies the byte cap and the token budget both let through."""
        self.bodies = {path: _fit(make, cap, bytes_per_token) for path, make in self.makers.items()}

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = self.bodies.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"message": "not found"})
        return httpx.Response(200, stream=_Chunks(body))

    async def poll(self) -> dict[str, str]:
        transport = httpx.MockTransport(self.handler)
        async with httpx.AsyncClient(transport=transport, timeout=30.0) as client:
            results = await self.provider.observe(client, self.targets)
        return {key: describe(result) for key, result in results.items()}


def describe(result: Observation | ProviderError) -> str:
    if isinstance(result, ProviderError):
        return f"{result.reason}: {result.message[:120]}"
    return f"{result.phase} {result.provider_status or ''}"[:120]


def runpod_target(endpoint_id: str, api: Literal["v1", "v2"]) -> Target[runpod.RunPodConfig]:
    config = runpod.RunPodConfig(
        endpoint_id=endpoint_id,
        api=api,
        url=f"https://runpod.test/{api}",
        credentials_secret_ref=REF,
    )
    return Target(key=f"ns/{api}-{endpoint_id}", config=config, credential="t")


def cases() -> list[Case]:
    tk = Target(key="ns/tk", config=takeoff.TakeoffConfig(url="http://takeoff.test:3001"))
    ns = Target(key="ns/ns", config=nsmodelserver.NSModelServerConfig(url="http://ns.test:8080"))
    fr = [
        Target(
            key=f"ns/fr{i}",
            config=friendli.FriendliConfig(
                endpoint_id=f"ep{i}", url="https://friendli.test", credentials_secret_ref=REF
            ),
            credential="t",
        )
        for i in range(2)
    ]
    da = [
        Target(
            key=f"ns/da{i}",
            config=dataarts.DataArtsFabricConfig(
                url="https://fabric.test",
                workspace_id="ws",
                endpoint_id=ident,
                credentials_secret_ref=REF,
            ),
            credential="t",
        )
        for i, ident in enumerate((DA_ID, DA_ID2))
    ]
    endpoint = json.dumps({"id": "ep0", "workers": {"min": 0, "max": 3}}).encode()
    return [
        Case(
            "takeoff config",
            takeoff.PROVIDER,
            [tk],
            {"/status": lambda n: flood(b'{"status": null, "config": {"a": [', b"]}}", n)},
            "MAX_BODY_BYTES",
        ),
        Case(
            "takeoff readers",
            takeoff.PROVIDER,
            [tk],
            {
                "/status": lambda n: keyed_flood(
                    b'{"config": {}, "status": {"dead_readers": {', b"}}}", n
                )
            },
            "MAX_BODY_BYTES",
        ),
        Case(
            "ns errors",
            nsmodelserver.PROVIDER,
            [ns],
            {"/status": lambda n: flood(b'{"data": {"stage": "FAILED", "errors": [', b"]}}", n)},
            "MAX_BODY_BYTES",
        ),
        Case(
            "runpod v2 workers",
            runpod.PROVIDER,
            [runpod_target("ep0", "v2")],
            {
                "/v2/serverless/ep0": lambda _: endpoint,
                "/v2/serverless/ep0/workers": lambda n: flood(b'{"workers": [', b"]}", n),
            },
            "MAX_BODY_BYTES",
        ),
        Case(
            "runpod v1 listing workers",
            runpod.PROVIDER,
            [runpod_target("ep0", "v1"), runpod_target("ep1", "v1")],
            {"/v1/endpoints": lambda n: flood(b'[{"id": "ep0", "workers": [', b"]}]", n)},
            "MAX_LISTING_BYTES",
        ),
        Case(
            "runpod v2 listing entries",
            runpod.PROVIDER,
            [runpod_target("ep0", "v2"), runpod_target("ep1", "v2")],
            {"/v2/serverless": lambda n: flood(b'{"endpoints": [', b"]}", n, b'{"id":"ep0"}')},
            "MAX_LISTING_BYTES",
        ),
        Case(
            "friendli page",
            friendli.PROVIDER,
            fr,
            {"/dedicated/beta/endpoint": lambda n: keyed_flood(b'{"data": {', b"}}", n)},
            "MAX_PAGE_BYTES",
        ),
        Case(
            "dataarts page",
            dataarts.PROVIDER,
            da,
            {
                "/v1/workspaces/ws/endpoints": lambda n: flood(
                    b'{"total": 1, "endpoints": [{"id": "' + DA_ID.encode() + b'", '
                    b'"status": "RUNNING", "type": "ray", "ray_resource": '
                    b'{"worker_group_spec": [',
                    b"]}}]}",
                    n,
                )
            },
            "MAX_PAGE_BYTES",
        ),
    ]


def peak_kib() -> int:
    """The process's peak RSS: VmHWM, which (unlike ru_maxrss) starts afresh at exec and can be
    reset; ru_maxrss where there is no /proc."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)[1])  # type: ignore[index]


def reset_peak() -> bool:
    """Start the peak afresh from the current RSS (Linux: "5" to clear_refs), after handing the
    heap's free memory back (glibc's malloc_trim), so that the polls cannot grow into memory
    that building the bodies freed without it counting."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def main(size: int | None, only: str | None = None) -> dict[str, Any]:
    from inferenceops.providers import http

    all_cases = [case for case in cases() if only is None or case.name == only]
    # Warm-up: every code path and schema used once on a small body, so imports and caches are
    # in the baseline.
    for case in all_cases:
        case.build(4096)
        await case.poll()
    for case in all_cases:
        if size is not None:
            case.build(size)
        else:
            case.fit(getattr(http, case.cap), getattr(http, "_BYTES_PER_TOKEN", 1))
    gc.collect()
    peak_reset = reset_peak()
    rss_before = psutil.Process().memory_info().rss
    peak_before = peak_kib()
    answers = await asyncio.gather(*(case.poll() for case in all_cases))
    peak_after = peak_kib()
    mib = 1024 * 1024
    return {
        "sizes": {case.name: max(map(len, case.bodies.values())) for case in all_cases},
        "rss_before_mib": round(rss_before / mib, 1),
        "peak_before_mib": round(peak_before / 1024, 1),
        "peak_after_mib": round(peak_after / 1024, 1),
        # Against the RSS of the moment, not the earlier peak: nothing hides under an old peak.
        "growth_mib": round(peak_after / 1024 - rss_before / mib, 1),
        "peak_reset": peak_reset,
        "answers": {case.name: a for case, a in zip(all_cases, answers, strict=True)},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--size", type=int, default=4_000_000)
    group.add_argument("--fit-caps", action="store_true")
    parser.add_argument("--only", help="one case, by name")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(None if args.fit_caps else args.size, args.only)), indent=1))
