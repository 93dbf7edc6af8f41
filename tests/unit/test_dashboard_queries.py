"""The dashboard's per-endpoint queries evaluated by Prometheus' own engine (`promtool test rules`)
on series shaped as kube-state-metrics makes them from the shipped config: the joins give each
not-Ready endpoint its provider and phase, and the provider variable filters them. Needs promtool
(built from its Go module into ~/.cache/inferenceops/prometheus/, or $PROMTOOL); skipped without.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.binaries import prometheus_binaries
from tests.unit.test_dashboard import DASHBOARD, _generator

KSM = {
    "customresource_group": "inferenceops.io",
    "customresource_kind": "InferenceEndpoint",
    "customresource_version": "v1alpha1",
    "job": "kube-state-metrics",
}


def _promtool() -> str:
    """Built by tests/monitoring/build.sh when missing, as the alert tests do: never a skip."""
    return prometheus_binaries()[1]


def _series(metric: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted({**KSM, **labels}.items()))
    return f"{metric}{{{inner}}}"


def _endpoint(ns: str, name: str, provider: str, phase: str, **conditions: str) -> list[str]:
    """The series of one endpoint; conditions: type -> "status/reason"."""
    out = [
        _series(
            "inferenceops_endpoint_info", namespace=ns, name=name, provider=provider, phase=phase
        )
    ]
    for kind, value in conditions.items():
        status, reason = value.split("/")
        out.append(
            _series(
                "inferenceops_endpoint_condition",
                namespace=ns,
                name=name,
                condition=kind,
                status=status,
                reason=reason,
            )
        )
    return out


ENDPOINTS = [
    *_endpoint("a", "llama", "friendli", "Running", Ready="True/Running", Synced="True/Polled"),
    *_endpoint("a", "sdxl", "runpod", "Failed", Ready="False/Failed", Stalled="True/Failed"),
    *_endpoint("b", "chat", "dataArtsFabric", "Running", Ready="Unknown/ObservationStale"),
]


def _queries(**variables: str) -> dict[str, str]:
    generator = _generator()
    doc = json.loads(DASHBOARD.read_text())
    out = {}
    for title, expr in generator.panel_queries(doc):
        for name, value in {"$__rate_interval": "1m", **variables}.items():
            expr = expr.replace(name, value)
        out.setdefault(title, expr)
    return out


def _sample(value: float, **labels: str) -> dict[str, Any]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"labels": f"{{{inner}}}" if labels else "{}", "value": value}


def _check(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    promtool = _promtool()
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    spec = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": "1x10"} for s in ENDPOINTS],
                "promql_expr_test": tests,
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = subprocess.run(
        [promtool, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fleet_counts_and_the_not_ready_table(tmp_path: Path) -> None:
    q = _queries(**{"$namespace": ".*", "$provider": ".*"})
    at = "5m"
    _check(
        tmp_path,
        [
            {"expr": q["Endpoints"], "eval_time": at, "exp_samples": [_sample(3)]},
            {"expr": q["Not Ready"], "eval_time": at, "exp_samples": [_sample(2)]},
            {"expr": q["Stalled"], "eval_time": at, "exp_samples": [_sample(1)]},
            {"expr": q["Status stale"], "eval_time": at, "exp_samples": [_sample(1)]},
            {
                "expr": q["Endpoints not Ready"],
                "eval_time": at,
                "exp_samples": [
                    _sample(
                        1,
                        namespace="a",
                        name="sdxl",
                        provider="runpod",
                        phase="Failed",
                        status="False",
                        reason="Failed",
                    ),
                    _sample(
                        1,
                        namespace="b",
                        name="chat",
                        provider="dataArtsFabric",
                        phase="Running",
                        status="Unknown",
                        reason="ObservationStale",
                    ),
                ],
            },
            {
                "expr": q["Endpoints by phase"],
                "eval_time": at,
                "exp_samples": [_sample(1, phase="Failed"), _sample(2, phase="Running")],
            },
        ],
    )


def test_the_namespace_and_provider_variables_filter(tmp_path: Path) -> None:
    q = _queries(**{"$namespace": "a", "$provider": "friendli|runpod"})
    at = "5m"
    _check(
        tmp_path,
        [
            {"expr": q["Endpoints"], "eval_time": at, "exp_samples": [_sample(2)]},
            {"expr": q["Not Ready"], "eval_time": at, "exp_samples": [_sample(1)]},
            {"expr": q["Status stale"], "eval_time": at, "exp_samples": [_sample(0)]},
            {
                "expr": q["Not Ready by provider"],
                "eval_time": at,
                "exp_samples": [_sample(1, provider="runpod")],
            },
        ],
    )


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool check rules parses each query (variables set to all) as a recording rule."""
    promtool = _promtool()
    generator = _generator()
    exprs = [
        generator.with_everything(e)
        for _, e in generator.panel_queries(json.loads(DASHBOARD.read_text()))
    ]
    assert len(exprs) >= 30
    rules = [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    proc = subprocess.run(
        [promtool, "check", "rules", "queries.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules)} rules found" in proc.stdout
