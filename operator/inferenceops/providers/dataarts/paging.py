"""Offset paging through one DataArts Fabric endpoint listing, token or signed access key."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from typing import Any

import httpx

from ..base import CREDENTIAL_SEPARATOR, ErrorReason, ProviderError
from ..http import MAX_PAGE_BYTES, get_json
from ..hwsign import SIGN_EXTENSION, signer
from ..wire import ParseContext
from .config import DataArtsFabricConfig
from .errors import classify_error
from .responses import Endpoint, ListResponse

__all__ = ["EVERY_ENDPOINT", "MAX_PAGES", "PAGE_LIMIT", "Pages"]

#: The documented maximum page size.
PAGE_LIMIT = 100
#: A workspace listing that has not ended after this many pages is not converging (the provider
#: keeps raising `total`, or ignores `offset`); stop rather than poll forever.
MAX_PAGES = 100


class _Every(Collection[str]):
    """`wanted` for a listing that keeps every entry (an import's), each id once."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


EVERY_ENDPOINT: Collection[str] = _Every()


class Pages:
    """Offset paging through one listing query, filtered to `endpoint_id` when given; a page
    keeps the entries of the `wanted` endpoints only.

    Ends on `total`, on an empty page, or (as an error) after MAX_PAGES.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: DataArtsFabricConfig,
        credential: str | None,
        wanted: Collection[str],
        endpoint_id: str | None = None,
    ) -> None:
        self._client = client
        self._wanted = wanted
        self._workspace_id = config.workspace_id
        self._endpoint_id = endpoint_id
        self._url = f"{config.url.rstrip('/')}/v1/workspaces/{config.workspace_id}/endpoints"
        self._headers: dict[str, str] = {}
        self._extensions: dict[str, Any] = {}
        parts = credential.split(CREDENTIAL_SEPARATOR) if credential is not None else []
        if len(parts) == 2:
            # An access key pair (accessKeySecretRef): each request signed, nothing expires.
            access_key, secret_key = parts
            self._extensions[SIGN_EXTENSION] = signer(access_key, secret_key)
        elif credential is not None:
            self._headers["X-Auth-Token"] = credential
        self.offset = 0
        self.total: int | None = None
        self.pages = 0
        self.done = False

    def _classify(self, status: int, body: bytes) -> ProviderError | None:
        return classify_error(status, body, self._workspace_id, self._endpoint_id)

    def remaining_pages(self) -> int | None:
        if self.total is None:
            return None
        return math.ceil(max(0, self.total - self.offset) / PAGE_LIMIT)

    async def fetch(self) -> list[Endpoint | dict[str, Any]]:
        if self.pages >= MAX_PAGES:
            raise ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"endpoint listing did not end after {MAX_PAGES} pages of {PAGE_LIMIT}",
            )
        params: dict[str, str | int] = {"offset": self.offset, "limit": PAGE_LIMIT}
        if self._endpoint_id is not None:
            params["endpoint_id"] = self._endpoint_id
        parsed = ParseContext(wanted=self._wanted)
        body = await get_json(
            self._client,
            self._url,
            ListResponse,
            headers=self._headers,
            params=params,
            classify_error=self._classify,
            max_bytes=MAX_PAGE_BYTES,
            extensions=self._extensions,
            context=parsed,
        )
        self.pages += 1
        # Advance by what came back (kept or not), not by the limit we asked for: a server that
        # caps pages lower than 100 must not make us skip entries.
        listed = parsed.listed
        self.offset += listed
        self.total = body.total
        if not listed:
            self.done = True
        elif body.total is not None:
            self.done = self.offset >= body.total
        else:
            # Without `total` a short page is the only end marker there is.
            self.done = listed < PAGE_LIMIT
        return body.endpoints
