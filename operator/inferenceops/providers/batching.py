"""How a listing adapter batches: one listing for many endpoints, one request for each it missed.

Used by the adapters that declare `Provider.batches` (FriendliAI, RunPod, DataArts Fabric).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from ..aiotasks import concurrently
from .base import ErrorReason, ProviderError

__all__ = ["caught", "list_then_fetch", "rate_limited"]

_R = TypeVar("_R")


async def list_then_fetch(
    ids: Sequence[str],
    listing: Callable[[], Awaitable[tuple[Mapping[str, _R], ProviderError | None]]],
    fetch_one: Callable[[str], Awaitable[_R]],
    *,
    final: Callable[[ProviderError], bool],
) -> dict[str, _R | ProviderError]:
    """The batching every listing adapter uses: one listing answers several endpoints, and each
    endpoint it did not answer gets its own request.

    `listing` returns what it found and the error that cut it short, if any (a paged listing can
    fail half-way). Only with two or more ids is it worth a listing. Whether a listing error
    stops the fan-out is the provider's rule, `final(error)`: True when each endpoint's own
    request would fail the same way (retrying them would only multiply requests, and 429s,
    against the same account); those endpoints then report the listing's error.
    """
    found: Mapping[str, _R] = {}
    error: ProviderError | None = None
    if len(ids) >= 2:
        found, error = await listing()
    missing = [i for i in ids if i not in found]
    results: dict[str, _R | ProviderError] = dict(found)
    if error is not None and final(error):
        results.update(dict.fromkeys(missing, error))
        return results
    answers = await concurrently([caught(fetch_one(i)) for i in missing]) if missing else []
    results.update(zip(missing, answers, strict=True))
    return results


def rate_limited(error: ProviderError) -> bool:
    """The default stop rule of `list_then_fetch`: a 429 on the listing means the account is out
    of budget, so per-endpoint requests would only dig the hole deeper. Other errors (a listing
    route the credential may not use, a 5xx on the heavier call) leave the per-endpoint
    requests worth trying."""
    return error.reason is ErrorReason.RATE_LIMITED


async def caught(answer: Awaitable[_R]) -> _R | ProviderError:
    """The answer, or the `ProviderError` it raised, as a value (one result per endpoint)."""
    try:
        return await answer
    except ProviderError as err:
        return err
