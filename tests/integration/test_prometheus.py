"""A real Prometheus (built from its Go module, tests/monitoring/build.sh) scrapes the running
operator every second while the emulator walks endpoints through a lifecycle (Initializing,
Running, Failed, Unauthorized, 429); then every alert expression of the chart's rules and every
query of every dashboard under charts/inferenceops/dashboards/ is evaluated through its HTTP API,
and each must return the series it should.

The per-endpoint series (`inferenceops_endpoint_*`) come from kube-state-metrics in a cluster. It
is not built by default (tests/monitoring/build.sh, BUILD_KSM=1): here a small exposition served
by the test, refreshed from the same objects, carries the same metric names and labels
(docs/monitoring.md, "What is proven how")."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from inferenceops_emulator.process import stop_process
from tests.monitoring.binaries import DASHBOARDS, RULES, prometheus_binaries

from .conftest import EmulatorClient, OperatorProcess, free_port, wait_until

SCRAPE = "1s"


# --- the kube-state-metrics stand-in ---------------------------------------------------------


def endpoint_series(items: list[dict[str, Any]]) -> str:
    """The chart's CustomResourceState metrics for `items`, as kube-state-metrics names them."""
    lines = []
    for obj in items:
        meta, status = obj["metadata"], obj.get("status") or {}
        ident = f'namespace="{meta["namespace"]}",name="{meta["name"]}"'
        provider = status.get("provider", "")
        phase = status.get("phase", "")
        lines.append(
            f'inferenceops_endpoint_info{{{ident},provider="{provider}",phase="{phase}"}} 1'
        )
        for cond in status.get("conditions") or []:
            kind = cond["type"]
            lines.append(
                f'inferenceops_endpoint_condition{{{ident},condition="{kind}",'
                f'status="{cond["status"]}",reason="{cond.get("reason", "")}"}} 1'
            )
            if at := cond.get("lastTransitionTime"):
                stamp = time.mktime(time.strptime(at, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
                lines.append(
                    "inferenceops_endpoint_last_transition_timestamp_seconds"
                    f'{{{ident},condition="{kind}"}} {stamp}'
                )
        workers = status.get("workers") or {}
        for field in ("ready", "total"):
            if workers.get(field) is not None:
                lines.append(f"inferenceops_endpoint_workers_{field}{{{ident}}} {workers[field]}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def endpoint_exposition(control_plane: Any, namespace: str) -> Iterator[int]:
    """Serve `endpoint_series` of the namespace's endpoints on 127.0.0.1, refreshed each second;
    yields the port."""
    text = [""]
    stop = threading.Event()

    def refresh() -> None:
        while not stop.is_set():
            out = control_plane.kubectl("get", "ie", "-n", namespace, "-o", "json", check=False)
            if out.returncode == 0:
                text[0] = endpoint_series(json.loads(out.stdout)["items"])
            stop.wait(1.0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = text[0].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threads = [threading.Thread(target=refresh), threading.Thread(target=server.serve_forever)]
    for thread in threads:
        thread.start()
    try:
        yield server.server_address[1]
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        for thread in threads:
            thread.join(10)


# --- Prometheus ------------------------------------------------------------------------------


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", f"{expr}: {answer}"
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def labels(self, expr: str) -> list[dict[str, str]]:
        return [r["metric"] for r in self.query(expr)]


@contextlib.contextmanager
def prometheus(targets: dict[str, int], tmp: Path) -> Iterator[Prometheus]:
    """Prometheus on 127.0.0.1 scraping each job's port every second, with the chart's rules."""
    binary, _ = prometheus_binaries()
    config = {
        "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in targets.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (tmp / "prometheus.log").open("w") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until("Prometheus ready", lambda: httpx.get(f"{url}/-/ready").status_code == 200, 60)
        yield Prometheus(url)
    finally:
        stop_process(proc)


# --- what each alert expression must return here ---------------------------------------------

#: Alert -> (expected to return series now, the labels each series must carry). Alerts that must
#: be quiet on a healthy operator are checked with their threshold removed (`quiet_data`): the
#: expression reads real series, it just does not cross the line.
ALERTS_FIRING = {
    "InferenceEndpointNotReady": {"namespace", "name"},
    "InferenceEndpointStalled": {"namespace", "name"},
    "InferenceEndpointStatusStale": {"namespace", "name"},
    "InferenceProviderAccountUnauthorized": {"provider", "account"},
    "InferenceProviderAccountRateLimited": {"provider", "account"},
}
QUIET_DATA = {
    "InferenceOpsNotScraped": 'up{job=~".*inferenceops.*"} == 1',
    "InferenceOpsNotPolling": "sum(rate(inferenceops_polls_total[5m])) > 0",
    "InferenceOpsPollLagHigh": "histogram_quantile(0.99, sum by (job, instance, le) "
    "(rate(inferenceops_scheduler_lag_seconds_bucket[5m])))",
    "InferenceOpsWatchStale": "time() - inferenceops_watch_last_event_timestamp_seconds",
}
ACCOUNT = re.compile(r"^(inline-[0-9a-f]{12}|cluster/[a-z0-9.-]+|[a-z0-9-]+/[a-z0-9.-]+)$")


def alert_rules() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"] if "alert" in r}


def dashboard_queries() -> list[tuple[str, str]]:
    """(file, expr) of every target of every dashboard, Grafana's variables filled in."""
    found: list[tuple[str, str]] = []

    def walk(node: Any, source: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str) and node["expr"].strip():
                found.append((source, node["expr"]))
            for value in node.values():
                walk(value, source)
        elif isinstance(node, list):
            for value in node:
                walk(value, source)

    for path in sorted(DASHBOARDS.glob("*.json")) if DASHBOARDS.is_dir() else []:
        walk(json.loads(path.read_text()), path.name)
    return found


def grafana_to_promql(expr: str) -> str:
    expr = re.sub(r"\$__(rate_)?interval|\$__range", "5m", expr)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(:[a-z]+)?\}?", ".*", expr)


# --- the test --------------------------------------------------------------------------------


def apply(control_plane: Any, namespace: str, name: str, block: dict[str, Any]) -> None:
    manifest = {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"pollInterval": "5s", **block},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def phase_of(control_plane: Any, namespace: str, name: str) -> str:
    out = control_plane.kubectl("get", "ie", name, "-n", namespace, "-o", "json")
    return str((json.loads(out.stdout).get("status") or {}).get("phase", ""))


def test_alerts_and_dashboards_on_a_real_prometheus(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    base = emulator.base_url
    creds = {"name": "creds", "key": "token"}
    control_plane.kubectl(
        "create", "secret", "generic", "revoked", "-n", ns, "--from-literal=token=not-the-token"
    )
    friendli = {"url": f"{base}/friendli", "credentialsSecretRef": creds}
    emulator.put("friendli", "mon-run", status="INITIALIZING", phase="DOWNLOADING_MODEL")
    emulator.put("friendli", "mon-fail", status="INITIALIZING", phase="DOWNLOADING_MODEL")
    emulator.put("friendli", "mon-revoked", status="RUNNING", curr_replicas=1, desired_replicas=1)
    emulator.put("nsModelServer", "mon-busy", stage="READY", progress=100)
    apply(control_plane, ns, "run", {"friendli": {**friendli, "endpointId": "mon-run"}})
    apply(control_plane, ns, "fail", {"friendli": {**friendli, "endpointId": "mon-fail"}})
    apply(
        control_plane,
        ns,
        "revoked",
        {
            "friendli": {
                **friendli,
                "endpointId": "mon-revoked",
                "credentialsSecretRef": {"name": "revoked", "key": "token"},
            }
        },
    )
    apply(control_plane, ns, "busy", {"nsModelServer": {"url": f"{base}/ns/mon-busy"}})
    fault = None
    with (
        tempfile.TemporaryDirectory(prefix="prometheus-") as tmp,
        endpoint_exposition(control_plane, ns) as ksm_port,
        prometheus(
            {"inferenceops": operator.metrics_port, "kube-state-metrics": ksm_port}, Path(tmp)
        ) as prom,
    ):
        try:
            wait_until("Initializing", lambda: phase_of(control_plane, ns, "run") == "Provisioning")
            wait_until("busy Running", lambda: phase_of(control_plane, ns, "busy") == "Running")
            # Scraped at 0 before the 429: a counter's first sample is no increase.
            wait_until(
                "the nsModelServer account's pauses scraped at 0",
                lambda: prom.query(
                    'inferenceops_account_paused_seconds_total{provider="nsModelServer"} == 0'
                ),
            )
            emulator.put(
                "friendli", "mon-run", status="RUNNING", curr_replicas=1, desired_replicas=1
            )
            emulator.put(
                "friendli", "mon-fail", status="FAILED", error_code="WORKLOAD_INIT_DOWNLOAD_ERROR"
            )
            # One 429 that pauses the account for the longest a provider may ask (300 s).
            fault = emulator.fail("nsModelServer", 429, endpoint="mon-busy", retry_after=300)
            wait_until("Running", lambda: phase_of(control_plane, ns, "run") == "Running")
            wait_until("Failed", lambda: phase_of(control_plane, ns, "fail") == "Failed")

            rules = alert_rules()
            assert set(rules) == set(ALERTS_FIRING) | set(QUIET_DATA), (
                "a new alert needs a case here"
            )

            def firing_all() -> bool:
                missing = [a for a in ALERTS_FIRING if not prom.query(rules[a])]
                if missing:
                    raise AssertionError(f"no series yet: {missing}")
                return True

            # Long enough for rate() over every alert's window to see two samples and more.
            wait_until("every alert expression that must return series", firing_all, 60, every=1)
            for alert, labels in ALERTS_FIRING.items():
                for series in prom.labels(rules[alert]):
                    assert labels <= set(series), f"{alert}: {series}"
                    if "account" in series:
                        assert ACCOUNT.match(series["account"]), series
            names = {s["name"] for s in prom.labels(rules["InferenceEndpointStalled"])}
            assert {"fail", "revoked"} <= names
            assert {"fail"} <= {s["name"] for s in prom.labels(rules["InferenceEndpointNotReady"])}
            assert "run" not in {s["name"] for s in prom.labels(rules["InferenceEndpointNotReady"])}
            unauthorized = prom.labels(rules["InferenceProviderAccountUnauthorized"])
            assert [s["provider"] for s in unauthorized] == ["friendli"], unauthorized
            limited = prom.labels(rules["InferenceProviderAccountRateLimited"])
            assert [s["provider"] for s in limited] == ["nsModelServer"], limited

            for alert, data in QUIET_DATA.items():
                assert prom.query(rules[alert]) == [], f"{alert} fires on a healthy operator"
                assert prom.query(data), f"{alert}: no data behind it: {data}"
            resources = {s["resource"] for s in prom.labels(QUIET_DATA["InferenceOpsWatchStale"])}
            assert {"inferenceendpoints", "secrets", "namespaces"} <= resources

            # Prometheus itself evaluated every rule without an error.
            groups = httpx.get(f"{prom.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
            health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
            assert set(health) == set(rules) and set(health.values()) == {"ok"}, health

            empty = []
            for source, expr in dashboard_queries():
                if not prom.query(grafana_to_promql(expr)):
                    empty.append(f"{source}: {expr}")
            assert not empty, "dashboard queries with no data:\n" + "\n".join(empty)
        finally:
            if fault is not None:
                emulator.remove_fault(fault)
