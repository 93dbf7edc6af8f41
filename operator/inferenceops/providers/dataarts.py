"""Huawei Cloud DataArts Fabric: `GET {url}/v1/workspaces/{workspaceId}/endpoints`.

Spec: shared/providers/dataarts-fabric-list-endpoints.md (plus NOTES.md); mapping in
docs/providers/dataarts-fabric.md. Only the list API is used, so that one paged listing can answer
every endpoint of a workspace: a single target is asked for with the `endpoint_id` filter, several
targets of one workspace share one listing. DataArts says "does not exist" with HTTP 400 and an
`error_code`, which `classify_error` turns into NotFound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from .base import (
    CREDENTIAL_SEPARATOR,
    ErrorReason,
    Observation,
    Phase,
    PollResult,
    Provider,
    ProviderError,
    Target,
    Workers,
    provider_time,
)
from .batching import list_then_fetch
from .config import SECRET_NAME_PATTERN, ProviderConfig, SecretKeyRef
from .http import (
    MAX_PAGE_BYTES,
    ProviderURL,
    error_for_status,
    excerpt,
    get_json,
    validation_summary,
)
from .hwsign import SIGN_EXTENSION, signer
from .wire import ParseContext, Reduced, wanted_entry

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

WORKSPACE_ID_PATTERN = r"^[A-Za-z0-9-]{1,36}$"
ENDPOINT_ID_PATTERN = r"^[A-Za-z0-9-]{32,36}$"

#: The documented maximum page size.
PAGE_LIMIT = 100
#: A workspace listing that has not ended after this many pages is not converging (the provider
#: keeps raising `total`, or ignores `offset`); stop rather than poll forever.
MAX_PAGES = 100

# DataArts error codes are "<service>.<8 digits>"; only the digits are stable across services.
_CODE_NOT_EXIST = "00010009"
_CODE_WORKSPACE_NOT_EXIST = "00010003"
_CODE_BUSY = "00000001"


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


class _Tolerant(BaseModel):
    # The 403 example in the docs has a numeric `error_code`; accept numbers wherever a string is.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class _ResourceDef(_Tolerant):
    warm_up_num: int | None = None
    max_num: int | None = None


class _ReservedResource(_Tolerant):
    apu: _ResourceDef | None = None
    dpu: _ResourceDef | None = None


class _WorkerGroup(_Tolerant):
    min_replicas: int | None = None
    max_replicas: int | None = None


#: (min_replicas, max_replicas) of a worker group: all the mapping reads of it.
_Bounds = Annotated[
    tuple[int | None, int | None], Reduced(_WorkerGroup, lambda g: (g.min_replicas, g.max_replicas))
]


class _RayResource(_Tolerant):
    worker_group_spec: list[_Bounds] | None = None


class _Endpoint(_Tolerant):
    id: str
    # Plain str, not enums: a new status or type must map to Unknown, not fail the poll.
    status: str
    type: str | None = None
    reserved_resource: _ReservedResource | None = None
    ray_resource: _RayResource | None = None
    error_code: str | None = None
    error_msg: str | None = None
    update_time: str | None = None


#: A listing entry: the model, or the raw object when the model rejects it, so a malformed entry
#: for someone else's endpoint does not fail the poll of every endpoint sharing the listing, and
#: the one it belongs to is told what is wrong. pydantic-core parses the body straight into the
#: models (several times faster than JSON to dicts to models for pages of 100). An entry of an
#: endpoint not asked about is counted and dropped as it is parsed (`wanted_entry`).
_Entry = Annotated[
    _Endpoint | dict[str, Any],
    Field(union_mode="left_to_right"),
    wanted_entry(lambda entry: _id_of(entry)),
]


class _ListResponse(_Tolerant):
    total: int | None = None
    endpoints: list[_Entry]


class _ErrorBody(_Tolerant):
    error_code: str | None = None
    error_msg: str | None = None
    solution_msg: str | None = None

    def readable(self) -> str:
        """What went wrong and what to do about it, for the Synced message: `solution_msg` is
        DataArts' advice to the user, the part most worth reading."""
        said = ": ".join(x for x in (self.error_code, self.error_msg) if x)
        return f"{said}; solution: {self.solution_msg}" if self.solution_msg else said


