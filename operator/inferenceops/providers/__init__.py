"""Provider adapters: one module per provider behind `base.Provider`. See docs/providers.md."""

from .base import (
    CREDENTIAL_SEPARATOR,
    CredentialedConfig,
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    Provider,
    ProviderConfig,
    ProviderError,
    Queue,
    SecretKeyRef,
    Target,
    Workers,
)
from .registry import all_providers, get

__all__ = [
    "CREDENTIAL_SEPARATOR",
    "CredentialedConfig",
    "ErrorReason",
    "Observation",
    "Phase",
    "PollResult",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "Queue",
    "SecretKeyRef",
    "Target",
    "Workers",
    "all_providers",
    "get",
]
