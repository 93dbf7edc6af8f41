"""The base of every provider block in `spec`: the pydantic models adapters' configs extend.

What a block's fields mean to the core (which name the remote endpoint, which name Secrets, which
decide where requests go) is declared here as class variables, so the core treats every provider
alike (provider_objects.py, api/provider_kinds.py).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = ["SECRET_NAME_PATTERN", "CredentialedConfig", "ProviderConfig", "SecretKeyRef"]

#: A Kubernetes object name (DNS-1123 subdomain): what the API server accepts for a Secret, so
#: nothing else (`../x`) reaches the Secret lookup.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class SecretKeyRef(BaseModel):
    """A key of a Secret in the resource's own namespace."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_NAME_PATTERN,
        description="Name of the Secret (a DNS-1123 subdomain, as Kubernetes requires).",
    )
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret.")


class ProviderConfig(BaseModel):
    """Base of every provider block in `spec`; fields are camelCase in YAML."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )

    #: Fields that name one remote endpoint: only an InferenceEndpoint sets them, never an
    #: InferenceProvider (api/provider_kinds.py builds the provider's block without them).
    endpoint_fields: ClassVar[frozenset[str]] = frozenset({"endpoint_id"})
    #: Fields naming Secrets: set on the endpoint or on the provider object, never both.
    credential_fields: ClassVar[tuple[str, ...]] = ()
    #: Fields that decide where requests (and so credentials) go: an endpoint using a provider
    #: object's credentials may not change them, or it could send them to a server of its own.
    destination_fields: ClassVar[frozenset[str]] = frozenset({"url"})
    #: Fields choosing which part of an account a request acts on (a team, a workspace): one
    #: key may read several. Through a provider object an endpoint may set them only to what
    #: the object's `spec.allowedOverrides` lists (provider_objects.py).
    account_fields: ClassVar[frozenset[str]] = frozenset()

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        """The Secret keys a poll reads, in the order the adapter expects their values (all in
        one Secret); empty for providers without credentials."""
        return ()

    def destinations(self) -> dict[str, str]:
        """Where requests go, by field alias: each destination field's value, or the default
        the adapter applies when it is unset (a provider whose default is computed says so)."""
        out = {}
        for name in sorted(self.destination_fields):
            value = getattr(self, name, None)
            if value is not None:
                out[type(self).model_fields[name].alias or name] = str(value)
        return out


class CredentialedConfig(ProviderConfig):
    """A provider block whose requests carry a credential read from a Secret."""

    credential_fields: ClassVar[tuple[str, ...]] = ("credentials_secret_ref",)

    credentials_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the API credential, in the resource's namespace."
    )

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        return (self.credentials_secret_ref,)
