"""The kube-state-metrics CustomResourceStateMetrics config the chart ships
(charts/inferenceops/kube-state-metrics/inferenceops-endpoints.yaml): the metric names KSM makes of
it are the agreed ones, and every path it reads exists in the InferenceEndpoint CRD's schema, so a
renamed status field fails here rather than as a silently empty dashboard."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferenceops.api.crd import GROUP, KIND, PLURAL, VERSION

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "charts" / "inferenceops" / "kube-state-metrics" / "inferenceops-endpoints.yaml"
CRD = REPO / "crds" / "inferenceops.io_inferenceendpoints.yaml"

#: Metric -> the labels it must carry (names agreed with the dashboard and the alert rules).
CONTRACT = {
    "inferenceops_endpoint_info": {"namespace", "name", "provider", "phase"},
    "inferenceops_endpoint_condition": {"namespace", "name", "condition", "status"},
    "inferenceops_endpoint_workers_ready": {"namespace", "name"},
    "inferenceops_endpoint_workers_total": {"namespace", "name"},
    "inferenceops_endpoint_last_transition_timestamp_seconds": {"namespace", "name", "condition"},
}


def _resource() -> dict[str, Any]:
    doc = yaml.safe_load(CONFIG.read_text())
    assert doc["kind"] == "CustomResourceStateMetrics"
    (resource,) = doc["spec"]["resources"]
    return dict(resource)


def _full_name(resource: Mapping[str, Any], metric: Mapping[str, Any]) -> str:
    # KSM's fullName(): the prefix and the metric's name joined by "_", the prefix left out
    # when empty; without metricNamePrefix it is "kube_customresource".
    prefix = resource.get("metricNamePrefix", "kube_customresource")
    return "_".join(p for p in (prefix, metric["name"]) if p)


def _config(metric: Mapping[str, Any]) -> dict[str, Any]:
    each = metric["each"]
    return dict(each[each["type"][0].lower() + each["type"][1:]])


def _schema_at(schema: Mapping[str, Any], path: list[str], where: str) -> Mapping[str, Any]:
    node = schema
    for i, part in enumerate(path):
        if node.get("type") == "array":
            node = node["items"]
        props = node.get("properties")
        if props is None and node.get("type") == "object" and path[:1] == ["metadata"]:
            # ObjectMeta is not spelt out in a CRD's schema; namespace and name always exist.
            assert path in (["metadata", "namespace"], ["metadata", "name"]), (where, path)
            return {"type": "string"}
        assert props is not None and part in props, f"{where}: {path[: i + 1]} not in the CRD"
        node = props[part]
    return node


def _paths(resource: Mapping[str, Any]) -> Iterator[tuple[str, list[str], str]]:
    """(where, absolute path, what KSM reads there) for every path in the config."""
    for label, path in resource.get("labelsFromPath", {}).items():
        yield f"resource label {label}", list(path), "label"
    for metric in resource["metrics"]:
        config = _config(metric)
        base = list(config.get("path", []))
        value_at_base = metric["each"]["type"] == "Gauge" and "valueFrom" not in config
        if base and not value_at_base:
            yield f"{metric['name']} path", base, "path"
        for label, path in config.get("labelsFromPath", {}).items():
            yield f"{metric['name']} label {label}", base + list(path), "label"
        if "valueFrom" in config:
            yield f"{metric['name']} valueFrom", base + list(config["valueFrom"]), "value"
        elif value_at_base:
            yield f"{metric['name']} value", base, "value"


def test_the_config_is_for_the_inferenceendpoint_kind() -> None:
    resource = _resource()
    assert resource["groupVersionKind"] == {"group": GROUP, "version": VERSION, "kind": KIND}
    assert resource["resourcePlural"] == PLURAL


def test_metric_names_and_labels_are_the_agreed_ones() -> None:
    resource = _resource()
    common = set(resource.get("labelsFromPath", {}))
    made = {
        _full_name(resource, m): common | set(_config(m).get("labelsFromPath", {}))
        for m in resource["metrics"]
    }
    assert set(made) == set(CONTRACT)
    for name, labels in CONTRACT.items():
        assert labels <= made[name], (name, made[name])


def test_conditions_are_one_series_each_with_value_1() -> None:
    """condition is an Info over status.conditions (value 1, one series per condition), with the
    reason: ObservationStale is a reason of Ready=Unknown, not a condition type of its own."""
    resource = _resource()
    (metric,) = [m for m in resource["metrics"] if m["name"] == "condition"]
    assert metric["each"]["type"] == "Info"
    config = _config(metric)
    assert config["path"] == ["status", "conditions"]
    assert config["labelsFromPath"] == {
        "condition": ["type"],
        "status": ["status"],
        "reason": ["reason"],
    }


@pytest.mark.parametrize("crd_file", [CRD, REPO / "charts" / "inferenceops" / "crds" / CRD.name])
def test_every_path_exists_in_the_crd_schema(crd_file: Path) -> None:
    crd = yaml.safe_load(crd_file.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == VERSION]
    schema = version["schema"]["openAPIV3Schema"]
    seen = 0
    for where, path, reads in _paths(_resource()):
        node = _schema_at(schema, path, where)
        if reads == "value":
            # a number, or an RFC 3339 time KSM turns into a unix timestamp
            assert node.get("type") == "integer" or node.get("format") == "date-time", (where, node)
        elif reads == "path":
            assert node.get("type") in ("array", "object"), (where, node)
        else:
            assert node.get("type") == "string", (where, node)
        seen += 1
    assert seen >= 10


def test_the_schema_walk_refuses_a_renamed_field() -> None:
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    with pytest.raises(AssertionError, match="not in the CRD"):
        _schema_at(schema, ["status", "workers", "readyCount"], "test")
    with pytest.raises(AssertionError, match="not in the CRD"):
        _schema_at(schema, ["status", "conditions", "lastTransition"], "test")


def test_the_chart_template_reads_this_file() -> None:
    """Rendered on and off with helm: tests/integration/test_helm.py."""
    template = REPO / "charts" / "inferenceops" / "templates" / "kube-state-metrics.yaml"
    assert '.Files.Get "kube-state-metrics/inferenceops-endpoints.yaml"' in template.read_text()
