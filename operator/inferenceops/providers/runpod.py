"""RunPod Serverless endpoints, over REST v2 (default) or the deprecated REST v1.

Specs: shared/providers/runpod-get-endpoint.md (v1) and NOTES.md (v2). RunPod has no endpoint
status word: the phase is derived from the endpoint's workers, and `providerStatus` summarises
the counts it was derived from.

- v2: `GET {url}/serverless/{id}` (min/max) and `GET {url}/serverless/{id}/workers` (summary).
  Both must answer: without the summary there is nothing to derive a phase from.
- v1: `GET {url}/endpoints/{id}?includeWorkers=true`.
- Opt-in (`queueMetrics`, v2): `GET {queueUrl}/{id}/health` for the job queue. It is RunPod's
  serverless endpoint API on another host (api.runpod.ai), not REST v2 (api.runpod.io).

Two or more endpoints in one account are answered from the list calls (`GET {url}/serverless`,
`GET {url}/endpoints?includeWorkers=true`), with per-endpoint calls for whatever the list misses.
See docs/providers/runpod.md for the mapping and the request counts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from typing import Annotated, ClassVar, Literal

import httpx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    OnErrorOmit,
    RootModel,
    model_validator,
)

from ..aiotasks import concurrently
from .base import (
    Observation,
    Phase,
    PollResult,
    Provider,
    ProviderError,
    Queue,
    Target,
    Workers,
)
from .batching import caught, list_then_fetch, rate_limited
from .config import CredentialedConfig
from .http import MAX_LISTING_BYTES, SAFE_ID_PATTERN, ProviderURL, get_json
from .wire import ParseContext, Reduced, wanted_entry

__all__ = ["PROVIDER", "RunPodConfig", "RunPodProvider", "map_health", "map_v1", "map_v2"]

ENDPOINT_ID_PATTERN = SAFE_ID_PATTERN
DEFAULT_URLS: dict[str, str] = {
    "v1": "https://rest.runpod.io/v1",
    "v2": "https://api.runpod.io/v2",
}
#: RunPod's serverless endpoint API (run, status, health...): api.runpod.ai, not the REST host.
DEFAULT_QUEUE_URL = "https://api.runpod.ai/v2"
#: An endpoint type without a queue: RunPod routes requests straight to its workers.
LOAD_BALANCER = "LOAD_BALANCER"
#: Error code of an endpoint whose only workers are unhealthy.
WORKERS_UNHEALTHY = "WorkersUnhealthy"
#: Error code of an endpoint whose max workers is 0: RunPod cannot start a worker for it.
MAX_WORKERS_ZERO = "MaxWorkersZero"
MAX_WORKERS_ZERO_MESSAGE = (
    "max workers is 0, so RunPod cannot start a worker (RunPod lowers it to 0 after 7 days "
    "without requests); raise max workers in the RunPod console or API to serve again"
)


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


# --- v1 --------------------------------------------------------------------------------------


class _V1Worker(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Plain str: RUNNING, EXITED, TERMINATED today, whatever tomorrow.
    desiredStatus: str | None = None


#: A v1 worker as the mapping uses it: its desiredStatus (None when it has none).
_V1WorkerStatus = Annotated[str | None, Reduced(_V1Worker, lambda w: w.desiredStatus)]


class _V1Endpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    # Absent when the endpoint has no workers as well as empty: both mean none are listed.
    workers: list[_V1WorkerStatus] | None = None
    workersMin: NonNegativeInt | None = None
    workersMax: NonNegativeInt | None = None


class _V1List(RootModel[list[Annotated[OnErrorOmit[_V1Endpoint], wanted_entry(lambda e: e.id)]]]):
    """An entry the model rejects is left out, so only that endpoint goes to the per-endpoint
    fallback (which says what is wrong with it) instead of the whole list being thrown away;
    so is every entry of an endpoint not asked about, as it is parsed (`wanted_entry`).
    Typed here rather than entry by entry: pydantic-core parses the body straight into the
    models, several times faster than JSON to dicts to models for a list of thousands."""


#: desiredStatus values of workers RunPod is stopping: they are going away, not coming up.
_V1_GOING_AWAY = frozenset({"EXITED", "TERMINATED"})


def map_v1(body: _V1Endpoint) -> Observation:
    workers = body.workers or []
    # desiredStatus is RunPod's intent for the worker, the closest v1 comes to observed health.
    ready = workers.count("RUNNING")
    total = len(workers)
    if body.workersMax == 0:
        return _max_workers_zero(
            f"workers running={ready} total={total}",
            Workers(ready=ready, total=total, min=body.workersMin, max=body.workersMax),
        )
    if ready >= 1:
        phase = Phase.RUNNING
    elif all(w in _V1_GOING_AWAY for w in workers):
        # None wanted running (or none listed): scaled down to zero, and RunPod starts workers
        # again on demand. A worker on its way up is already desiredStatus RUNNING, so v1 has
        # no Provisioning to report.
        phase = Phase.IDLE
    else:
        # A desiredStatus v1 does not document (or none): we cannot tell where it is going.
        phase = Phase.UNKNOWN
    return Observation(
        phase=phase,
        provider_status=f"workers running={ready} total={total}",
        workers=Workers(ready=ready, total=total, min=body.workersMin, max=body.workersMax),
    )


def _max_workers_zero(provider_status: str, workers: Workers) -> Observation:
    """Max workers 0 wins over any worker count: nothing can serve until the user raises it.

    Suspended, not Failed: nothing is broken and waiting will not change it (RunPod keeps it at
    0 until someone raises it), which is what Suspended means for every provider; a user who
    set 0 on purpose to pause the endpoint gets the same, truthful, answer.
    """
    return Observation(
        phase=Phase.SUSPENDED,
        provider_status=provider_status,
        error_code=MAX_WORKERS_ZERO,
        error_message=MAX_WORKERS_ZERO_MESSAGE,
        workers=workers,
    )


# --- v2 --------------------------------------------------------------------------------------


class _V2Scaling(BaseModel):
    model_config = ConfigDict(extra="ignore")
    min: NonNegativeInt | None = None
    max: NonNegativeInt | None = None


class _V2Endpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    # QUEUE or LOAD_BALANCER; plain str, so a new type does not fail the poll.
    type: str | None = None
    workers: _V2Scaling | None = None


class _V2List(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # As in _V1List: a rejected entry is left out for the per-endpoint fallback, and so is the
    # entry of an endpoint not asked about.
    endpoints: list[Annotated[OnErrorOmit[_V2Endpoint], wanted_entry(lambda e: e.id)]]


class _V2Summary(BaseModel):
    model_config = ConfigDict(extra="ignore")
    running: NonNegativeInt = 0
    idle: NonNegativeInt = 0
    initializing: NonNegativeInt = 0
    throttled: NonNegativeInt = 0
    unhealthy: NonNegativeInt = 0
    total: NonNegativeInt | None = None


class _V2Worker(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: str | None = None
    isStale: bool | None = None
    version: int | None = None


#: A v2 worker as the mapping uses it: (status, isStale, version).
_V2WorkerState = Annotated[
    tuple[str | None, bool | None, int | None],
    Reduced(_V2Worker, lambda w: (w.status, w.isStale, w.version)),
]


def _stale(
    worker: tuple[str | None, bool | None, int | None], endpoint_version: int | None
) -> bool:
    # isStale is RunPod's own verdict; a version other than the endpoint's says the same,
    # should isStale be missing or lag behind.
    _, is_stale, version = worker
    behind = None not in (version, endpoint_version) and version != endpoint_version
    return bool(is_stale) or behind


class _V2Workers(BaseModel):
    model_config = ConfigDict(extra="ignore")
    summary: _V2Summary | None = None
    workers: list[_V2WorkerState] | None = None
    endpointVersion: int | None = None

    @model_validator(mode="after")
    def _has_counts(self) -> _V2Workers:
        if self.summary is None and self.workers is None:
            raise ValueError("neither summary nor workers")
        return self

    def counts(self) -> _V2Summary:
        if self.summary is not None:
            return self.summary
        # No summary (older or trimmed answer): count the listed workers ourselves.
        listed = [(status or "").lower() for status, _, _ in self.workers or []]
        return _V2Summary(
            running=listed.count("running"),
            idle=listed.count("idle"),
            initializing=listed.count("initializing"),
            throttled=listed.count("throttled"),
            unhealthy=listed.count("unhealthy"),
            total=len(listed),
        )


def map_v2(endpoint: _V2Endpoint, workers: _V2Workers) -> Observation:
    c = workers.counts()
    ready = c.running + c.idle
    total = (
        c.total
        if c.total is not None
        else c.running + c.idle + c.initializing + c.throttled + c.unhealthy
    )
    scaling = endpoint.workers or _V2Scaling()
    provider_status = (
        f"running={c.running} idle={c.idle} initializing={c.initializing} "
        f"throttled={c.throttled} unhealthy={c.unhealthy}"
    )
    counts = Workers(ready=ready, total=total, min=scaling.min, max=scaling.max)
    if scaling.max == 0:
        return _max_workers_zero(provider_status, counts)
    error_code = error_message = None
    if ready >= 1:
        phase = Phase.DEGRADED if c.unhealthy >= 1 else Phase.RUNNING
    elif total == 0:
        phase = Phase.IDLE
    elif c.initializing + c.throttled >= 1:
        # Workers still coming up win over unhealthy ones: the endpoint may yet serve.
        phase = Phase.PROVISIONING
    elif c.unhealthy >= 1:
        phase = Phase.FAILED
        error_code = WORKERS_UNHEALTHY
        error_message = f"all {c.unhealthy} worker(s) are unhealthy"
    else:
        # `total` counts workers in a state the summary has no column for.
        phase = Phase.UNKNOWN
    listed = workers.workers or []
    stale = sum(1 for w in listed if _stale(w, workers.endpointVersion))
    rollout = progress = None
    if stale and phase in _ROLLING_PHASES:
        # Workers on an older endpoint configuration: RunPod is rolling an update out.
        phase = Phase.UPDATING
        updated = len(listed) - stale
        version = f" on version {workers.endpointVersion}" if workers.endpointVersion else ""
        rollout = f"rolling update: {updated}/{len(listed)} workers{version}"
        progress = 100 * updated // len(listed)
    return Observation(
        phase=phase,
        provider_status=provider_status,
        provider_phase=rollout,
        error_code=error_code,
        error_message=error_message,
        progress=progress,
        workers=counts,
    )


class _Jobs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inQueue: NonNegativeInt | None = None
    inProgress: NonNegativeInt | None = None
    failed: NonNegativeInt | None = None
    # `completed` and `retried` are left out on purpose: they grow with every job, so a busy
    # endpoint would be written every poll even with a steady queue.


class _Health(BaseModel):
    model_config = ConfigDict(extra="ignore")
    jobs: _Jobs


def map_health(body: _Health) -> Queue:
    jobs = body.jobs
    return Queue(in_queue=jobs.inQueue, in_progress=jobs.inProgress, failed=jobs.failed)


#: Phases a rollout turns into Updating. Failed (nothing but unhealthy workers) stays Failed: a
#: rollout whose workers all fail has failed, and saying so matters more than the progress.
_ROLLING_PHASES = frozenset({Phase.RUNNING, Phase.DEGRADED, Phase.PROVISIONING})


# --- adapter ---------------------------------------------------------------------------------


class RunPodProvider(Provider[RunPodConfig]):
    name = "runpod"
    display_name = "RunPod"
    config_model = RunPodConfig
    batches = True

    def account_key(self, config: RunPodConfig) -> Hashable:
        return (self.name, config.api, config.base_url())

    def endpoint_label(self, config: RunPodConfig) -> str:
        return config.endpoint_id

    async def observe(
        self, client: httpx.AsyncClient, targets: Sequence[Target[RunPodConfig]]
    ) -> Mapping[str, PollResult]:
        return await self.each_account(client, targets, self._observe_account)

    async def _observe_account(
        self, client: httpx.AsyncClient, targets: Sequence[Target[RunPodConfig]]
    ) -> dict[str, PollResult]:
        config = targets[0].config
        base = config.base_url()
        headers = _headers(targets[0])
        ids = list(dict.fromkeys(t.config.endpoint_id for t in targets))
        if config.api == "v1":
            by_id = await self._observe_v1(client, base, headers, ids)
        else:
            # Where to read each opted-in endpoint's queue. Two targets naming one endpoint
            # with different queue URLs would be odd; the last one wins.
            queues = {
                t.config.endpoint_id: t.config.queue_base_url()
                for t in targets
                if t.config.queue_metrics
            }
            by_id = await self._observe_v2(client, base, headers, ids, queues)
        return {t.key: _as_asked(by_id[t.config.endpoint_id], t.config) for t in targets}

    async def _observe_v1(
        self, client: httpx.AsyncClient, base: str, headers: Mapping[str, str], ids: list[str]
    ) -> dict[str, PollResult]:
        async def one(endpoint_id: str) -> PollResult:
            url = f"{base}/endpoints/{endpoint_id}"
            params = {"includeWorkers": "true"}
            return map_v1(await get_json(client, url, _V1Endpoint, headers=headers, params=params))

        wanted = set(ids)

        async def listing() -> tuple[dict[str, PollResult], ProviderError | None]:
            url = f"{base}/endpoints"
            params = {"includeWorkers": "true"}
            try:
                body = await get_json(
                    client,
                    url,
                    _V1List,
                    headers=headers,
                    params=params,
                    max_bytes=MAX_LISTING_BYTES,
                    context=ParseContext(wanted=wanted),
                )
            except ProviderError as err:
                return {}, err
            return {e.id: map_v1(e) for e in body.root}, None

        return await list_then_fetch(ids, listing, one, final=rate_limited)

    async def _observe_v2(
        self,
        client: httpx.AsyncClient,
        base: str,
        headers: Mapping[str, str],
        ids: list[str],
        queues: Mapping[str, str],
    ) -> dict[str, PollResult]:
        async def workers(endpoint: _V2Endpoint) -> PollResult:
            url = f"{base}/serverless/{endpoint.id}/workers"
            observed = map_v2(endpoint, await get_json(client, url, _V2Workers, headers=headers))
            queue_base = queues.get(endpoint.id)
            # A load balancer has no queue, and its health URL is a worker's /ping: asking
            # it would be traffic to the user's workers, keeping them warm and billed.
            if queue_base is None or endpoint.type == LOAD_BALANCER:
                return observed
            queue = await _queue_or_none(client, f"{queue_base}/{endpoint.id}/health", headers)
            return dataclasses.replace(observed, queue=queue)

        async def one(endpoint_id: str) -> PollResult:
            url = f"{base}/serverless/{endpoint_id}"
            endpoint = await get_json(client, url, _V2Endpoint, headers=headers)
            return await workers(endpoint)

        wanted = set(ids)

        async def listing() -> tuple[dict[str, PollResult], ProviderError | None]:
            try:
                body = await get_json(
                    client,
                    f"{base}/serverless",
                    _V2List,
                    headers=headers,
                    max_bytes=MAX_LISTING_BYTES,
                    context=ParseContext(wanted=wanted),
                )
            except ProviderError as err:
                return {}, err
            listed = {e.id: e for e in body.endpoints}
            # The list has no workers: each listed endpoint still costs its /workers request.
            answers = await concurrently([caught(workers(e)) for e in listed.values()])
            return dict(zip(listed, answers, strict=True)), None

        return await list_then_fetch(ids, listing, one, final=rate_limited)


async def _queue_or_none(
    client: httpx.AsyncClient, url: str, headers: Mapping[str, str]
) -> Queue | None:
    """The queue is a nice-to-have, as FriendliAI's details are: a /health call that fails in
    any way leaves the observation without it, it never fails the poll."""
    try:
        return map_health(await get_json(client, url, _Health, headers=headers))
    except ProviderError:
        return None


def _as_asked(result: PollResult, config: RunPodConfig) -> PollResult:
    # Targets naming one endpoint share its requests; only those that opted in get its queue
    # (the others would be written with every change of it).
    if isinstance(result, Observation) and result.queue is not None and not config.queue_metrics:
        return dataclasses.replace(result, queue=None)
    return result


def _headers(target: Target[RunPodConfig]) -> dict[str, str]:
    if target.credential is None:
        return {}
    return {"Authorization": f"Bearer {target.credential}"}


PROVIDER = RunPodProvider()
