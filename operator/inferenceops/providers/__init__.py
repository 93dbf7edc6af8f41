"""Provider adapters, one module or package each, behind `base.Provider` (docs/providers.md)."""

from .base import (
    CREDENTIAL_SEPARATOR,
    MAX_LISTED,
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    Provider,
    ProviderError,
    Queue,
    RemoteEndpoint,
    Target,
    Workers,
    declared_id,
    declared_ids,
    too_many_listed,
)
from .config import CredentialedConfig, ProviderConfig, SecretKeyRef
from .registry import all_providers, get

__all__ = [
    "CREDENTIAL_SEPARATOR",
    "MAX_LISTED",
    "CredentialedConfig",
    "ErrorReason",
    "Observation",
    "Phase",
    "PollResult",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "Queue",
    "RemoteEndpoint",
    "SecretKeyRef",
    "Target",
    "Workers",
    "all_providers",
    "declared_id",
    "declared_ids",
    "get",
    "too_many_listed",
]
