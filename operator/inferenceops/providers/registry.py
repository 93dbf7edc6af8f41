"""The providers the operator knows, by the name of their block in `spec`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import Provider

__all__ = ["all_providers", "get", "register"]

_PROVIDERS: dict[str, Provider[Any]] = {}


def register(provider: Provider[Any]) -> Provider[Any]:
    """Add a provider; registering a name twice is a programming error."""
    if provider.name in _PROVIDERS:
        raise ValueError(f"provider {provider.name!r} is registered twice")
    _PROVIDERS[provider.name] = provider
    return provider


def get(name: str) -> Provider[Any]:
    _load_builtin()
    return _PROVIDERS[name]


def all_providers() -> Iterator[Provider[Any]]:
    """Registered providers in a stable order (registration order)."""
    _load_builtin()
    return iter(list(_PROVIDERS.values()))


_loaded = False


def _load_builtin() -> None:
    # Imported lazily so that `base` and `registry` never import adapters at module load.
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import builtin  # noqa: F401
