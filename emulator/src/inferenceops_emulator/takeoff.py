"""Takeoff management API, one named instance per server: `GET {base}/takeoff/{instance}/status`.

Assumptions where the docs are silent:
- `last_heartbeat` maps every reader id (live, loading and dead) to its heartbeat; timestamps
  are Unix seconds. Live and loading readers beat "now" at response time; a dead reader keeps the
  time it was declared dead (60 s before the put unless given), so staleness is visible.
- `heartbeat_wait_interval` equals the config's `heartbeat_check_interval` (1 s by default).
- Errors (503 when unavailable, 404 for an instance never put) are plain text: the docs give no
  error body, and an unknown instance stands for a server that is not there.
"""

from __future__ import annotations

import time
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

_META = ("instance",)
_READER_KEYS = {
    "reader_id",
    "model_name",
    "consumer_groups",
    "consumer_name",
    "device",
    "model_type",
    "pids",
    "heartbeat",
}

DEFAULT_CONFIG: dict[str, Any] = {
    "allow_remote_images": False,
    "body_size_limit_bytes": 2097152,
    "echo": False,
    "enable_metrics": True,
    "heartbeat_check_interval": 1,
    "internal_port": 3005,
    "management_port": 3001,
    "openai_port": 3003,
    "port": 3000,
    "reader_message_timeout_ms": 500,
    "repository_path": "/code/models",
    "reserved_consumers": "primary",
    "snowflake_port": 3004,
    "vertex_port": 3002,
}


@dataclass
class TakeoffReader:
    reader_id: str
    model_name: str
    consumer_groups: list[str]
    consumer_name: str
    device: str
    model_type: str
    pids: list[int]
    # Unix seconds of the last heartbeat; None means "beating now".
    heartbeat: int | None

    def info(self) -> dict[str, Any]:
        return {
            "consumer_groups": list(self.consumer_groups),
            "consumer_name": self.consumer_name,
            "device": self.device,
            "model_name": self.model_name,
            "model_type": self.model_type,
            "pids": list(self.pids),
        }

    def as_spec(self) -> dict[str, Any]:
        return {
            "reader_id": self.reader_id,
            "model_name": self.model_name,
            "consumer_groups": list(self.consumer_groups),
            "consumer_name": self.consumer_name,
            "device": self.device,
            "model_type": self.model_type,
            "pids": list(self.pids),
            "heartbeat": self.heartbeat,
        }


ReaderSpec = str | Mapping[str, Any]


@dataclass
class TakeoffInstance:
    instance: str
    live: list[TakeoffReader]
    loading: list[TakeoffReader]
    dead: list[TakeoffReader]
    null_status: bool
    unavailable: bool
    reserved_consumers: list[str]
    config: dict[str, Any]

    def status_json(self) -> dict[str, Any]:
        config = {**DEFAULT_CONFIG, **self.config}
        if self.null_status:
            return {"config": config, "status": None}
        now = int(time.time())
        interval = int(config.get("heartbeat_check_interval", 1))
        heartbeats = {
            r.reader_id: {
                "heartbeat_timestamp": now if r.heartbeat is None else r.heartbeat,
                "heartbeat_wait_interval": interval,
            }
            for r in (*self.live, *self.loading, *self.dead)
        }
        return {
            "config": config,
            "status": {
                "live_readers": {r.reader_id: r.info() for r in self.live},
                "loading_readers": {r.reader_id: r.info() for r in self.loading},
                "dead_readers": {r.reader_id: r.info() for r in self.dead},
                "last_heartbeat": heartbeats,
                "reserved_consumers": list(self.reserved_consumers),
            },
        }


class TakeoffStore(Store[TakeoffInstance]):
    provider = "takeoff"

    def put(
        self,
        instance: str,
        *,
        live: Sequence[ReaderSpec] = (),
        loading: Sequence[ReaderSpec] = (),
        dead: Sequence[ReaderSpec] = (),
        null_status: bool = False,
        unavailable: bool = False,
        reserved_consumers: Sequence[str] = ("primary",),
        config: Mapping[str, Any] | None = None,
    ) -> TakeoffInstance:
        """Create or replace an instance.

        A reader is a model name, or a mapping with `model_name` and optionally `reader_id`,
        `consumer_groups` (default ["primary"]), `consumer_name`, `device`, `model_type`, `pids`,
        `heartbeat` (Unix seconds). `null_status=True` serves `"status": null` (no readers yet);
        `unavailable=True` answers 503. `config` overrides fields of the default config.
        """
        counter = iter(range(1_000_000))
        taken: set[str] = set()
        # Ids given explicitly anywhere (a patch re-sends the existing readers with theirs) are
        # never handed out to a reader without one.
        explicit = {
            str(spec["reader_id"])
            for spec in (*live, *loading, *dead)
            if not isinstance(spec, str) and spec.get("reader_id")
        }
        dead_since = int(time.time()) - 60

        def build(specs: Sequence[ReaderSpec], is_dead: bool) -> list[TakeoffReader]:
            out = []
            for spec in specs:
                item: Mapping[str, Any] = {"model_name": spec} if isinstance(spec, str) else spec
                unknown = set(item) - _READER_KEYS
                if unknown or "model_name" not in item:
                    raise ValueError(f"bad reader spec {spec!r}")
                n = next(counter)
                while not item.get("reader_id") and f"reader-{n}" in explicit:
                    n = next(counter)
                reader_id = str(item.get("reader_id") or f"reader-{n}")
                if reader_id in taken:
                    raise ValueError(f"duplicate reader id {reader_id!r}")
                taken.add(reader_id)
                heartbeat = item.get("heartbeat")
                out.append(
                    TakeoffReader(
                        reader_id=reader_id,
                        model_name=str(item["model_name"]),
                        consumer_groups=str_list(item.get("consumer_groups", ["primary"])),
                        consumer_name=str(item.get("consumer_name", f"consumer-{reader_id}")),
                        device=str(item.get("device", "cuda")),
                        model_type=str(item.get("model_type", "CAUSAL")),
                        pids=[int(p) for p in item.get("pids", [1000 + n])],
                        heartbeat=(
                            int(heartbeat)
                            if heartbeat is not None
                            else (dead_since if is_dead else None)
                        ),
                    )
                )
            return out

        rec = TakeoffInstance(
            instance=str(instance),
            live=build(live, False),
            loading=build(loading, False),
            dead=build(dead, True),
            null_status=bool(null_status),
            unavailable=bool(unavailable),
            reserved_consumers=str_list(reserved_consumers),
            config=dict(config or {}),
        )
        return self._save(rec.instance, rec)

    def patch(self, instance: str, **changes: Any) -> TakeoffInstance:
        """Change only the given fields of an existing instance (KeyError if unknown)."""
        current = public_fields(self._items[instance], _META)
        for group in ("live", "loading", "dead"):
            current[group] = [r.as_spec() for r in current[group]]
        return self.put(instance, **{**current, **changes})


def routes(store: TakeoffStore) -> list[Route]:
    async def status(request: web.Request) -> Reply:
        rec = store.get(request.match_info["instance"])
        if rec is None:
            return text_error(request, 404, None)
        if rec.unavailable:
            return text_error(request, 503, None)
        return Reply(body=rec.status_json())

    return instance_routes("/takeoff", status)


EMULATION = Emulation(
    name="takeoff",
    key=("instance",),
    urls={"takeoff": "/takeoff/{instance}"},
    auth=None,
    error=text_error,
    new_store=TakeoffStore,
    routes=routes,
)
