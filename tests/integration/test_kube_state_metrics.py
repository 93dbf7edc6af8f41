"""The chart's kube-state-metrics config run by a real kube-state-metrics against the local API
server: the series it makes of InferenceEndpoints are the agreed names and labels, with the
values their status holds. The binary: tests/integration/kube_state_metrics.py (built once from
its Go module; skipped, saying why, without Go)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.kube_state_metrics import kube_state_metrics

pytestmark = pytest.mark.integration

NS = "ksm-fleet"


def _endpoint(name: str, status: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    obj = {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"nsModelServer": {"url": f"https://{name}.example.invalid"}},
    }
    return obj, status


def _condition(kind: str, status: str, reason: str, at: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": at,
        "observedGeneration": 1,
    }


ENDPOINTS = [
    _endpoint(
        "running",
        {
            "phase": "Running",
            "provider": "nsModelServer",
            "workers": {"ready": 2, "total": 3},
            "conditions": [
                _condition("Ready", "True", "Running", "2026-01-02T03:04:05Z"),
                _condition("Synced", "True", "Polled", "2026-01-02T03:04:05Z"),
            ],
        },
    ),
    _endpoint(
        "stale",
        {
            "phase": "Failed",
            "provider": "nsModelServer",
            "conditions": [
                _condition("Ready", "Unknown", "ObservationStale", "2026-01-02T03:05:00Z"),
                _condition("Stalled", "True", "Failed", "2026-01-02T03:05:00Z"),
            ],
        },
    ),
]


@pytest.fixture
def endpoints(control_plane: Any, crds: None) -> Iterator[None]:
    control_plane.kubectl("create", "namespace", NS, check=False)
    for obj, status in ENDPOINTS:
        control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))
        control_plane.kubectl(
            "patch",
            "inferenceendpoint",
            obj["metadata"]["name"],
            "-n",
            NS,
            "--subresource=status",
            "--type=merge",
            "-p",
            yaml.safe_dump({"status": status}),
        )
    yield
    control_plane.kubectl("delete", "inferenceendpoints", "--all", "-n", NS, check=False)


@pytest.fixture
def scrape(control_plane: Any, endpoints: None, tmp_path: Path) -> Iterator[str]:
    log = tmp_path / "kube-state-metrics.log"
    # Its own namespace only: the session's control plane holds other tests' endpoints too.
    with kube_state_metrics(control_plane.kubeconfig, log, (NS,)) as url:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    text = response.read().decode()
            except OSError:
                text = ""
            if text.count("inferenceops_endpoint_info{") >= len(ENDPOINTS):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"no series after 60 s: {log.read_text()[-3000:]}")
        yield text


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample whose name starts with inferenceops_."""
    out = []
    for line in text.splitlines():
        if not line.startswith("inferenceops_"):
            continue
        head, value = line.rsplit(" ", 1)
        name, _, rest = head.partition("{")
        labels = {}
        for part in rest.rstrip("}").split('",'):
            if part:
                key, _, val = part.partition('="')
                labels[key] = val.rstrip('"')
        out.append((name, labels, float(value)))
    return out


def _find(samples: list[tuple[str, dict[str, str], float]], metric: str, **labels: str) -> float:
    found = [v for n, ls, v in samples if n == metric and labels.items() <= ls.items()]
    assert len(found) == 1, (metric, labels, [s for s in samples if s[0] == metric])
    return found[0]


def test_kube_state_metrics_makes_the_agreed_series(scrape: str) -> None:
    samples = _samples(scrape)
    names = {n for n, _, _ in samples}
    assert names == {
        "inferenceops_endpoint_info",
        "inferenceops_endpoint_condition",
        "inferenceops_endpoint_workers_ready",
        "inferenceops_endpoint_workers_total",
        "inferenceops_endpoint_last_transition_timestamp_seconds",
    }, scrape[-3000:]
    ksm = {
        "customresource_group": "inferenceops.io",
        "customresource_kind": "InferenceEndpoint",
        "customresource_version": "v1alpha1",
    }
    for name, labels, _ in samples:
        assert ksm.items() <= labels.items(), (name, labels)
        assert labels["namespace"] == NS and labels["name"] in ("running", "stale"), labels

    info = "inferenceops_endpoint_info"
    assert _find(samples, info, name="running", provider="nsModelServer", phase="Running") == 1
    assert _find(samples, info, name="stale", provider="nsModelServer", phase="Failed") == 1

    cond = "inferenceops_endpoint_condition"
    assert _find(samples, cond, name="running", condition="Ready", status="True") == 1
    assert _find(samples, cond, name="running", condition="Synced", status="True") == 1
    stale = {"condition": "Ready", "status": "Unknown", "reason": "ObservationStale"}
    assert _find(samples, cond, name="stale", **stale) == 1
    assert _find(samples, cond, name="stale", condition="Stalled", status="True") == 1

    assert _find(samples, "inferenceops_endpoint_workers_ready", name="running") == 2
    assert _find(samples, "inferenceops_endpoint_workers_total", name="running") == 3
    # no worker counts in the status: no series (not a 0 that would read as "scaled to zero")
    assert not [s for s in samples if "workers" in s[0] and s[1]["name"] == "stale"]

    since = "inferenceops_endpoint_last_transition_timestamp_seconds"
    assert _find(samples, since, name="running", condition="Ready") == 1767323045
    assert _find(samples, since, name="stale", condition="Stalled") == 1767323100
