"""Provider adapters, one module or package each, behind `base.Provider` (docs/providers.md)."""

from .base import (
    CREDENTIAL_SEPARATOR,
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
)
from .config import CredentialedConfig, ProviderConfig, SecretKeyRef
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
    "RemoteEndpoint",
    "SecretKeyRef",
    "Target",
    "Workers",
    "all_providers",
    "get",
]
