"""Event correlation (kube/writer.py) against the real API server: repeats of a reason are counted
on one core/v1 Event by PATCH, and an Event deleted meanwhile (as its TTL does) is created again.
The unit tests (tests/unit/test_events.py) cover the timing on virtual time; this checks that
the API server accepts the writes and that `kubectl` shows the count."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import kopf
import yaml

from inferenceops.kube import client as kube_client
from inferenceops.kube.writer import ApiWriter
from inferenceops.metrics import Metrics
from inferenceops.status import EventSpec


@dataclass
class Ref:
    namespace: str
    name: str = "flappy"
    uid: str = "0d6c9d52-8a8c-4c8e-9a53-000000000001"


def _events(control_plane: Any, ns: str) -> list[dict[str, Any]]:
    out = control_plane.kubectl(
        "get", "events", "-n", ns, "-o", "json", "--field-selector=involvedObject.name=flappy"
    )
    return json.loads(out.stdout)["items"]  # type: ignore[no-any-return]


def _login(kubeconfig: str) -> kopf.ConnectionInfo:
    with open(kubeconfig) as f:
        config = yaml.safe_load(f)
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_data=cluster["certificate-authority-data"],
        certificate_data=user["client-certificate-data"],
        private_key_data=user["client-key-data"],
    )


async def test_repeats_are_counted_on_one_event(control_plane: Any, ns: str) -> None:
    api = kube_client.ApiSession(_login(control_plane.kubeconfig))
    writer = ApiWriter(api, Metrics(), event_window=1.0)
    ref = Ref(ns)
    try:
        for i in range(5):
            await writer.emit(ref, EventSpec("Warning", "Unreachable", f"try {i}"))
        (event,) = _events(control_plane, ns)
        assert event["count"] == 1, "repeats within the window are only counted"
        await asyncio.sleep(1.6)  # the flusher's quarter-window ticks pass the window
        (event,) = _events(control_plane, ns)
        assert (event["count"], event["message"]) == (5, "try 4")

        # Told in full a window ago: the next occurrence is a new Event.
        await asyncio.sleep(1.2)
        await writer.emit(ref, EventSpec("Warning", "Unreachable", "try 5"))
        assert len(_events(control_plane, ns)) == 2
        await writer.emit(ref, EventSpec("Warning", "Unreachable", "try 6"))
        control_plane.kubectl("delete", "events", "--all", "-n", ns)  # as the Event TTL does
        await asyncio.sleep(1.6)  # its PATCH finds it gone (404): created again, with its count
        (event,) = _events(control_plane, ns)
        assert (event["count"], event["message"]) == (2, "try 6")
        assert event["involvedObject"]["uid"] == ref.uid and event["type"] == "Warning"
    finally:
        await writer.aclose()
        await api.aclose()
