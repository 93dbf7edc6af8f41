"""DataArts Fabric's `Provider`: one filtered request for a lone target, one listing for several."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from typing import Any

import httpx

from ..base import Observation, PollResult, Provider, ProviderError, RemoteEndpoint, Target
from ..batching import list_then_fetch
from .config import ENDPOINT_ID_PATTERN, DataArtsFabricConfig
from .errors import not_found, workspace_wide
from .mapping import observe_entry
from .paging import EVERY_ENDPOINT, Pages
from .responses import Endpoint, id_of

__all__ = ["PROVIDER", "DataArtsFabricProvider"]

#: An id a manifest can hold (the spec's pattern); a listed id that is not one is left out.
_SAFE_ID = re.compile(ENDPOINT_ID_PATTERN)


class DataArtsFabricProvider(Provider[DataArtsFabricConfig]):
    name = "dataArtsFabric"
    display_name = "DataArts Fabric"
    config_model = DataArtsFabricConfig
    batches = True
    lists = True
    listing = "every endpoint of the workspace, 100 a page (GET /v1/workspaces/{ws}/endpoints)"
    listing_stub = {"endpointId": "0" * 32}

    def account_key(self, config: DataArtsFabricConfig) -> Hashable:
        # One listing answers a whole workspace, so the workspace is part of what can be batched.
        return (self.name, config.url, config.workspace_id)

    def endpoint_label(self, config: DataArtsFabricConfig) -> str:
        return config.endpoint_id

    async def list_endpoints(
        self, client: httpx.AsyncClient, account: Target[DataArtsFabricConfig]
    ) -> AsyncIterator[list[RemoteEndpoint]]:
        pages = Pages(client, account.config, account.credential, EVERY_ENDPOINT)
        while not pages.done:
            found = []
            for entry in await pages.fetch():
                ident = id_of(entry)
                if not isinstance(ident, str) or not _SAFE_ID.fullmatch(ident):
                    continue
                name = entry.name if isinstance(entry, Endpoint) else entry.get("name")
                shown = name if isinstance(name, str) and name else ident
                found.append(RemoteEndpoint(ident, shown, {"endpointId": ident}))
            yield found

    async def observe(
        self, client: httpx.AsyncClient, targets: Sequence[Target[DataArtsFabricConfig]]
    ) -> Mapping[str, PollResult]:
        """One filtered request for a lone target; one shared workspace listing for several.

        Targets the listing did not answer (a listing race, or a listing that failed for a reason
        that is not workspace-wide) fall back to their own filtered request, so a listing never
        reports a false NotFound.
        """
        return await self.each_account(client, targets, self._observe_workspace)

    async def _observe_workspace(
        self, client: httpx.AsyncClient, targets: Sequence[Target[DataArtsFabricConfig]]
    ) -> dict[str, PollResult]:
        by_id = {t.config.endpoint_id: t for t in targets}

        async def listing() -> tuple[dict[str, PollResult], ProviderError | None]:
            found, failure = await self._list_workspace(client, targets)
            return {i: observe_entry(raw) for i, raw in found.items()}, failure

        results = await list_then_fetch(
            list(by_id),
            listing,
            lambda i: self.observe_one(client, by_id[i]),
            final=workspace_wide,
        )
        return {t.key: results[t.config.endpoint_id] for t in targets}

    async def observe_one(
        self, client: httpx.AsyncClient, target: Target[DataArtsFabricConfig]
    ) -> Observation:
        config = target.config
        pages = Pages(
            client, config, target.credential, {config.endpoint_id}, endpoint_id=config.endpoint_id
        )
        # The filter should make this one request; paging still copes with a server that treats
        # the id filter loosely (or ignores it).
        while not pages.done:
            for entry in await pages.fetch():
                if id_of(entry) == config.endpoint_id:
                    result = observe_entry(entry)
                    if isinstance(result, ProviderError):
                        raise result
                    return result
        raise not_found(config)

    async def _list_workspace(
        self, client: httpx.AsyncClient, targets: Sequence[Target[DataArtsFabricConfig]]
    ) -> tuple[dict[str, Endpoint | dict[str, Any]], ProviderError | None]:
        """Page through the workspace until every target is found or the listing ends.

        Stops early, leaving the rest to filtered requests, once the pages still to read outnumber
        the targets still missing: a few endpoints in a huge workspace should not cost a full scan.
        """
        first = targets[0]
        wanted = {t.config.endpoint_id for t in targets}
        found: dict[str, Endpoint | dict[str, Any]] = {}
        pages = Pages(client, first.config, first.credential, wanted)
        try:
            while not pages.done:
                for entry in await pages.fetch():
                    ident = id_of(entry)
                    if isinstance(ident, str) and ident in wanted:
                        found[ident] = entry
                missing = len(wanted) - len(found)
                remaining = pages.remaining_pages()
                if missing == 0 or (remaining is not None and remaining > missing):
                    break
        except ProviderError as err:
            return found, err
        return found, None


PROVIDER = DataArtsFabricProvider()