_STATUS_PHASES: dict[str, Phase] = {
    "CREATING": Phase.PROVISIONING,
    "RUNNING": Phase.RUNNING,
    "UPDATING": Phase.UPDATING,
    "CREATE_FAILED": Phase.FAILED,
    "UPDATE_FAILED": Phase.FAILED,
    "DELETE_FAILED": Phase.FAILED,
    "DELETING": Phase.TERMINATING,
    "DELETED": Phase.TERMINATED,
    "FROZEN": Phase.SUSPENDED,
    "INACTIVE": Phase.SUSPENDED,
    "TRIAL_ENDED": Phase.SUSPENDED,
}

_RAY_TYPES = frozenset({"ray", "ray_service"})


def _sum(values: list[int | None]) -> int | None:
    # A group without the bound makes the total unknown; a partial sum would understate it.
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def _workers(endpoint: _Endpoint) -> Workers | None:
    low: int | None
    high: int | None
    if (endpoint.type or "").lower() in _RAY_TYPES:
        groups = (endpoint.ray_resource.worker_group_spec if endpoint.ray_resource else None) or []
        low = _sum([low for low, _ in groups])
        high = _sum([high for _, high in groups])
    else:
        reserved = endpoint.reserved_resource
        # An endpoint reserves APUs or, for data-processing work, DPUs; both are counted alike.
        units = (reserved.apu or reserved.dpu) if reserved else None
        low = units.warm_up_num if units else None
        # Documented: a blank max_num means "no elastic resources", i.e. max = warm-up count.
        high = units.max_num if units and units.max_num is not None else low
    if low is None and high is None:
        return None
    # The list API says nothing about how many resources are up right now.
    return Workers(min=low, max=high)


def map_endpoint(endpoint: _Endpoint) -> Observation:
    phase = _STATUS_PHASES.get(endpoint.status, Phase.UNKNOWN)
    error_code = error_message = None
    if phase is Phase.FAILED:
        error_code = endpoint.error_code or endpoint.status
        error_message = endpoint.error_msg
    return Observation(
        phase=phase,
        provider_status=endpoint.status,
        error_code=error_code,
        error_message=error_message,
        workers=_workers(endpoint),
        changed_at=provider_time(endpoint.update_time),
    )


class _WorkspaceMissing(ProviderError):
    """NotFound for the workspace itself, so it holds for every endpoint in it."""


def classify_error(
    status: int, body: bytes, workspace_id: str | None = None, endpoint_id: str | None = None
) -> ProviderError | None:
    """The DataArts error bodies that mean something other than their HTTP status says, and
    every other DataArts error body told in its own words (code, message and solution) rather
    than as raw JSON.

    The ids only name things in the message; pass the ones the request was about.
    """
    try:
        # Straight from the bytes: members it does not declare are skipped, not built.
        parsed = _ErrorBody.model_validate_json(body)
    except ValidationError:
        return None
    code = parsed.error_code or ""
    readable = excerpt(parsed.readable(), 300)
    detail = f" ({readable})"
    if status == 400 and code.endswith(_CODE_NOT_EXIST):
        what = f"endpoint {endpoint_id}" if endpoint_id else "endpoint"
        return ProviderError(
            ErrorReason.NOT_FOUND, f"{what} does not exist (HTTP 400){detail}", http_status=400
        )
    if status == 400 and code.endswith(_CODE_WORKSPACE_NOT_EXIST):
        what = f"workspace {workspace_id}" if workspace_id else "workspace"
        return _WorkspaceMissing(
            ErrorReason.NOT_FOUND, f"{what} does not exist (HTTP 400){detail}", http_status=400
        )
    if status == 500 and code.endswith(_CODE_BUSY):
        return ProviderError(
            ErrorReason.UNREACHABLE, f"provider is busy, retry (HTTP 500){detail}", http_status=500
        )
    if status == 429 or not readable:
        # A 429's Retry-After is in the headers, which only the generic path reads.
        return None
    return error_for_status(status, readable, httpx.Headers(), limit=300)


