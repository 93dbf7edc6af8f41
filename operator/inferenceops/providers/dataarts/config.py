"""DataArts Fabric's spec block: the regional URL, the workspace and endpoint, one credential."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from ..config import SECRET_NAME_PATTERN, ProviderConfig, SecretKeyRef
from ..http import ProviderURL

__all__ = [
    "ENDPOINT_ID_PATTERN",
    "WORKSPACE_ID_PATTERN",
    "AccessKeySecretRef",
    "DataArtsFabricConfig",
]

WORKSPACE_ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"
ENDPOINT_ID_PATTERN = r"^[A-Za-z0-9-]{32,36}$"


class AccessKeySecretRef(BaseModel):
    """A Secret holding a Huawei Cloud access key (AK) and its secret key (SK)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_NAME_PATTERN,
        description="Name of the Secret (a DNS-1123 subdomain, as Kubernetes requires).",
    )
    access_key_id_key: str = Field(
        default="accessKeyId", min_length=1, max_length=253, description="Key holding the AK."
    )
    secret_access_key_key: str = Field(
        default="secretAccessKey",
        min_length=1,
        max_length=253,
        description="Key holding the SK.",
    )


class DataArtsFabricConfig(ProviderConfig):
    """Exactly one credential: an IAM token (`credentialsSecretRef`, sent as `X-Auth-Token`; it
    expires after 24 hours) or an access key pair (`accessKeySecretRef`; each request is signed
    with SDK-HMAC-SHA256 and nothing expires)."""

    credential_fields: ClassVar[tuple[str, ...]] = (
        "credentials_secret_ref",
        "access_key_secret_ref",
    )
    # An IAM token or access key reaches every workspace its user may.
    account_fields: ClassVar[frozenset[str]] = frozenset({"workspace_id"})

    credentials_secret_ref: Annotated[
        SecretKeyRef | None,
        Field(description="Secret key holding an IAM token (X-Auth-Token)."),
    ] = None
    access_key_secret_ref: Annotated[
        AccessKeySecretRef | None,
        Field(description="Secret holding an access key pair; requests are signed with it."),
    ] = None

    url: Annotated[
        ProviderURL,
        Field(
            description=(
                "Regional DataArts Fabric API base URL, "
                "e.g. https://fabric.cn-north-4.myhuaweicloud.com."
            ),
        ),
    ]
    workspace_id: Annotated[
        str,
        Field(
            pattern=WORKSPACE_ID_PATTERN,
            description="Workspace ID: 1 to 36 letters, digits and hyphens.",
        ),
    ]
    endpoint_id: Annotated[
        str,
        Field(
            pattern=ENDPOINT_ID_PATTERN,
            description="Endpoint ID: 32 to 36 letters, digits and hyphens.",
        ),
    ]

    @model_validator(mode="after")
    def _one_credential(self) -> DataArtsFabricConfig:
        if (self.credentials_secret_ref is None) == (self.access_key_secret_ref is None):
            raise ValueError("set exactly one of credentialsSecretRef and accessKeySecretRef")
        return self

    def secret_refs(self) -> tuple[SecretKeyRef, ...]:
        if self.access_key_secret_ref is not None:
            ref = self.access_key_secret_ref
            return (
                SecretKeyRef(name=ref.name, key=ref.access_key_id_key),
                SecretKeyRef(name=ref.name, key=ref.secret_access_key_key),
            )
        assert self.credentials_secret_ref is not None  # _one_credential
        return (self.credentials_secret_ref,)
