"""The Grafana fleet dashboard (charts/inferenceops/dashboards/inferenceops-fleet.json): it is what
tools/dashboard.py generates, and every panel queries only the agreed metric names (the operator's
and the kube-state-metrics config's), so a renamed metric fails here and not as an empty panel."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "inferenceops" / "dashboards" / "inferenceops-fleet.json"

#: The metric names of /work/wt/CONTRACT_S3.md, as Prometheus stores them (counters with _total).
OPERATOR = {
    "inferenceops_polls_total",
    "inferenceops_provider_requests_total",
    "inferenceops_status_writes_total",
    "inferenceops_events_total",
    "inferenceops_endpoints",
    "inferenceops_account_requests_total",
    "inferenceops_account_pauses_total",
    "inferenceops_account_paused_seconds_total",
    "inferenceops_account_budget_utilization",
    "inferenceops_account_auth_failures_total",
    "inferenceops_polls_in_flight",
    "inferenceops_watch_last_event_timestamp_seconds",
    "inferenceops_members",
    "inferenceops_endpoints_owned",
    "inferenceops_handovers_total",
    "inferenceops_lease_renew_failures_total",
    "inferenceops_lease_held",
}
HISTOGRAMS = {
    "inferenceops_provider_request_seconds",
    "inferenceops_scheduler_lag_seconds",
    "inferenceops_change_to_write_seconds",
}
KUBE_STATE_METRICS = {
    "inferenceops_endpoint_info",
    "inferenceops_endpoint_condition",
    "inferenceops_endpoint_workers_ready",
    "inferenceops_endpoint_workers_total",
    "inferenceops_endpoint_last_transition_timestamp_seconds",
}
CONTRACT = (
    OPERATOR
    | KUBE_STATE_METRICS
    | {f"{h}_{suffix}" for h in HISTOGRAMS for suffix in ("bucket", "sum", "count")}
)

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan",
}  # fmt: skip
# What is not a metric name: label matchers, label lists after by/on/…, strings and durations.
_NOT_NAMES = re.compile(
    r'\{[^}]*\}|"(?:[^"\\]|\\.)*"|\[[^\]]*\]'
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (identifiers that are not functions,
    keywords, label names or numbers)."""
    names = set()
    for m in _IDENT.finditer(_NOT_NAMES.sub(" ", expr)):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "inferenceops_dashboard", REPO / "tools" / "dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _doc() -> dict[str, Any]:
    doc = json.loads(DASHBOARD.read_text())
    assert isinstance(doc, dict)
    return doc


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc["panels"] if p["type"] != "row"]


def test_the_committed_json_is_the_generators_output() -> None:
    assert DASHBOARD.read_text() == _generator().render(), "stale: run make dashboards"


def test_metric_names_finds_every_name_and_nothing_else() -> None:
    expr = (
        'count(a_total{x="b_total", y=~"$v"} * on (namespace, name) group_left (phase) '
        "max by (namespace) (c_info)) or vector(0) + histogram_quantile(0.99, sum by (le) "
        "(rate(d_bucket[$__rate_interval]))) - time() > bool 1e3 "
        'and label_replace(e, "f", "$1", "g", "(.*)")'
    )
    assert metric_names(expr) == {"a_total", "c_info", "d_bucket", "e"}


def test_every_panel_queries_only_contract_metrics() -> None:
    doc = _doc()
    panels = _panels(doc)
    assert len(panels) >= 20
    for panel in panels:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, f"panel {panel['title']!r} has no query"
        for expr in exprs:
            names = metric_names(expr)
            assert names, (panel["title"], expr)
            assert names <= CONTRACT, (panel["title"], names - CONTRACT)


def test_every_part_of_the_brief_has_a_panel() -> None:
    """Fleet by phase and provider, the not-Ready table, per-account requests, 429 pauses and
    paused seconds, auth failures, budget, poll lag, status writes, watch freshness, members."""
    used = {n for _, e in _generator().panel_queries(_doc()) for n in metric_names(e)}
    wanted = KUBE_STATE_METRICS - {"inferenceops_endpoint_last_transition_timestamp_seconds"}
    wanted |= OPERATOR - {"inferenceops_events_total"}
    wanted |= {"inferenceops_scheduler_lag_seconds_bucket"}
    assert wanted <= used, wanted - used
    tables = [p for p in _panels(_doc()) if p["type"] == "table"]
    assert any("not Ready" in p["title"] for p in tables)


def test_variables_and_datasources() -> None:
    doc = _doc()
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "provider"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    expected = {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(doc):
        assert panel["datasource"] == expected, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert all(refs) and len(set(refs)) == len(refs), (panel["title"], refs)
        for target in panel["targets"]:
            assert target["datasource"] == expected
            # the operator's own series carry no endpoint namespace: only KSM ones filter by it
            if "$namespace" in target["expr"]:
                assert metric_names(target["expr"]) & KUBE_STATE_METRICS, target["expr"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("variable", ["$namespace", "$provider", "$__rate_interval"])
def test_queries_for_prometheus_replace_every_variable(variable: str) -> None:
    generator = _generator()
    exprs = [generator.with_everything(e) for _, e in generator.panel_queries(_doc())]
    assert not [e for e in exprs if variable in e or "$" in e]
