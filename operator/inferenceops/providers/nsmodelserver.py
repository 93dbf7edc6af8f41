"""NS model server (self-hosted): `GET {url}/status`.

Spec: shared/providers/ns-model-server-status.md. The server answers HTTP 200 even when it has
FAILED; only `data.stage` tells. It documents no authentication, so no credential is sent.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from .base import Observation, Phase, Provider, Target, Workers
from .config import ProviderConfig
from .http import ProviderURL, excerpt, get_json
from .wire import Reduced

__all__ = ["PROVIDER", "NSModelServerConfig", "NSModelServerProvider"]


class NSModelServerConfig(ProviderConfig):
    # Each model server is its own status API: an InferenceProvider only shares a budget.
    endpoint_fields: ClassVar[frozenset[str]] = frozenset({"url"})

    url: Annotated[
        ProviderURL,
        Field(
            description="Base URL of the model server, e.g. http://ns.ml.svc:8080.",
        ),
    ]


class _Error(BaseModel):
    model_config = ConfigDict(extra="ignore")
    errorType: str | None = None
    cause: str | None = None


#: (errorType, cause): only the first error is read, so each is kept as no more than that.
_ErrorCause = Annotated[
    tuple[str | None, str | None], Reduced(_Error, lambda e: (e.errorType, e.cause))
]


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # A plain str, not an enum: a new stage must map to Unknown, not fail the poll.
    stage: str
    progress: Annotated[int, Field(ge=0, le=100)] | None = None
    messages: list[str] | None = None
    errors: list[_ErrorCause] | None = None


class _StatusResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    data: _Data


_STAGE_PHASES: dict[str, Phase] = {
    "GETTING_RESOURCES": Phase.PROVISIONING,
    "STARTING": Phase.PROVISIONING,
    "LOADING_MODEL": Phase.PROVISIONING,
    "BUILDING_API": Phase.PROVISIONING,
    "READY": Phase.RUNNING,
    "FAILED": Phase.FAILED,
}


def map_status(body: _StatusResponse) -> Observation:
    data = body.data
    phase = _STAGE_PHASES.get(data.stage, Phase.UNKNOWN)
    error_code = error_message = None
    if phase is Phase.FAILED:
        error_type, error_message = data.errors[0] if data.errors else (None, None)
        error_code = error_type or "FAILED"
    ready = 1 if phase is Phase.RUNNING else 0
    # While loading, the server's latest log line says what it is doing ("Reading model..."),
    # which the stage alone does not; it reaches the Ready message as the sub-phase. Not once
    # it is READY or FAILED: the stage (or the error) says it all then.
    doing = data.messages[-1] if phase is Phase.PROVISIONING and data.messages else None
    return Observation(
        phase=phase,
        provider_status=data.stage,
        provider_phase=excerpt(doing, 200) if doing else None,
        error_code=error_code,
        error_message=error_message,
        progress=data.progress,
        workers=Workers(ready=ready, total=1),
    )


class NSModelServerProvider(Provider[NSModelServerConfig]):
    name = "nsModelServer"
    display_name = "NS model server"
    config_model = NSModelServerConfig
    # lists stays False: the server is the endpoint.
    listing = "an NS model server is one endpoint (its URL): there is nothing to list"

    def endpoint_label(self, config: NSModelServerConfig) -> str:
        return config.url

    async def observe_one(
        self, client: httpx.AsyncClient, target: Target[NSModelServerConfig]
    ) -> Observation:
        url = target.config.url.rstrip("/") + "/status"
        return map_status(await get_json(client, url, _StatusResponse))


PROVIDER = NSModelServerProvider()
