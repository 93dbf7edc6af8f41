"""The Grafana fleet dashboard as code: `make dashboards` (or `python tools/dashboard.py`) writes
charts/inferenceops/dashboards/inferenceops-fleet.json, which the chart ships as a ConfigMap.

Built with grafana-foundation-sdk (pinned in pyproject's dev extra: the committed JSON is its
output, and tests/unit/test_dashboard.py fails when the two drift apart). Every query uses only
the metric names of the operator (operator/inferenceops/metrics.py) and of the kube-state-metrics
config next to the dashboard (charts/inferenceops/kube-state-metrics/); docs/dashboards.md.

`--check` exits 1 when the committed file is stale; `--queries` prints every panel's expression
with the dashboard variables replaced by "everything" (`.*`, `1m`), ready for Prometheus' API.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as viz
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "charts" / "inferenceops" / "dashboards" / "inferenceops-fleet.json"
UID = "inferenceops-fleet"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

# KSM's series carry the endpoint's namespace; the operator's own do not (a `namespace` label on
# them is the operator pod's, added by the scrape), so only the per-endpoint panels filter by it.
ENDPOINT = 'namespace=~"$namespace"'
PROVIDER = 'provider=~"$provider"'
# Restricts a per-endpoint series to the chosen providers and adds provider/phase: max by() so a
# second kube-state-metrics replica scraping the same objects cannot make the match many-to-many.
WITH_INFO = (
    " * on (namespace, name) group_left (provider, phase) max by (namespace, name, provider, phase)"
    f" (inferenceops_endpoint_info{{{ENDPOINT}, {PROVIDER}}})"
)
RATE = "$__rate_interval"

#: What `--queries` puts in place of each variable: every value, the shortest sensible window.
EVERYTHING = {"$namespace": ".*", "$provider": ".*", RATE: "1m"}


def query(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant().format(PromQueryFormat.TABLE)
    return q


def series(
    title: str, description: str, *queries: prometheus.Dataquery, unit: str = "short", w: int = 8
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(8)
        .fill_opacity(10)
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(viz.LegendDisplayMode.TABLE)
            .placement(viz.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
    )
    for ref, q in zip("ABCDEFGH", queries, strict=False):
        panel = panel.with_target(q.ref_id(ref))
    return panel


def single(
    title: str, description: str, expr: str, *, unit: str = "short", red_above: float | None = None
) -> stat.Panel:
    thresholds = dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE)
    steps = [model.Threshold(color="green")]
    if red_above is not None:
        steps.append(model.Threshold(value=red_above, color="red"))
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr).ref_id("A"))
        .unit(unit)
        .span(4)
        .height(4)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds.steps(steps))
        .color_mode(viz.BigValueColorMode.BACKGROUND)
        .graph_mode(viz.BigValueGraphMode.NONE)
    )


def by_label(title: str, description: str, expr: str, legend: str) -> bargauge.Panel:
    return (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr, legend).ref_id("A"))
        .span(6)
        .height(8)
        .orientation(viz.VizOrientation.HORIZONTAL)
        .display_mode(viz.BarGaugeDisplayMode.BASIC)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def variables() -> list[Any]:
    def label_values(name: str, label: str, metric: str) -> dashboard.QueryVariable:
        return (
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(f"label_values({metric}, {name})")
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
        )

    return [
        dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        label_values("namespace", "Namespace", "inferenceops_endpoint_info"),
        label_values("provider", "Provider", "inferenceops_polls_total"),
    ]


def fleet_rows() -> Iterator[Any]:
    not_ready = f'inferenceops_endpoint_condition{{condition="Ready", status!="True", {ENDPOINT}}}'
    stalled = f'inferenceops_endpoint_condition{{condition="Stalled", status="True", {ENDPOINT}}}'
    yield dashboard.Row("Fleet (kube-state-metrics)")
    yield single(
        "Endpoints",
        "InferenceEndpoints seen by kube-state-metrics.",
        f"count(inferenceops_endpoint_info{{{ENDPOINT}, {PROVIDER}}}) or vector(0)",
    )
    yield single(
        "Not Ready",
        "Endpoints whose Ready condition is False or Unknown.",
        f"count({not_ready}{WITH_INFO}) or vector(0)",
        red_above=1,
    )
    yield single(
        "Stalled",
        "Endpoints that will not become Ready by waiting (Stalled=True).",
        f"count({stalled}{WITH_INFO}) or vector(0)",
        red_above=1,
    )
    yield single(
        "Status stale",
        "Endpoints with no successful poll for 3 intervals (Ready Unknown, ObservationStale).",
        'count(inferenceops_endpoint_condition{condition="Ready", reason="ObservationStale", '
        f"{ENDPOINT}}}{WITH_INFO}) or vector(0)",
        red_above=1,
    )
    yield single(
        "Workers ready",
        "Ready workers over all endpoints that report workers.",
        f"sum(inferenceops_endpoint_workers_ready{{{ENDPOINT}}}{WITH_INFO}) or vector(0)",
    )
    yield single(
        "Workers total",
        "All workers over all endpoints that report workers.",
        f"sum(inferenceops_endpoint_workers_total{{{ENDPOINT}}}{WITH_INFO}) or vector(0)",
    )
    yield by_label(
        "Endpoints by phase",
        "Phase of each endpoint (status.phase).",
        f"count by (phase) (inferenceops_endpoint_info{{{ENDPOINT}, {PROVIDER}}})",
        "{{phase}}",
    )
    yield by_label(
        "Endpoints by provider",
        "Provider of each endpoint (status.provider).",
        f"count by (provider) (inferenceops_endpoint_info{{{ENDPOINT}, {PROVIDER}}})",
        "{{provider}}",
    )
    yield (
        table.Panel()
        .title("Endpoints not Ready")
        .description(
            "Every endpoint whose Ready condition is not True, with its phase and the reason "
            "(kubectl describe ie -n NAMESPACE NAME for the message)."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                "max by (namespace, name, provider, phase, status, reason) "
                f"({not_ready}{WITH_INFO})",
                instant=True,
            ).ref_id("A")
        )
        .span(12)
        .height(8)
        .with_transformation(
            model.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "Value": True},
                    "indexByName": {
                        "namespace": 0,
                        "name": 1,
                        "provider": 2,
                        "phase": 3,
                        "status": 4,
                        "reason": 5,
                    },
                    "renameByName": {"status": "Ready", "reason": "reason"},
                },
            )
        )
    )
    yield series(
        "Not Ready by provider",
        "Endpoints whose Ready condition is not True, over time.",
        query(f"count by (provider) ({not_ready}{WITH_INFO})", "{{provider}}"),
        w=12,
    )


def by_account(function: str, metric: str) -> str:
    return f"sum by (provider, account) ({function}({metric}{{{PROVIDER}}}[{RATE}]))"


def quantile(q: float, histogram: str, by: str = "", selector: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{selector}[{RATE}])))"
    )


def account_rows() -> Iterator[Any]:
    yield dashboard.Row("Provider accounts")
    yield series(
        "Requests by account and code",
        "HTTP requests the operator sent per provider account, by status code.",
        query(
            "sum by (provider, account, code) "
            f"(rate(inferenceops_account_requests_total{{{PROVIDER}}}[{RATE}]))",
            "{{account}} {{code}}",
        ),
        unit="reqps",
        w=12,
    )
    yield series(
        "Budget in use",
        "Share of the account's requestsPerSecond used over the last minute.",
        query(
            f"max by (provider, account) (inferenceops_account_budget_utilization{{{PROVIDER}}})",
            "{{account}}",
        ),
        unit="percentunit",
        w=12,
    )
    yield series(
        "429 pauses",
        "Times an account paused its requests after a 429 (Too Many Requests).",
        query(by_account("increase", "inferenceops_account_pauses_total"), "{{account}}"),
    )
    yield series(
        "Time paused",
        "Share of the time each account spent paused by a 429.",
        query(by_account("rate", "inferenceops_account_paused_seconds_total"), "{{account}}"),
        unit="percentunit",
    )
    yield series(
        "Auth failures",
        "401/403 answers per account: a revoked or wrong credential (Synced=False, Unauthorized).",
        query(by_account("increase", "inferenceops_account_auth_failures_total"), "{{account}}"),
    )


def operator_rows() -> Iterator[Any]:
    provider = f"{{{PROVIDER}}}"
    yield dashboard.Row("Operator")
    yield series(
        "Polls by outcome",
        "Endpoint observations per second by provider and outcome (ok or the Synced reason).",
        query(
            f"sum by (provider, outcome) (rate(inferenceops_polls_total{provider}[{RATE}]))",
            "{{provider}} {{outcome}}",
        ),
        unit="ops",
    )
    yield series(
        "Provider requests by code",
        "HTTP requests per second to each provider, by status code.",
        query(
            "sum by (provider, code) "
            f"(rate(inferenceops_provider_requests_total{provider}[{RATE}]))",
            "{{provider}} {{code}}",
        ),
        unit="reqps",
    )
    yield series(
        "Provider request latency p99",
        "99th percentile of one provider request.",
        query(
            quantile(0.99, "inferenceops_provider_request_seconds", "provider", provider),
            "{{provider}}",
        ),
        unit="s",
    )
    yield series(
        "Poll lag",
        "How late polls start against their schedule.",
        query(quantile(0.99, "inferenceops_scheduler_lag_seconds"), "p99"),
        query(quantile(0.5, "inferenceops_scheduler_lag_seconds"), "p50"),
        unit="s",
    )
    yield series(
        "Polls in flight",
        "Polls waiting for their provider's answer, over all operator pods.",
        query("sum(inferenceops_polls_in_flight)", "in flight"),
    )
    yield series(
        "Change to status write p99",
        "From the provider's own change time to the status write (where the provider says it).",
        query(
            quantile(0.99, "inferenceops_change_to_write_seconds", "provider", provider),
            "{{provider}}",
        ),
        unit="s",
    )
    yield series(
        "Status writes",
        "Status patches per second by result.",
        query(f"sum by (result) (rate(inferenceops_status_writes_total[{RATE}]))", "{{result}}"),
        unit="wps",
    )
    yield series(
        "Watch freshness",
        "Seconds since each informer's last list page, watch event or bookmark (largest over "
        "the operator pods).",
        query(
            "time() - min by (resource) (inferenceops_watch_last_event_timestamp_seconds)",
            "{{resource}}",
        ),
        unit="s",
    )
    yield series(
        "Tracked endpoints by phase",
        "Endpoints the operator pods track, by phase (the operator's own gauge).",
        query("sum by (phase) (inferenceops_endpoints)", "{{phase}}"),
    )


def member_rows() -> Iterator[Any]:
    yield dashboard.Row("Members")
    yield series(
        "Members and Leases",
        "Live members each pod sees, and how many pods hold their Lease.",
        query("max(inferenceops_members)", "members seen"),
        query("sum(inferenceops_lease_held)", "leases held"),
    )
    yield series(
        "Endpoints owned per member",
        "Endpoints each operator pod polls; together they should cover the fleet once.",
        query("sum by (instance) (inferenceops_endpoints_owned)", "{{instance}}"),
    )
    yield series(
        "Handovers and Lease renew failures",
        "Endpoints gained or lost by members, and failed Lease renewals.",
        query(
            f"sum by (direction) (increase(inferenceops_handovers_total[{RATE}]))", "{{direction}}"
        ),
        query(
            f"sum(increase(inferenceops_lease_renew_failures_total[{RATE}]))",
            "Lease renew failures",
        ),
    )


def build() -> model.Dashboard:
    board = (
        dashboard.Dashboard("inferenceops fleet")
        .uid(UID)
        .description(
            "InferenceEndpoints (kube-state-metrics config shipped with the chart), provider "
            "accounts and the operator's health. Generated by tools/dashboard.py."
        )
        .tags(["inferenceops"])
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in variables():
        board = board.with_variable(variable)
    items = [*fleet_rows(), *account_rows(), *operator_rows(), *member_rows()]
    for number, item in enumerate(items, start=1):
        item = item.id(number)
        board = board.with_row(item) if isinstance(item, dashboard.Row) else board.with_panel(item)
    return board.build()


def render() -> str:
    return json.dumps(build(), sort_keys=True, indent=2, cls=JSONEncoder) + "\n"


def panel_queries(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expr) of every query in a dashboard document."""
    for panel in doc.get("panels", []):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
        yield from panel_queries(panel)


def with_everything(expr: str) -> str:
    for variable, value in EVERYTHING.items():
        expr = expr.replace(variable, value)
    return expr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is stale")
    p.add_argument("--queries", action="store_true", help="print every panel's query as JSON")
    args = p.parse_args(argv)
    text = render()
    if args.queries:
        queries = [
            {"panel": t, "expr": with_everything(e)} for t, e in panel_queries(json.loads(text))
        ]
        print(json.dumps(queries, indent=2))
        return 0
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run make dashboards", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
