"""What the provider tests share: result unwrapping, a poll helper, the emulator's token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from inferenceops.providers import Observation, PollResult, ProviderError, Target

#: The credential the emulator accepts in these tests; it must never appear in a message.
TOKEN = "emulator-secret-token"


def ok(result: PollResult) -> Observation:
    assert isinstance(result, Observation), result
    return result


def failed(result: PollResult) -> ProviderError:
    assert isinstance(result, ProviderError), result
    assert TOKEN not in result.message
    return result


async def poll(provider: Any, targets: Sequence[Target[Any]]) -> dict[str, PollResult]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        results = dict(await provider.observe(client, targets))
    assert set(results) == {t.key for t in targets}
    return results
