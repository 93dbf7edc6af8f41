"""RunPod's requests, v1 and v2: one listing for an account's endpoints, then one request for
each endpoint it missed, each v2 endpoint's workers, and an opted-in endpoint's queue."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import httpx

from ...aiotasks import concurrently
from ..base import PollResult, ProviderError, Queue
from ..batching import caught, list_then_fetch, rate_limited
from ..http import MAX_LISTING_BYTES, get_json
from ..wire import ParseContext
from .mapping import map_health, map_v1, map_v2
from .responses import Health, V1Endpoint, V1List, V2Endpoint, V2List, V2Workers

__all__ = ["LOAD_BALANCER", "observe_v1", "observe_v2"]

#: An endpoint type without a queue: RunPod routes requests straight to its workers.
LOAD_BALANCER = "LOAD_BALANCER"


async def observe_v1(
    client: httpx.AsyncClient, base: str, headers: Mapping[str, str], ids: list[str]
) -> dict[str, PollResult]:
    async def one(endpoint_id: str) -> PollResult:
        url = f"{base}/endpoints/{endpoint_id}"
        params = {"includeWorkers": "true"}
        return map_v1(await get_json(client, url, V1Endpoint, headers=headers, params=params))

    wanted = set(ids)

    async def listing() -> tuple[dict[str, PollResult], ProviderError | None]:
        url = f"{base}/endpoints"
        params = {"includeWorkers": "true"}
        try:
            body = await get_json(
                client,
                url,
                V1List,
                headers=headers,
                params=params,
                max_bytes=MAX_LISTING_BYTES,
                context=ParseContext(wanted=wanted),
            )
        except ProviderError as err:
            return {}, err
        return {e.id: map_v1(e) for e in body.root}, None

    return await list_then_fetch(ids, listing, one, final=rate_limited)


async def observe_v2(
    client: httpx.AsyncClient,
    base: str,
    headers: Mapping[str, str],
    ids: list[str],
    queues: Mapping[str, str],
) -> dict[str, PollResult]:
    async def workers(endpoint: V2Endpoint) -> PollResult:
        url = f"{base}/serverless/{endpoint.id}/workers"
        observed = map_v2(endpoint, await get_json(client, url, V2Workers, headers=headers))
        queue_base = queues.get(endpoint.id)
        # A load balancer has no queue, and its health URL is a worker's /ping: asking
        # it would be traffic to the user's workers, keeping them warm and billed.
        if queue_base is None or endpoint.type == LOAD_BALANCER:
            return observed
        queue = await _queue_or_none(client, f"{queue_base}/{endpoint.id}/health", headers)
        return dataclasses.replace(observed, queue=queue)

    async def one(endpoint_id: str) -> PollResult:
        url = f"{base}/serverless/{endpoint_id}"
        endpoint = await get_json(client, url, V2Endpoint, headers=headers)
        return await workers(endpoint)

    wanted = set(ids)

    async def listing() -> tuple[dict[str, PollResult], ProviderError | None]:
        try:
            body = await get_json(
                client,
                f"{base}/serverless",
                V2List,
                headers=headers,
                max_bytes=MAX_LISTING_BYTES,
                context=ParseContext(wanted=wanted),
            )
        except ProviderError as err:
            return {}, err
        listed = {e.id: e for e in body.endpoints}
        # The list has no workers: each listed endpoint still costs its /workers request.
        answers = await concurrently([caught(workers(e)) for e in listed.values()])
        return dict(zip(listed, answers, strict=True)), None

    return await list_then_fetch(ids, listing, one, final=rate_limited)


async def _queue_or_none(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str]
) -> Queue | None:
    """The queue is a nice-to-have, as FriendliAI's details are: a /health call that fails in
    any way leaves the observation without it, it never fails the poll."""
    try:
        return map_health(await get_json(client, url, Health, headers=headers))
    except ProviderError:
        return None
