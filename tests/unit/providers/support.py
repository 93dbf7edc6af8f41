"""What the provider tests share: result unwrapping, a poll helper, the emulator's token, and
the providers' official example bodies."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
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


def official(provider: str) -> dict[str, Any]:
    """The provider's official example bodies and enums (official_examples.json names where each
    comes from), deep-copied so that a test can edit its copy."""
    return copy.deepcopy(_OFFICIAL[provider])


_OFFICIAL: dict[str, Any] = json.loads(
    (Path(__file__).parent / "official_examples.json").read_text(encoding="utf-8")
)
