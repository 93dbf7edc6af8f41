"""Huawei Cloud DataArts Fabric: `GET {url}/v1/workspaces/{workspaceId}/endpoints`.

Spec: shared/providers/dataarts-fabric-list-endpoints.md (plus NOTES.md); mapping in
docs/providers/dataarts-fabric.md. Only the list API is used, so that one paged listing can answer
every endpoint of a workspace: a single target is asked for with the `endpoint_id` filter, several
targets of one workspace share one listing. DataArts says "does not exist" with HTTP 400 and an
`error_code`, which `classify_error` turns into NotFound.

By job: `config` (the spec block), `responses` (the listing body, as the mapping reads it),
`mapping` (an entry to an `Observation`), `errors` (DataArts' error bodies, and which hold for a
whole workspace), `paging` (offset paging, token or signed) and `adapter` (the `Provider`).
"""

from .adapter import PROVIDER, DataArtsFabricProvider
from .config import (
    ENDPOINT_ID_PATTERN,
    WORKSPACE_ID_PATTERN,
    AccessKeySecretRef,
    DataArtsFabricConfig,
)
from .errors import classify_error
from .mapping import map_endpoint
from .paging import PAGE_LIMIT

__all__ = [
    "ENDPOINT_ID_PATTERN",
    "PAGE_LIMIT",
    "PROVIDER",
    "WORKSPACE_ID_PATTERN",
    "AccessKeySecretRef",
    "DataArtsFabricConfig",
    "DataArtsFabricProvider",
    "classify_error",
    "map_endpoint",
]
