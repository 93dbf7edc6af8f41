"""DataArts Fabric's listing body as the mapping reads it: a page of endpoint entries, each the
model or, when the model rejects it, the raw object (only the fields the mapping uses)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ..wire import Reduced, wanted_entry

__all__ = ["Endpoint", "ListResponse", "Tolerant", "id_of"]


class Tolerant(BaseModel):
    # The 403 example in the docs has a numeric `error_code`; accept numbers wherever a string is.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class _ResourceDef(Tolerant):
    warm_up_num: int | None = None
    max_num: int | None = None


class _ReservedResource(Tolerant):
    apu: _ResourceDef | None = None
    dpu: _ResourceDef | None = None


class _WorkerGroup(Tolerant):
    min_replicas: int | None = None
    max_replicas: int | None = None


#: (min_replicas, max_replicas) of a worker group: all the mapping reads of it.
_Bounds = Annotated[
    tuple[int | None, int | None], Reduced(_WorkerGroup, lambda g: (g.min_replicas, g.max_replicas))
]


class _RayResource(Tolerant):
    worker_group_spec: list[_Bounds] | None = None


class Endpoint(Tolerant):
    id: str
    #: Read by an import only (`list_endpoints`).
    name: str | None = None
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
    Endpoint | dict[str, Any],
    Field(union_mode="left_to_right"),
    wanted_entry(lambda entry: id_of(entry)),
]


class ListResponse(Tolerant):
    total: int | None = None
    endpoints: list[_Entry]


def id_of(entry: Endpoint | dict[str, Any]) -> object:
    return entry.id if isinstance(entry, Endpoint) else entry.get("id")
