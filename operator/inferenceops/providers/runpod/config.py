"""RunPod's spec block: the endpoint, the API version, and where requests (and the key) go."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..config import CredentialedConfig
from ..http import SAFE_ID_PATTERN, ProviderURL

__all__ = ["DEFAULT_QUEUE_URL", "DEFAULT_URLS", "ENDPOINT_ID_PATTERN", "RunPodConfig"]

ENDPOINT_ID_PATTERN = SAFE_ID_PATTERN
DEFAULT_URLS: dict[str, str] = {
    "v1": "https://rest.runpod.io/v1",
    "v2": "https://api.runpod.io/v2",
}
#: RunPod's serverless endpoint API (run, status, health...): api.runpod.ai, not the REST host.
DEFAULT_QUEUE_URL = "https://api.runpod.ai/v2"


class RunPodConfig(
    CredentialedConfig,
    json_schema_extra={
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.queueMetrics) || !self.queueMetrics || "
                "!has(self.api) || self.api == 'v2'",
                "message": "queueMetrics needs api v2 (REST v1 is retired)",
            }
        ]
    },
):
    # Reading the queue is a choice per endpoint (a request and a status write more per poll).
    endpoint_fields: ClassVar[frozenset[str]] = frozenset({"endpoint_id", "queue_metrics"})
    # The queue route gets the same API key as the status route.
    destination_fields: ClassVar[frozenset[str]] = frozenset({"url", "queue_url"})

    endpoint_id: Annotated[
        str,
        Field(pattern=ENDPOINT_ID_PATTERN, description="ID of the RunPod Serverless endpoint."),
    ]
    api: Annotated[
        Literal["v1", "v2"],
        Field(description="RunPod REST API version; v1 is deprecated (retired 2026-11-15)."),
    ] = "v2"
    url: Annotated[
        ProviderURL | None,
        Field(
            description="Base URL including the version path; defaults to "
            "https://api.runpod.io/v2 for v2 and https://rest.runpod.io/v1 for v1.",
        ),
    ] = None

    queue_metrics: Annotated[
        bool,
        Field(
            description="Also read the job queue (in queue, in progress, failed) from the "
            "endpoint's /health route into status.queue: one more request per poll, and a "
            "status write whenever those numbers change. v2 only; LOAD_BALANCER endpoints "
            "have no queue.",
        ),
    ] = False
    queue_url: Annotated[
        ProviderURL | None,
        Field(
            description="Base URL of RunPod's serverless endpoint API, which serves "
            "/{endpointId}/health; defaults to https://api.runpod.ai/v2.",
        ),
    ] = None

    @model_validator(mode="after")
    def _queue_needs_v2(self) -> RunPodConfig:
        # The API server's CEL rule says the same; this catches specs that bypassed it.
        if self.queue_metrics and self.api != "v2":
            raise ValueError("queueMetrics needs api v2 (REST v1 is retired)")
        return self

    def base_url(self) -> str:
        return (self.url or DEFAULT_URLS[self.api]).rstrip("/")

    def queue_base_url(self) -> str:
        return (self.queue_url or DEFAULT_QUEUE_URL).rstrip("/")

    def destinations(self) -> dict[str, str]:
        # The defaults depend on `api`; the queue route is checked even when queueMetrics is
        # off, so turning it on later cannot start sending the key somewhere unchecked.
        return {"url": self.base_url(), "queueUrl": self.queue_base_url()}