def _workspace_wide(err: ProviderError) -> bool:
    """Whether a failed workspace listing would fail the same way for each endpoint's own request.

    Retrying those per endpoint only multiplies requests (and 429s) against the same account.
    """
    if err.reason in (ErrorReason.UNAUTHORIZED, ErrorReason.RATE_LIMITED):
        return True
    # The filtered request uses the very same path, so a missing workspace or path is missing
    # for it too.
    return isinstance(err, _WorkspaceMissing) or (
        err.reason is ErrorReason.NOT_FOUND and err.http_status == 404
    )


class _Pages:
    """Offset paging through one listing query, filtered to `endpoint_id` when given; a page
    keeps the entries of the `wanted` endpoints only.

    Ends on `total`, on an empty page, or (as an error) after MAX_PAGES.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: DataArtsFabricConfig,
        credential: str | None,
        wanted: Collection[str],
        endpoint_id: str | None = None,
    ) -> None:
        self._client = client
        self._wanted = wanted
        self._workspace_id = config.workspace_id
        self._endpoint_id = endpoint_id
        self._url = f"{config.url.rstrip('/')}/v1/workspaces/{config.workspace_id}/endpoints"
        self._headers: dict[str, str] = {}
        self._extensions: dict[str, Any] = {}
        parts = credential.split(CREDENTIAL_SEPARATOR) if credential is not None else []
        if len(parts) == 2:
            # An access key pair (accessKeySecretRef): each request signed, nothing expires.
            access_key, secret_key = parts
            self._extensions[SIGN_EXTENSION] = signer(access_key, secret_key)
        elif credential is not None:
            self._headers["X-Auth-Token"] = credential
        self.offset = 0
        self.total: int | None = None
        self.pages = 0
        self.done = False

    def _classify(self, status: int, body: bytes) -> ProviderError | None:
        return classify_error(status, body, self._workspace_id, self._endpoint_id)

    def remaining_pages(self) -> int | None:
        if self.total is None:
            return None
        return math.ceil(max(0, self.total - self.offset) / PAGE_LIMIT)

    async def fetch(self) -> list[_Endpoint | dict[str, Any]]:
        if self.pages >= MAX_PAGES:
            raise ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"endpoint listing did not end after {MAX_PAGES} pages of {PAGE_LIMIT}",
            )
        params: dict[str, str | int] = {"offset": self.offset, "limit": PAGE_LIMIT}
        if self._endpoint_id is not None:
            params["endpoint_id"] = self._endpoint_id
        parsed = ParseContext(wanted=self._wanted)
        body = await get_json(
            self._client,
            self._url,
            _ListResponse,
            headers=self._headers,
            params=params,
            classify_error=self._classify,
            max_bytes=MAX_PAGE_BYTES,
            extensions=self._extensions,
            context=parsed,
        )
        self.pages += 1
        # Advance by what came back (kept or not), not by the limit we asked for: a server that
        # caps pages lower than 100 must not make us skip entries.
        listed = parsed.listed
        self.offset += listed
        self.total = body.total
        if not listed:
            self.done = True
        elif body.total is not None:
            self.done = self.offset >= body.total
        else:
            # Without `total` a short page is the only end marker there is.
            self.done = listed < PAGE_LIMIT
        return body.endpoints


def _id_of(entry: _Endpoint | dict[str, Any]) -> object:
    return entry.id if isinstance(entry, _Endpoint) else entry.get("id")


def _observe_entry(entry: _Endpoint | dict[str, Any]) -> PollResult:
    if isinstance(entry, _Endpoint):
        return map_endpoint(entry)
    raw = entry
    try:  # rejected while the page was parsed: validated again for the reason
        return map_endpoint(_Endpoint.model_validate(raw))
    except ValidationError as err:
        return ProviderError(
            ErrorReason.BAD_RESPONSE,
            f"endpoint entry is not the documented shape ({validation_summary(err)}): "
            f"{excerpt(json.dumps(raw), 80)}",
        )


def _not_found(config: DataArtsFabricConfig) -> ProviderError:
    return ProviderError(
        ErrorReason.NOT_FOUND,
        f"endpoint {config.endpoint_id} not found in workspace {config.workspace_id}",
    )


class DataArtsFabricProvider(Provider[DataArtsFabricConfig]):
    name = "dataArtsFabric"
    display_name = "DataArts Fabric"
    config_model = DataArtsFabricConfig
    batches = True

    def account_key(self, config: DataArtsFabricConfig) -> Hashable:
        # One listing answers a whole workspace, so the workspace is part of what can be batched.
        return (self.name, config.url, config.workspace_id)

    def endpoint_label(self, config: DataArtsFabricConfig) -> str:
        return config.endpoint_id

    async def observe(
        self, client: httpx.AsyncClient, targets: Sequence[Target[DataArtsFabricConfig]]
    ) -> Mapping[str, PollResult]:
        """One filtered request for a lone target; one shared workspace listing for several.

        Targets the listing did not answer (a listing race, or a listing that failed for a reason
        that is not workspace-wide) fall back to their own filtered request, so a listing never
        reports a false NotFound.
        """
        return await self.each_account(client, targets, self._observe_workspace)

    async def _observe_workspace(
        self, client: httpx.AsyncClient, targets: Sequence[Target[DataArtsFabricConfig]]
    ) -> dict[str, PollResult]:
        by_id = {t.config.endpoint_id: t for t in targets}

        async def listing() -> tuple[dict[str, PollResult], ProviderError | None]:
            found, failure = await self._list_workspace(client, targets)
            return {i: _observe_entry(raw) for i, raw in found.items()}, failure

        results = await list_then_fetch(
            list(by_id),
            listing,
            lambda i: self.observe_one(client, by_id[i]),
            final=_workspace_wide,
        )
        return {t.key: results[t.config.endpoint_id] for t in targets}

    async def observe_one(
        self, client: httpx.AsyncClient, target: Target[DataArtsFabricConfig]
    ) -> Observation:
        config = target.config
        pages = _Pages(
            client, config, target.credential, {config.endpoint_id}, endpoint_id=config.endpoint_id
        )
        # The filter should make this one request; paging still copes with a server that treats
        # the id filter loosely (or ignores it).
        while not pages.done:
            for entry in await pages.fetch():
                if _id_of(entry) == config.endpoint_id:
                    result = _observe_entry(entry)
                    if isinstance(result, ProviderError):
                        raise result
                    return result
        raise _not_found(config)

    async def _list_workspace(
        self, client: httpx.AsyncClient, targets: Sequence[Target[DataArtsFabricConfig]]
    ) -> tuple[dict[str, _Endpoint | dict[str, Any]], ProviderError | None]:
        """Page through the workspace until every target is found or the listing ends.

        Stops early, leaving the rest to filtered requests, once the pages still to read outnumber
        the targets still missing: a few endpoints in a huge workspace should not cost a full scan.
        """
        first = targets[0]
        wanted = {t.config.endpoint_id for t in targets}
        found: dict[str, _Endpoint | dict[str, Any]] = {}
        pages = _Pages(client, first.config, first.credential, wanted)
        try:
            while not pages.done:
                for entry in await pages.fetch():
                    ident = _id_of(entry)
                    if isinstance(ident, str) and ident in wanted:
                        found[ident] = entry
                missing = len(wanted) - len(found)
                remaining = pages.remaining_pages()
                if missing == 0 or (remaining is not None and remaining > missing):
                    break
        except ProviderError as err:
            return found, err
        return found, None


PROVIDER = DataArtsFabricProvider()
