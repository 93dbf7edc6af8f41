"""NS model server, one named instance per server: `GET {base}/ns/{instance}/status`.

`/status` is HTTP 200 whatever the stage, FAILED included (as documented). Assumptions:
- When not given, `progress` follows the stage (GETTING_RESOURCES 10, STARTING 25,
  LOADING_MODEL 50, BUILDING_API 80, READY/FAILED 100) and `messages` are the chronological
  messages the doc's examples show up to that stage.
- `errors` appears only when there are errors; FAILED without explicit errors gets one
  `UNKNOWN` error so the document matches the doc's failure example.
- An instance never put answers a plain-text 404 (no server there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._core import (
    Emulation,
    Reply,
    Route,
    Store,
    instance_routes,
    public_fields,
    str_list,
    text_error,
)

_PROGRESS = {
    "GETTING_RESOURCES": 10,
    "STARTING": 25,
    "LOADING_MODEL": 50,
    "BUILDING_API": 80,
    "READY": 100,
    "FAILED": 100,
}
_MESSAGES = {
    "GETTING_RESOURCES": ["Loading resources..."],
    "STARTING": ["Loading resources...", "Starting services..."],
    "LOADING_MODEL": ["Loading resources...", "Reading model..."],
    "BUILDING_API": [
        "Loading resources...",
        "Reading model...",
        "Model loaded!",
        "Creating model endpoints...",
    ],
    "READY": [
        "Loading resources...",
        "Reading model...",
        "Model loaded!",
        "Creating model endpoints...",
        "Model ready",
    ],
    "FAILED": ["Loading resources...", "Reading model...", "Failed to load model"],
}
_META = ("instance",)
ErrorSpec = str | Mapping[str, Any]


@dataclass
class NsInstance:
    instance: str
    stage: str
    progress: int | None
    messages: list[str] | None
    errors: list[dict[str, str]] | None
    version: str

    def status_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stage": self.stage,
            "progress": self.progress
            if self.progress is not None
            else _PROGRESS.get(self.stage, 0),
            "messages": list(
                self.messages if self.messages is not None else _MESSAGES.get(self.stage, [])
            ),
        }
        errors = self.errors
        if errors is None and self.stage == "FAILED":
            errors = [
                {
                    "errorType": "UNKNOWN",
                    "cause": "Unexpected error during startup",
                    "detail": "Unexpected error during startup",
                }
            ]
        if errors:
            data["errors"] = [dict(e) for e in errors]
        return {"data": data, "server": {"version": self.version}}


def _error(spec: ErrorSpec) -> dict[str, str]:
    if isinstance(spec, str):
        return {"errorType": "UNKNOWN", "cause": spec, "detail": spec}
    unknown = set(spec) - {"errorType", "cause", "detail"}
    if unknown:
        raise ValueError(f"bad error spec {spec!r}")
    cause = str(spec.get("cause", "error"))
    return {
        "errorType": str(spec.get("errorType", "UNKNOWN")),
        "cause": cause,
        "detail": str(spec.get("detail", cause)),
    }


class NsStore(Store[NsInstance]):
    provider = "nsModelServer"

    def put(
        self,
        instance: str,
        *,
        stage: str = "READY",
        progress: int | None = None,
        messages: Sequence[str] | None = None,
        errors: Sequence[ErrorSpec] | None = None,
        version: str = "1.10.1",
    ) -> NsInstance:
        """Create or replace an instance; `errors` items are a message or
        `{errorType, cause, detail}`. `progress`/`messages` left None follow the stage."""
        rec = NsInstance(
            instance=str(instance),
            stage=str(stage),
            progress=None if progress is None else int(progress),
            messages=None if messages is None else str_list(messages),
            errors=None if errors is None else [_error(e) for e in errors],
            version=str(version),
        )
        return self._save(rec.instance, rec)

    def patch(self, instance: str, **changes: Any) -> NsInstance:
        """Change only the given fields of an existing instance (KeyError if unknown)."""
        current = public_fields(self._items[instance], _META)
        return self.put(instance, **{**current, **changes})


def routes(store: NsStore) -> list[Route]:
    async def status(request: web.Request) -> Reply:
        rec = store.get(request.match_info["instance"])
        if rec is None:
            return text_error(request, 404, None)
        return Reply(body=rec.status_json())

    return instance_routes("/ns", status)


EMULATION = Emulation(
    name="nsModelServer",
    key=("instance",),
    urls={"nsModelServer": "/ns/{instance}"},
    auth=None,
    error=text_error,
    new_store=NsStore,
    routes=routes,
)
