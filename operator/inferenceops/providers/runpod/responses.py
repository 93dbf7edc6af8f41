"""RunPod's response bodies as the mapping reads them: v1's endpoint, v2's endpoint and workers,
the listings of both, and the /health queue counts (only the fields the mapping uses)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, NonNegativeInt, OnErrorOmit, RootModel, model_validator

from ..wire import Reduced, wanted_entry

__all__ = [
    "Health",
    "Listed",
    "ListedV1",
    "ListedV2",
    "V1Endpoint",
    "V1List",
    "V2Endpoint",
    "V2List",
    "V2Scaling",
    "V2Workers",
]

# --- v1 --------------------------------------------------------------------------------------


class _V1Worker(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # Plain str: RUNNING, EXITED, TERMINATED today, whatever tomorrow.
    desiredStatus: str | None = None


#: A v1 worker as the mapping uses it: its desiredStatus (None when it has none).
_V1WorkerStatus = Annotated[str | None, Reduced(_V1Worker, lambda w: w.desiredStatus)]


class V1Endpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    # Absent when the endpoint has no workers as well as empty: both mean none are listed.
    workers: list[_V1WorkerStatus] | None = None
    workersMin: NonNegativeInt | None = None
    workersMax: NonNegativeInt | None = None


class V1List(RootModel[list[Annotated[OnErrorOmit[V1Endpoint], wanted_entry(lambda e: e.id)]]]):
    """An entry the model rejects is left out, so only that endpoint goes to the per-endpoint
    fallback (which says what is wrong with it) instead of the whole list being thrown away;
    so is every entry of an endpoint not asked about, as it is parsed (`wanted_entry`).
    Typed here rather than entry by entry: pydantic-core parses the body straight into the
    models, several times faster than JSON to dicts to models for a list of thousands."""


# --- v2 --------------------------------------------------------------------------------------


class V2Scaling(BaseModel):
    model_config = ConfigDict(extra="ignore")
    min: NonNegativeInt | None = None
    max: NonNegativeInt | None = None


class V2Endpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    # QUEUE or LOAD_BALANCER; plain str, so a new type does not fail the poll.
    type: str | None = None
    workers: V2Scaling | None = None


class V2List(BaseModel):
    model_config = ConfigDict(extra="ignore")
    # As in V1List: a rejected entry is left out for the per-endpoint fallback, and so is the
    # entry of an endpoint not asked about.
    endpoints: list[Annotated[OnErrorOmit[V2Endpoint], wanted_entry(lambda e: e.id)]]


class Listed(BaseModel):
    """An entry of either version's listing as an import reads it: its id and name."""

    model_config = ConfigDict(extra="ignore")
    id: str
    name: str | None = None


class ListedV1(RootModel[list[OnErrorOmit[Listed]]]):
    pass


class ListedV2(BaseModel):
    model_config = ConfigDict(extra="ignore")
    endpoints: list[OnErrorOmit[Listed]]


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


class V2Workers(BaseModel):
    model_config = ConfigDict(extra="ignore")
    summary: _V2Summary | None = None
    workers: list[_V2WorkerState] | None = None
    endpointVersion: int | None = None

    @model_validator(mode="after")
    def _has_counts(self) -> V2Workers:
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


class _Jobs(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inQueue: NonNegativeInt | None = None
    inProgress: NonNegativeInt | None = None
    failed: NonNegativeInt | None = None
    # `completed` and `retried` are left out on purpose: they grow with every job, so a busy
    # endpoint would be written every poll even with a steady queue.


class Health(BaseModel):
    model_config = ConfigDict(extra="ignore")
    jobs: _Jobs
