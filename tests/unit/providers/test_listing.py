"""`Provider.list_endpoints` (issue 25) against the emulator: every endpoint of an account, a
page at a time, and the requests a 250-endpoint account costs per provider."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from inferenceops.providers import (
    ErrorReason,
    Provider,
    ProviderError,
    RemoteEndpoint,
    Target,
    all_providers,
)
from inferenceops.providers import get as get_provider
from inferenceops_emulator import Emulator

from .support import TOKEN

REF = {"name": "creds", "key": "token"}
COUNT = 250
#: DataArts ids are 32 to 36 characters.
DA_PREFIX = "0b5633ba2b904511ad514346f4"
WS = "ws-import"


def _account(emu: Emulator, provider: str, api: str = "v2") -> Target[Any]:
    blocks: dict[str, dict[str, Any]] = {
        "friendli": {"url": emu.url("friendli"), "credentialsSecretRef": REF},
        "runpod": {"url": emu.url(f"runpod_{api}"), "api": api, "credentialsSecretRef": REF},
        "dataArtsFabric": {
            "url": emu.url("dataArtsFabric"),
            "workspaceId": WS,
            "credentialsSecretRef": REF,
        },
        "takeoff": {"url": emu.url("takeoff", instance="tk")},
    }
    config = get_provider(provider).listing_config(blocks[provider])
    credential = None if provider == "takeoff" else TOKEN
    return Target(key="import", config=config, credential=credential)


def _fill(emu: Emulator, provider: str) -> list[str]:
    if provider == "dataArtsFabric":
        emu.store(provider).create_group(WS)
        return list(emu.bulk(provider, COUNT, prefix=DA_PREFIX, group=(WS,)))
    if provider == "takeoff":
        groups = [f"group-{n}" for n in range(COUNT)]
        live = [{"model_name": "m", "consumer_groups": [g]} for g in groups]
        emu.store("takeoff").put("tk", live=live)
        return groups
    return list(emu.bulk(provider, COUNT, prefix="ep-"))


async def _listed(
    emu: Emulator, provider: str, api: str = "v2"
) -> tuple[list[list[RemoteEndpoint]], ProviderError | None]:
    pages: list[list[RemoteEndpoint]] = []
    adapter = get_provider(provider)
    async with httpx.AsyncClient(timeout=5.0) as client:
        try:
            async for page in adapter.list_endpoints(client, _account(emu, provider, api)):
                pages.append(page)
        except ProviderError as err:
            assert TOKEN not in err.message
            return pages, err
    return pages, None


#: Requests for 250 endpoints: FriendliAI and DataArts page by 100; RunPod and Takeoff answer
#: in one body.
REQUESTS = {
    ("friendli", "v2"): 3,
    ("runpod", "v2"): 1,
    ("runpod", "v1"): 1,
    ("dataArtsFabric", "v2"): 3,
    ("takeoff", "v2"): 1,
}


@pytest.mark.parametrize(("provider", "api"), list(REQUESTS), ids=lambda v: str(v))
async def test_a_250_endpoint_account_is_listed_whole(
    emu: Emulator, provider: str, api: str
) -> None:
    ids = _fill(emu, provider)
    pages, error = await _listed(emu, provider, api)
    assert error is None
    listed = [e for page in pages for e in page]
    assert sorted(e.id for e in listed) == sorted(ids)
    requests = emu.requests(provider)
    assert requests == REQUESTS[(provider, api)]
    print(f"\n{provider} {api}: {COUNT} endpoints in {requests} requests")
    sample = listed[0]
    key = "consumerGroup" if provider == "takeoff" else "endpointId"
    assert sample.fields[key] == sample.id


async def test_provider_side_names_come_with_the_listing(emu: Emulator) -> None:
    emu.store("runpod").put("rp1", name="Llama 3 (prod)")
    emu.store("dataArtsFabric").create_group(WS)
    emu.store("dataArtsFabric").put(WS, DA_PREFIX + "000001", name="chat-bot")
    ((runpod,),), _ = await _listed(emu, "runpod")
    assert (runpod.id, runpod.name) == ("rp1", "Llama 3 (prod)")
    ((dataarts,),), _ = await _listed(emu, "dataArtsFabric")
    assert dataarts.name == "chat-bot"


@pytest.mark.parametrize(("provider", "status"), [("friendli", 500), ("dataArtsFabric", 401)])
async def test_a_page_failing_midway_raises_after_the_pages_before_it(
    emu: Emulator, provider: str, status: int
) -> None:
    _fill(emu, provider)
    emu.fail(provider, status, after=1)
    pages, error = await _listed(emu, provider)
    assert [len(p) for p in pages] == [100]
    assert error is not None
    expected = ErrorReason.UNAUTHORIZED if status == 401 else ErrorReason.UNREACHABLE
    assert error.reason in (expected, ErrorReason.BAD_RESPONSE)


async def test_a_429_midway_is_rate_limited(emu: Emulator) -> None:
    _fill(emu, "friendli")
    emu.fail("friendli", 429, after=2, retry_after=7)
    pages, error = await _listed(emu, "friendli")
    assert len(pages) == 2
    assert error is not None and error.reason is ErrorReason.RATE_LIMITED


def test_listing_is_declared_exactly_where_list_endpoints_is_overridden() -> None:
    for provider in all_providers():
        overridden = type(provider).list_endpoints is not Provider.list_endpoints
        assert provider.lists is overridden, provider.name
        assert provider.listing, provider.name


def test_an_ns_model_server_says_it_is_one_endpoint() -> None:
    ns = get_provider("nsModelServer")
    assert not ns.lists
    assert "one endpoint" in ns.listing
