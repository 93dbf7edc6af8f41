"""RunPod's `Provider`: an account's targets, by API version, to the requests in `listing`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence

import httpx

from ..base import Observation, PollResult, Provider, RemoteEndpoint, Target
from ..http import MAX_LISTING_BYTES, get_json
from .config import ENDPOINT_ID_PATTERN, RunPodConfig
from .listing import observe_v1, observe_v2
from .responses import ListedV1, ListedV2

#: An id a manifest can hold (the spec's pattern); a listed id that is not one is left out.
_SAFE_ID = re.compile(ENDPOINT_ID_PATTERN)

__all__ = ["PROVIDER", "RunPodProvider"]


class RunPodProvider(Provider[RunPodConfig]):
    name = "runpod"
    display_name = "RunPod"
    config_model = RunPodConfig
    batches = True
    lists = True
    listing = (
        "every endpoint of the key in one request, unpaged (v2 GET /serverless, v1 GET /endpoints)"
    )
    listing_stub = {"endpointId": "listing"}

    def account_key(self, config: RunPodConfig) -> Hashable:
        return (self.name, config.api, config.base_url())

    def endpoint_label(self, config: RunPodConfig) -> str:
        return config.endpoint_id

    async def list_endpoints(
        self, client: httpx.AsyncClient, account: Target[RunPodConfig]
    ) -> AsyncIterator[list[RemoteEndpoint]]:
        config = account.config
        headers = _headers(account)
        base = config.base_url()
        if config.api == "v1":
            v1 = await get_json(
                client, f"{base}/endpoints", ListedV1, headers=headers, max_bytes=MAX_LISTING_BYTES
            )
            listed = v1.root
        else:
            v2 = await get_json(
                client, f"{base}/serverless", ListedV2, headers=headers, max_bytes=MAX_LISTING_BYTES
            )
            listed = v2.endpoints
        yield [
            RemoteEndpoint(e.id, e.name or e.id, {"endpointId": e.id})
            for e in listed
            if _SAFE_ID.fullmatch(e.id)
        ]

    async def observe(
        self, client: httpx.AsyncClient, targets: Sequence[Target[RunPodConfig]]
    ) -> Mapping[str, PollResult]:
        return await self.each_account(client, targets, self._observe_account)

    async def _observe_account(
        self, client: httpx.AsyncClient, targets: Sequence[Target[RunPodConfig]]
    ) -> dict[str, PollResult]:
        config = targets[0].config
        base = config.base_url()
        headers = _headers(targets[0])
        ids = list(dict.fromkeys(t.config.endpoint_id for t in targets))
        if config.api == "v1":
            by_id = await observe_v1(client, base, headers, ids)
        else:
            # Where to read each opted-in endpoint's queue. Two targets naming one endpoint
            # with different queue URLs would be odd; the last one wins.
            queues = {
                t.config.endpoint_id: t.config.queue_base_url()
                for t in targets
                if t.config.queue_metrics
            }
            by_id = await observe_v2(client, base, headers, ids, queues)
        return {t.key: _as_asked(by_id[t.config.endpoint_id], t.config) for t in targets}


def _as_asked(result: PollResult, config: RunPodConfig) -> PollResult:
    # Targets naming one endpoint share its requests; only those that opted in get its queue
    # (the others would be written with every change of it).
    if isinstance(result, Observation) and result.queue is not None and not config.queue_metrics:
        return dataclasses.replace(result, queue=None)
    return result


def _headers(target: Target[RunPodConfig]) -> dict[str, str]:
    if target.credential is None:
        return {}
    return {"Authorization": f"Bearer {target.credential}"}


PROVIDER = RunPodProvider()
