"""The Helm chart (charts/inferenceops) against a real API server.

Uses the session fixture ``control_plane`` (tests/conftest.py): a local kube-apiserver + etcd,
or the current kubeconfig's cluster with USE_EXISTING_CLUSTER=1 (kind: docs/e2e.md).

- `helm lint` (also `--strict`) with several value sets,
- `helm template` with several value sets, each applied with `kubectl apply --dry-run=server`,
- the values schema rejecting bad values,
- `helm install`, then RBAC checked with `kubectl auth can-i --as=<the operator's SA>`.

The bare API server has no controllers: Deployments get no Pods, namespaces never finish
deleting. Every test therefore uses its own namespaces (random suffix) and leaves them behind.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.binaries import prometheus_binaries

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inferenceops"
RELEASE = "iops"
FULLNAME = "iops-inferenceops"
GROUP = "inferenceops.io"
IE = f"inferenceendpoints.{GROUP}"
SM_KIND = "ServiceMonitor"
LEASES = "leases.coordination.k8s.io"
# The last commit whose chart had `sharding` (a StatefulSet with --shard-index/--shard-count):
# upgrades from it must work.
SHARDED_CHART_COMMIT = "48f0eef6293710b427fa1ad701395c417e0e78ed"
CLUSTER_SCOPED = (
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _suffix() -> str:
    return secrets.token_hex(3)


def _ensure_namespace(cp: Any, name: str) -> None:
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )


def _values_args(tmp_path: Path, values: dict[str, Any] | None) -> list[str]:
    if not values:
        return []
    f = tmp_path / f"values-{_suffix()}.yaml"
    f.write_text(yaml.safe_dump(values))
    return ["--values", str(f)]


def _template(
    cp: Any,
    tmp_path: Path,
    namespace: str,
    values: dict[str, Any] | None = None,
    *extra: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    return cp.helm(
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        *_values_args(tmp_path, values),
        *extra,
        check=check,
    )


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = _by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def _dry_run_apply(cp: Any, docs: list[dict[str, Any]]) -> str:
    """Server-side dry-run apply; returns kubectl's output (one line per object)."""
    out = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs)).stdout
    assert out.count("(server dry run)") == len(docs), out
    return out


def _not_leases(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Roles/RoleBindings other than the membership Lease ones (always in the release
    namespace)."""
    return [o for o in objects if not o["metadata"]["name"].endswith("-leases")]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _can_i(
    cp: Any,
    sa: str,
    verb: str,
    resource: str,
    *,
    namespace: str | None,
    subresource: str | None = None,
) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={sa}"]
    args += ["--all-namespaces"] if namespace is None else ["--namespace", namespace]
    if subresource:
        args.append(f"--subresource={subresource}")
    proc = cp.kubectl(*args, check=False)
    answer = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert answer in ("yes", "no"), f"kubectl {' '.join(args)}: {proc.stdout!r} {proc.stderr!r}"
    return answer == "yes"


@pytest.fixture
def ns(control_plane: Any) -> str:
    """A fresh release namespace."""
    name = f"helm-{_suffix()}"
    _ensure_namespace(control_plane, name)
    return name


# ---------------------------------------------------------------------------------------------
# lint
# ---------------------------------------------------------------------------------------------

LINT_VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "watch-namespaces": {"watchNamespaces": ["a", "b"]},
    "service-monitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "p"}}}
    },
    "replicas": {"replicaCount": 3, "topologySpread": {"whenUnsatisfiable": "DoNotSchedule"}},
    "dashboard-and-kube-state-metrics": {
        "grafanaDashboard": {"enabled": True},
        "kubeStateMetrics": {
            "customResourceState": {"enabled": True, "serviceAccountName": "kube-state-metrics"}
        },
    },
    "no-metrics-no-rbac": {
        "metrics": {"enabled": False},
        "rbac": {"create": False},
        "serviceAccount": {"create": False, "name": "existing"},
    },
}


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
@pytest.mark.parametrize("values", LINT_VALUE_SETS.values(), ids=LINT_VALUE_SETS.keys())
def test_helm_lint(
    control_plane: Any, tmp_path: Path, values: dict[str, Any], strict: bool
) -> None:
    args = ["lint", str(CHART), *_values_args(tmp_path, values)]
    if strict:
        args.append("--strict")
    out = control_plane.helm(*args).stdout
    assert "0 chart(s) failed" in out, out


# ---------------------------------------------------------------------------------------------
# template + server-side dry run
# ---------------------------------------------------------------------------------------------


def test_defaults(control_plane: Any, tmp_path: Path, ns: str) -> None:
    docs = _docs(_template(control_plane, tmp_path, ns, None, "--include-crds").stdout)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",  # InferenceEndpoint
            "CustomResourceDefinition",  # InferenceProvider
            "CustomResourceDefinition",  # ClusterInferenceProvider
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "Deployment",
            "PodDisruptionBudget",  # replicaCount 2
            "Role",  # leases, in the release namespace
            "RoleBinding",
            *["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * 3,
        ]
    ), kinds
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            assert d["metadata"]["namespace"] == ns, d["metadata"]

    scopes = {
        d["metadata"]["name"]: d["spec"]["scope"]
        for d in _by_kind(docs, "CustomResourceDefinition")
    }
    assert scopes == {
        IE: "Namespaced",
        "inferenceproviders.inferenceops.io": "Namespaced",
        "clusterinferenceproviders.inferenceops.io": "Cluster",
    }

    dep = _one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    c = _container(dep)
    assert c["image"] == "inferenceops:0.1.0"
    assert c["args"] == [
        "run",
        "--log-format=json",
        "--log-level=info",
        "--health-port=8081",
        "--metrics-port=9090",
        f"--group={FULLNAME}",
        "--lease-duration=15",
        f"--cluster-secret-namespace={ns}",  # clusterSecretNamespaces: the release namespace
    ]
    assert "command" not in c  # the image's ENTRYPOINT is `inferenceops`
    # security
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # resources: requests, memory limit, no CPU limit
    assert c["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "256Mi"},
    }
    # probes on the health port
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8081, "metrics": 9090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    # writable /tmp only
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    assert pod["serviceAccountName"] == FULLNAME
    # selector labels are on the pods
    assert (
        dep["spec"]["selector"]["matchLabels"].items()
        <= dep["spec"]["template"]["metadata"]["labels"].items()
    )

    svc = _one(docs, "Service")
    assert svc["metadata"]["name"] == f"{FULLNAME}-metrics"
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]

    cr = _one(docs, "ClusterRole")
    groups = {g for rule in cr["rules"] for g in rule["apiGroups"]}
    assert groups == {GROUP, "", "events.k8s.io", "apiextensions.k8s.io"}
    crb = _one(docs, "ClusterRoleBinding")
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": ns}]
    assert crb["roleRef"]["name"] == cr["metadata"]["name"]
    _assert_replicas(docs, ns, 2)

    _dry_run_apply(control_plane, docs)


SPREAD_KEYS = ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]


def _assert_replicas(docs: list[dict[str, Any]], ns: str, replicas: int) -> None:
    """What N pods sharing the work need: a rolling update that adds a pod before removing one,
    the downward-API env naming the member and its Lease namespace, the Lease Role, a PDB (N > 1)
    and the default spread over nodes and zones."""
    dep = _one(docs, "Deployment")
    assert dep["spec"]["replicas"] == replicas
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = dep["spec"]["template"]["spec"]
    # Longer than a hand-over: stop polling, finish in-flight requests (request deadline 15 s
    # by default), delete the Lease.
    assert pod["terminationGracePeriodSeconds"] == 60
    c = _container(dep)
    assert f"--group={FULLNAME}" in c["args"]
    env = {e["name"]: e.get("valueFrom") for e in c["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}
    assert not [a for a in c["args"] if a.startswith("--shard")]
    assert "INFERENCEOPS_SHARD_INDEX" not in env
    selector = dep["spec"]["selector"]["matchLabels"]
    spread = pod["topologySpreadConstraints"]
    assert [t["topologyKey"] for t in spread] == SPREAD_KEYS
    for t in spread:
        assert t["labelSelector"] == {"matchLabels": selector}
        assert t["maxSkew"] == 1 and t["matchLabelKeys"] == ["pod-template-hash"]

    (role,) = [r for r in _by_kind(docs, "Role") if r["metadata"]["name"] == f"{FULLNAME}-leases"]
    assert role["metadata"]["namespace"] == ns
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ]
    (binding,) = [
        b for b in _by_kind(docs, "RoleBinding") if b["metadata"]["name"] == f"{FULLNAME}-leases"
    ]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": ns}]

    pdbs = _by_kind(docs, "PodDisruptionBudget")
    if replicas > 1:
        (pdb,) = pdbs
        assert pdb["metadata"]["namespace"] == ns
        assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    else:
        assert not pdbs  # one pod (or none): a PDB with maxUnavailable 1 would mean nothing


def test_watch_namespaces(control_plane: Any, tmp_path: Path, ns: str) -> None:
    a, b = f"{ns}-a", f"{ns}-b"
    for n in (a, b):
        _ensure_namespace(control_plane, n)
    docs = _docs(_template(control_plane, tmp_path, ns, {"watchNamespaces": [a, b]}).stdout)

    args = _container(_one(docs, "Deployment"))["args"]
    assert [x for x in args if x.startswith("--namespace")] == [
        f"--namespace={a}",
        f"--namespace={b}",
    ]

    roles = _not_leases(_by_kind(docs, "Role"))
    # a and b (watched), and the release namespace: ClusterInferenceProviders' Secrets, only.
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted([a, b, ns])
    (secrets_only,) = [r for r in roles if r["metadata"]["namespace"] == ns]
    assert secrets_only["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
    ]
    assert f"--cluster-secret-namespace={ns}" in args
    bindings = _not_leases(_by_kind(docs, "RoleBinding"))
    assert sorted(r["metadata"]["namespace"] for r in bindings) == sorted([a, b, ns])
    for rb in bindings:
        assert rb["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": ns}]
    # the only cluster-wide rules left are CRD and namespace discovery, and the cluster-scoped
    # ClusterInferenceProviders (read, and their status written)
    cr = _one(docs, "ClusterRole")
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in cr["rules"]}
    assert sorted(rules) == [
        (("",), ("namespaces",)),
        (("apiextensions.k8s.io",), ("customresourcedefinitions",)),
        (("inferenceops.io",), ("clusterinferenceproviders",)),
        (("inferenceops.io",), ("clusterinferenceproviders/status",)),
    ]
    for resources, verbs in rules.items():
        expected = (
            ["get", "patch"] if resources[1][0].endswith("/status") else ["get", "list", "watch"]
        )
        assert sorted(verbs) == expected, resources

    _dry_run_apply(control_plane, docs)


def test_metrics_and_service_monitor(control_plane: Any, tmp_path: Path, ns: str) -> None:
    values = {
        "metrics": {
            "port": 9100,
            "service": {"port": 8443, "annotations": {"a": "b"}},
            "serviceMonitor": {
                "enabled": True,
                "interval": "15s",
                "scrapeTimeout": "10s",
                "labels": {"release": "prometheus"},
            },
        }
    }
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)

    sm = _one(docs, SM_KIND)
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [ns]}
    svc = _one(docs, "Service")
    # the ServiceMonitor selects the metrics Service
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["metadata"]["annotations"] == {"a": "b"}
    assert svc["spec"]["ports"][0]["port"] == 8443
    c = _container(_one(docs, "Deployment"))
    assert "--metrics-port=9100" in c["args"]
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in c["ports"]

    # The bare API server has no monitoring.coreos.com CRDs: dry-run everything else.
    _dry_run_apply(control_plane, [d for d in docs if d["kind"] != SM_KIND])


def test_prometheus_rule(control_plane: Any, tmp_path: Path, ns: str) -> None:
    assert not _by_kind(_docs(_template(control_plane, tmp_path, ns).stdout), "PrometheusRule")
    values = {
        "prometheusRule": {
            "enabled": True,
            "labels": {"release": "prometheus"},
            "additionalLabels": {"team": "ml"},
            "for": {"InferenceEndpointNotReady": "30m"},
            "runbookBaseUrl": "https://docs.example.test/monitoring.md",
        }
    }
    rule = _one(_docs(_template(control_plane, tmp_path, ns, values).stdout), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    shipped = yaml.safe_load((CHART / "rules" / "inferenceops.rules.yaml").read_text())
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    originals = {r["alert"]: r for g in shipped["groups"] for r in g["rules"]}
    assert alerts.keys() == originals.keys()
    for name, alert in alerts.items():
        assert alert["expr"] == originals[name]["expr"]
        assert alert["labels"] == {**originals[name]["labels"], "team": "ml"}
        assert alert["annotations"]["runbook_url"] == (
            f"https://docs.example.test/monitoring.md#{name.lower()}"
        )
        expected_for = "30m" if name == "InferenceEndpointNotReady" else originals[name]["for"]
        assert alert["for"] == expected_for
    # What the PrometheusRule carries is still valid for Prometheus.
    groups = tmp_path / "rendered.rules.yaml"
    groups.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    promtool = prometheus_binaries()[1]
    checked = subprocess.run(
        [promtool, "check", "rules", str(groups)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    typo = {"prometheusRule": {"enabled": True, "for": {"InferenceEndpointNotReddy": "5m"}}}
    refused = _template(control_plane, tmp_path, ns, typo, check=False)
    assert refused.returncode != 0
    assert "prometheusRule.for.InferenceEndpointNotReddy: no such alert" in refused.stderr


def test_metrics_disabled(control_plane: Any, tmp_path: Path, ns: str) -> None:
    docs = _docs(_template(control_plane, tmp_path, ns, {"metrics": {"enabled": False}}).stdout)
    assert not _by_kind(docs, "Service")
    c = _container(_one(docs, "Deployment"))
    assert [p["name"] for p in c["ports"]] == ["health"]
    assert "--metrics-port=0" in c["args"]  # 0: the operator opens no metrics port
    bad = _template(
        control_plane,
        tmp_path,
        ns,
        {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
        check=False,
    )
    assert bad.returncode != 0 and "metrics.enabled" in bad.stderr, bad.stderr


def test_dashboard_and_kube_state_metrics_config(
    control_plane: Any, tmp_path: Path, ns: str
) -> None:
    """Off by default (test_defaults lists every object); on, each is a ConfigMap holding the
    committed file unchanged, in the namespace asked for, with the sidecar's label."""
    monitoring = f"monitoring-{_suffix()}"
    _ensure_namespace(control_plane, monitoring)
    values = {
        "grafanaDashboard": {
            "enabled": True,
            "namespace": monitoring,
            "labels": {"grafana_dashboard": "1", "team": "platform"},
            "annotations": {"grafana_folder": "inferenceops"},
        },
        "kubeStateMetrics": {
            "customResourceState": {
                "enabled": True,
                "namespace": monitoring,
                "serviceAccountName": "kube-state-metrics",
            }
        },
    }
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    maps = {d["metadata"]["name"]: d for d in _by_kind(docs, "ConfigMap")}
    assert set(maps) == {f"{FULLNAME}-dashboards", f"{FULLNAME}-kube-state-metrics"}

    board = maps[f"{FULLNAME}-dashboards"]
    assert board["metadata"]["namespace"] == monitoring
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["labels"]["team"] == "platform"
    assert board["metadata"]["annotations"] == {"grafana_folder": "inferenceops"}
    committed = (CHART / "dashboards" / "inferenceops-fleet.json").read_text()
    assert json.loads(board["data"]["inferenceops-fleet.json"]) == json.loads(committed)

    ksm = maps[f"{FULLNAME}-kube-state-metrics"]
    assert ksm["metadata"]["namespace"] == monitoring
    shipped = (CHART / "kube-state-metrics" / "inferenceops-endpoints.yaml").read_text()
    assert yaml.safe_load(ksm["data"]["config.yaml"]) == yaml.safe_load(shipped)
    roles = [
        d
        for d in _by_kind(docs, "ClusterRole")
        if d["metadata"]["name"].endswith("-kube-state-metrics")
    ]
    assert len(roles) == 1
    assert {(r["apiGroups"][0], r["resources"][0]): r["verbs"] for r in roles[0]["rules"]} == {
        (GROUP, "inferenceendpoints"): ["list", "watch"],
        ("apiextensions.k8s.io", "customresourcedefinitions"): ["list", "watch"],
    }
    (binding,) = [
        d
        for d in _by_kind(docs, "ClusterRoleBinding")
        if d["metadata"]["name"] == roles[0]["metadata"]["name"]
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kube-state-metrics", "namespace": monitoring}
    ]
    _dry_run_apply(control_plane, docs)

    # Without serviceAccountName the chart grants kube-state-metrics nothing.
    values["kubeStateMetrics"]["customResourceState"]["serviceAccountName"] = ""
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    assert not [
        d
        for d in docs
        if d["metadata"]["name"].endswith("-kube-state-metrics") and d["kind"] != "ConfigMap"
    ]


def test_replicas_pdb_and_spread(control_plane: Any, tmp_path: Path, ns: str) -> None:
    docs = _docs(_template(control_plane, tmp_path, ns, {"replicaCount": 3}).stdout)
    assert not _by_kind(docs, "StatefulSet")
    _assert_replicas(docs, ns, 3)
    _dry_run_apply(control_plane, docs)

    for replicas in (1, 0):  # 0: installed but stopped
        docs = _docs(_template(control_plane, tmp_path, ns, {"replicaCount": replicas}).stdout)
        _assert_replicas(docs, ns, replicas)
    off = {"replicaCount": 3, "podDisruptionBudget": {"enabled": False}}
    assert not _by_kind(
        _docs(_template(control_plane, tmp_path, ns, off).stdout), "PodDisruptionBudget"
    )

    # The spread: required instead of preferred, other keys, none, or the user's own list.
    values: dict[str, Any] = {
        "topologySpread": {"whenUnsatisfiable": "DoNotSchedule", "topologyKeys": ["rack"]},
        "leaseDuration": 30,
        "podDisruptionBudget": {"maxUnavailable": "50%"},
    }
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    dep = _one(docs, "Deployment")
    (spread,) = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == ("rack", "DoNotSchedule")
    assert "--lease-duration=30" in _container(dep)["args"]
    assert _one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == "50%"
    _dry_run_apply(control_plane, docs)
    none = {"topologySpread": {"topologyKeys": []}}
    dep = _one(_docs(_template(control_plane, tmp_path, ns, none).stdout), "Deployment")
    assert "topologySpreadConstraints" not in dep["spec"]["template"]["spec"]
    own = [{"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]
    values = {"topologySpreadConstraints": own}
    dep = _one(_docs(_template(control_plane, tmp_path, ns, values).stdout), "Deployment")
    assert dep["spec"]["template"]["spec"]["topologySpreadConstraints"] == own


def test_the_removed_sharding_values_are_refused_saying_what_to_set(
    control_plane: Any, tmp_path: Path, ns: str
) -> None:
    """The StatefulSet is gone; old values naming `sharding` fail with one line saying to set
    replicaCount (the schema accepts the key only so that this message, not a generic
    "additional property", is what the user reads)."""
    for values in ({"sharding": {"enabled": True, "replicas": 3}}, {"sharding": {}}):
        bad = _template(control_plane, tmp_path, ns, values, check=False)
        assert bad.returncode != 0, bad.stdout
        assert "sharding was removed" in bad.stderr and "replicaCount" in bad.stderr, bad.stderr


def test_scheduling_env_and_image(control_plane: Any, tmp_path: Path, ns: str) -> None:
    digest = "sha256:" + "ab" * 32
    values = {
        "image": {
            "repository": "registry.example/inferenceops",
            "tag": "1.2.3",
            "digest": digest,
            "pullPolicy": "Always",
        },
        "imagePullSecrets": [{"name": "regcred"}],
        "logFormat": "text",
        "logLevel": "debug",
        "extraEnv": [
            {"name": "FOO", "value": "bar"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ],
        "extraArgs": ["--some-flag=1"],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/arch",
                                    "operator": "In",
                                    "values": ["amd64", "arm64"],
                                }
                            ]
                        }
                    ]
                }
            }
        },
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"example.com/note": "x"},
        "podLabels": {"team": "ml", "app.kubernetes.io/name": "must-not-override"},
        "serviceAccount": {"name": "custom-sa", "annotations": {"iam.example/role": "r"}},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "1Gi"}},
    }
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    dep = _one(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    meta = dep["spec"]["template"]["metadata"]
    c = _container(dep)
    assert c["image"] == f"registry.example/inferenceops:1.2.3@{digest}"
    assert c["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert c["args"][1:3] == ["--log-format=text", "--log-level=debug"]
    assert c["args"][-1] == "--some-flag=1"
    assert c["env"][3:] == values["extraEnv"]  # after POD_NAME, POD_NAMESPACE and POD_UID
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["tolerations"] == values["tolerations"]
    assert pod["affinity"] == values["affinity"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert meta["annotations"] == values["podAnnotations"]
    assert meta["labels"]["team"] == "ml"
    assert meta["labels"]["app.kubernetes.io/name"] == "inferenceops"  # selector labels win
    assert dep["spec"]["selector"]["matchLabels"].items() <= meta["labels"].items()
    assert c["resources"] == values["resources"]
    assert pod["serviceAccountName"] == "custom-sa"
    sa = _one(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == "custom-sa"
    assert sa["metadata"]["annotations"] == {"iam.example/role": "r"}
    assert _one(docs, "ClusterRoleBinding")["subjects"][0]["name"] == "custom-sa"

    _dry_run_apply(control_plane, docs)


def test_no_rbac_no_service_account(control_plane: Any, tmp_path: Path, ns: str) -> None:
    values = {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "existing"}}
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    assert sorted(d["kind"] for d in docs if "AdmissionPolicy" not in d["kind"]) == [
        "Deployment",
        "PodDisruptionBudget",
        "Service",
    ]
    assert _one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    _dry_run_apply(control_plane, docs)


def test_the_admission_policy_is_the_generated_one(
    control_plane: Any, tmp_path: Path, ns: str
) -> None:
    """The chart installs crds/secret-access-policy.yaml's policies (Helm never upgrades crds/,
    so they are templates), named after the release; admissionPolicy.enabled=false drops them."""
    generated = _docs((REPO / "crds" / "secret-access-policy.yaml").read_text())
    docs = _docs(_template(control_plane, tmp_path, ns).stdout)
    shipped = [d for d in docs if "AdmissionPolicy" in d["kind"]]
    prefix = f"{FULLNAME}-{ns}"
    expected = {
        (d["kind"], d["metadata"]["name"].replace("inferenceops.io", prefix, 1)): d
        for d in generated
    }
    assert sorted(expected) == sorted((d["kind"], d["metadata"]["name"]) for d in shipped)
    assert len(shipped) == 6
    for mine in shipped:
        theirs = expected[(mine["kind"], mine["metadata"]["name"])]
        assert mine["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        spec = json.loads(json.dumps(mine["spec"]).replace(prefix, "inferenceops.io"))
        assert spec == theirs["spec"]
    _dry_run_apply(control_plane, shipped)
    off = _docs(
        _template(control_plane, tmp_path, ns, {"admissionPolicy": {"enabled": False}}).stdout
    )
    assert not [d for d in off if "AdmissionPolicy" in d["kind"]]


def test_cluster_secret_namespaces_get_a_secret_reading_role_each(
    control_plane: Any, tmp_path: Path, ns: str
) -> None:
    a, platform = f"{ns}-a", f"{ns}-platform"
    for n in (a, platform):
        _ensure_namespace(control_plane, n)
    values = {"watchNamespaces": [a], "clusterSecretNamespaces": [platform, a]}
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    args = _container(_one(docs, "Deployment"))["args"]
    assert [x for x in args if x.startswith("--cluster-secret-namespace")] == [
        f"--cluster-secret-namespace={platform}",
        f"--cluster-secret-namespace={a}",
    ]
    roles = {r["metadata"]["namespace"]: r for r in _not_leases(_by_kind(docs, "Role"))}
    assert sorted(roles) == sorted([a, platform])  # not the release namespace: not listed
    assert roles[platform]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}
    ]
    assert len(roles[a]["rules"]) > 1  # the watched namespace's full Role already reads Secrets
    _dry_run_apply(control_plane, docs)

    # All namespaces watched: Secrets are read cluster-wide (endpoints may be anywhere), so no
    # Role; the flag still says where ClusterInferenceProviders may read them.
    docs = _docs(
        _template(control_plane, tmp_path, ns, {"clusterSecretNamespaces": [platform]}).stdout
    )
    assert not _not_leases(_by_kind(docs, "Role"))
    assert f"--cluster-secret-namespace={platform}" in _container(_one(docs, "Deployment"))["args"]


def _egress(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    policy = _one(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Egress"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
    return policy["spec"]["egress"]  # type: ignore[no-any-return]


def _blocks(rule: dict[str, Any]) -> dict[str, list[str]]:
    return {p["ipBlock"]["cidr"]: p["ipBlock"].get("except", []) for p in rule["to"]}


def test_the_egress_network_policy(control_plane: Any, tmp_path: Path, ns: str) -> None:
    assert not _by_kind(_docs(_template(control_plane, tmp_path, ns).stdout), "NetworkPolicy")
    on = {"networkPolicy": {"egress": {"enabled": True}}}
    docs = _docs(_template(control_plane, tmp_path, ns, on).stdout)
    dns, api, providers = _egress(docs)
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    never = {"0.0.0.0/0": ["169.254.0.0/16"], "::/0": ["fe80::/10"]}
    assert _blocks(api) == never
    assert sorted(p["port"] for p in api["ports"]) == [443, 6443]
    assert _blocks(providers) == never and "ports" not in providers
    _dry_run_apply(control_plane, [_one(docs, "NetworkPolicy")])

    # Narrower CIDRs: each excluded range goes where it lies inside (the API server refuses an
    # `except` outside its `cidr`), computed for IPv4 and IPv6 alike.
    values = {
        "networkPolicy": {
            "egress": {
                "enabled": True,
                "apiServerCIDRs": ["10.96.0.1/32"],
                "providerCIDRs": [
                    "0.0.0.0/0",
                    "160.0.0.0/4",
                    "203.0.113.0/24",
                    "2001:db8::/32",
                    "fe80::/9",
                ],
                "except": ["10.0.0.0/8", "fd00::/8", "2001:db8:1::/48"],
            }
        }
    }
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    _, api, providers = _egress(docs)
    assert _blocks(api) == {"10.96.0.1/32": []}
    assert _blocks(providers) == {
        "0.0.0.0/0": ["169.254.0.0/16", "10.0.0.0/8"],
        "160.0.0.0/4": ["169.254.0.0/16"],
        "203.0.113.0/24": [],
        "2001:db8::/32": ["2001:db8:1::/48"],
        "fe80::/9": ["fe80::/10"],
    }
    _dry_run_apply(control_plane, [_one(docs, "NetworkPolicy")])
    values["networkPolicy"]["egress"]["providerCIDRs"] = ["0.0.0.0/0", "::/0"]
    values["networkPolicy"]["egress"]["apiServerCIDRs"] = []
    docs = _docs(_template(control_plane, tmp_path, ns, values).stdout)
    _, api, providers = _egress(docs)
    assert _blocks(providers) == {
        "0.0.0.0/0": ["169.254.0.0/16", "10.0.0.0/8"],
        "::/0": ["fe80::/10", "fd00::/8", "2001:db8:1::/48"],
    }
    _dry_run_apply(control_plane, [_one(docs, "NetworkPolicy")])
    # A range inside link-local cannot be allowed at all: refused, saying why.
    for inside in ("169.254.169.254/32", "fe80::1/128"):
        values["networkPolicy"]["egress"]["providerCIDRs"] = [inside]
        bad = _template(control_plane, tmp_path, ns, values, check=False)
        assert bad.returncode != 0 and f"{inside} is link-local" in bad.stderr, bad.stderr


# ---------------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, needle",
    [
        (["--set", "logFormat=xml"], "logFormat"),
        (["--set", "logLevel=loud"], "logLevel"),
        (["--set", "noSuchValue=1"], "noSuchValue"),
        (["--set", "image.tagg=1"], "tagg"),
        (["--set", "replicaCount=-1"], "replicaCount"),
        (["--set", "leaseDuration=1"], "leaseDuration"),
        (["--set", "topologySpread.whenUnsatisfiable=Sometimes"], "whenUnsatisfiable"),
        (["--set", "watchNamespaces={Bad_NS}"], "watchNamespaces"),
        (["--set", "metrics.serviceMonitor.interval=often"], "interval"),
        (["--set", "clusterSecretNamespaces={Bad_NS}"], "clusterSecretNamespaces"),
        (["--set", "networkPolicy.egress.providerCIDRs={anywhere}"], "providerCIDRs"),
        (["--set", "grafanaDashboard.enabled=yes"], "grafanaDashboard"),
        (["--set", "grafanaDashboard.namespace=Bad_NS"], "grafanaDashboard"),
        (["--set", "kubeStateMetrics.customResourceState.enable=true"], "enable"),
    ],
    ids=lambda x: x[1] if isinstance(x, list) else None,
)
def test_schema_rejects(control_plane: Any, tmp_path: Path, bad: list[str], needle: str) -> None:
    proc = _template(control_plane, tmp_path, "default", None, *bad, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "schema" in proc.stderr.lower() and needle in proc.stderr, proc.stderr


def test_chart_is_a_valid_subchart_target(control_plane: Any, tmp_path: Path) -> None:
    """Parents pass `global`; the strict schema must still accept it."""
    _template(control_plane, tmp_path, "default", {"global": {"imageRegistry": "x"}})


# ---------------------------------------------------------------------------------------------
# install + RBAC
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def installed(control_plane: Any, tmp_path: Path) -> Iterator[Any]:
    """Installs releases on request: installed(namespace, values) -> ServiceAccount user name.

    The release (CRD included, as a user would install it) is uninstalled afterwards; the CRD
    stays, as Helm never deletes CRDs.
    """
    releases: list[str] = []

    def install(namespace: str, values: dict[str, Any] | None = None) -> str:
        control_plane.helm(
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            namespace,
            "--create-namespace",
            *_values_args(tmp_path, values),
        )
        releases.append(namespace)
        # Helm creates the CRD from crds/ unless it exists already (it never updates or deletes
        # it). `kubectl auth can-i` needs it served to resolve inferenceendpoints.inferenceops.io.
        control_plane.kubectl(
            "wait", "--for=condition=Established", f"customresourcedefinition/{IE}", "--timeout=60s"
        )
        return f"system:serviceaccount:{namespace}:{FULLNAME}"

    yield install
    for namespace in releases:
        control_plane.helm("uninstall", RELEASE, "--namespace", namespace, check=False)


def _objects(cp: Any, kind: str, namespace: str | None) -> list[str]:
    scope = ["--all-namespaces"] if namespace is None else ["--namespace", namespace]
    out = cp.kubectl(
        "get", kind, *scope, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "json"
    ).stdout
    return [i["metadata"]["name"] for i in json.loads(out)["items"]]


def test_install_cluster_wide_rbac(control_plane: Any, installed: Any) -> None:
    ns = f"helm-{_suffix()}"
    other = f"{ns}-other"
    _ensure_namespace(control_plane, other)
    # replicaCount 0: on a real cluster (USE_EXISTING_CLUSTER) a running cluster-wide operator
    # would also write status for the endpoints of the other integration tests.
    sa = installed(ns, {"replicaCount": 0})

    status = json.loads(control_plane.helm("status", RELEASE, "-n", ns, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    assert _objects(control_plane, "deployment", ns) == [FULLNAME]
    assert _objects(control_plane, "serviceaccount", ns) == [FULLNAME]
    assert _objects(control_plane, "service", ns) == [f"{FULLNAME}-metrics"]
    assert f"{FULLNAME}-{ns}" in _objects(control_plane, "clusterrole", None)
    assert f"{FULLNAME}-{ns}" in _objects(control_plane, "clusterrolebinding", None)
    # The Secret-access admission policies, with the release (upgraded and removed with it).
    policies = sorted(_objects(control_plane, "validatingadmissionpolicies", None))
    bindings = sorted(_objects(control_plane, "validatingadmissionpolicybindings", None))
    plurals = ["clusterinferenceproviders", "inferenceendpoints", "inferenceproviders"]
    mine = [f"{FULLNAME}-{ns}-secret-access-{p}" for p in plurals]
    assert [p for p in policies if p.startswith(f"{FULLNAME}-{ns}-")] == mine
    assert [b for b in bindings if b.startswith(f"{FULLNAME}-{ns}-")] == mine

    for where in (ns, other, None):
        assert _can_i(control_plane, sa, "list", IE, namespace=where)
        assert _can_i(control_plane, sa, "watch", IE, namespace=where)
        assert _can_i(control_plane, sa, "patch", IE, namespace=where, subresource="status")
        assert _can_i(control_plane, sa, "get", "secrets", namespace=where)
        assert _can_i(control_plane, sa, "create", "events", namespace=where)
        assert _can_i(control_plane, sa, "create", "events.events.k8s.io", namespace=where)
        assert not _can_i(control_plane, sa, "delete", IE, namespace=where)
        assert not _can_i(control_plane, sa, "update", IE, namespace=where)
        assert not _can_i(control_plane, sa, "patch", IE, namespace=where)
        assert not _can_i(control_plane, sa, "create", IE, namespace=where)
        assert not _can_i(control_plane, sa, "update", IE, namespace=where, subresource="status")
        assert not _can_i(control_plane, sa, "create", "secrets", namespace=where)
        assert not _can_i(control_plane, sa, "delete", "secrets", namespace=where)
        assert not _can_i(control_plane, sa, "list", "configmaps", namespace=where)
    assert _can_i(
        control_plane, sa, "list", "customresourcedefinitions.apiextensions.k8s.io", namespace=None
    )
    assert _can_i(control_plane, sa, "watch", "namespaces", namespace=None)
    # Membership Leases: in the release namespace only.
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        assert _can_i(control_plane, sa, verb, LEASES, namespace=ns)
    assert not _can_i(control_plane, sa, "update", LEASES, namespace=other)
    assert not _can_i(control_plane, sa, "list", LEASES, namespace=None)
    assert not _can_i(
        control_plane,
        sa,
        "create",
        "customresourcedefinitions.apiextensions.k8s.io",
        namespace=None,
    )


def test_install_watch_namespaces_rbac(control_plane: Any, installed: Any) -> None:
    ns = f"helm-{_suffix()}"
    a, b, other = f"{ns}-a", f"{ns}-b", f"{ns}-other"
    for n in (a, b, other):
        _ensure_namespace(control_plane, n)
    sa = installed(ns, {"watchNamespaces": [a, b]})

    assert _objects(control_plane, "role", a) == [FULLNAME]
    assert _objects(control_plane, "rolebinding", b) == [FULLNAME]
    assert _objects(control_plane, "role", other) == []
    args = json.loads(
        control_plane.kubectl("get", "deployment", FULLNAME, "-n", ns, "-o", "json").stdout
    )["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--namespace={a}" in args and f"--namespace={b}" in args

    for where in (a, b):
        assert _can_i(control_plane, sa, "get", "secrets", namespace=where)
        assert _can_i(control_plane, sa, "list", IE, namespace=where)
        assert _can_i(control_plane, sa, "patch", IE, namespace=where, subresource="status")
        assert not _can_i(control_plane, sa, "update", IE, namespace=where)
        assert not _can_i(control_plane, sa, "delete", IE, namespace=where)
        assert not _can_i(control_plane, sa, "create", "secrets", namespace=where)
    # The release namespace (clusterSecretNamespaces' default): Secrets only, for
    # ClusterInferenceProviders.
    assert _can_i(control_plane, sa, "get", "secrets", namespace=ns)
    assert _can_i(control_plane, sa, "watch", "secrets", namespace=ns)
    assert not _can_i(control_plane, sa, "list", IE, namespace=ns)
    assert not _can_i(control_plane, sa, "create", "secrets", namespace=ns)
    for where in (other, None):
        assert not _can_i(control_plane, sa, "get", "secrets", namespace=where)
    for where in (other, ns, None):
        assert not _can_i(control_plane, sa, "list", IE, namespace=where)
        assert not _can_i(control_plane, sa, "patch", IE, namespace=where, subresource="status")
    # discovery stays cluster-wide
    assert _can_i(
        control_plane, sa, "list", "customresourcedefinitions.apiextensions.k8s.io", namespace=None
    )
    assert _can_i(control_plane, sa, "list", "namespaces", namespace=None)

    if control_plane.audit_log is None:
        # A real cluster (kind: docs/e2e.md): the operator, watching only these two empty
        # namespaces, must start, pass its probes and keep running as uid 65532 with a
        # read-only root filesystem.
        control_plane.kubectl(
            "rollout", "status", f"deployment/{FULLNAME}", "-n", ns, "--timeout=180s", timeout=200
        )


def _sharded_chart(tmp_path: Path) -> Path:
    """The chart as it was with sharding, from git history, extracted into tmp_path."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", SHARDED_CHART_COMMIT, "charts/inferenceops"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"the sharded chart ({SHARDED_CHART_COMMIT[:12]}) is not in git history: {e}")
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=archive, check=True)
    chart = tmp_path / "charts" / "inferenceops"
    assert (chart / "templates" / "statefulset.yaml").exists()
    return chart


def test_upgrade_from_the_sharded_chart(control_plane: Any, tmp_path: Path) -> None:
    """`helm upgrade` from the sharded chart: the StatefulSet and its headless Service go, the
    Deployment has N replicas, and old values still naming `sharding` are refused saying why."""
    ns = f"helm-{_suffix()}"
    old = _sharded_chart(tmp_path)
    sharded = _values_args(tmp_path, {"sharding": {"enabled": True, "replicas": 3}})
    # --skip-crds: this tree's CRDs are installed for the session already (Helm never upgrades
    # CRDs either); the old chart's copies would conflict with them.
    control_plane.helm(
        "install", RELEASE, str(old), "-n", ns, "--create-namespace", "--skip-crds", *sharded
    )
    try:
        assert _objects(control_plane, "statefulset", ns) == [FULLNAME]
        assert _objects(control_plane, "deployment", ns) == []

        # --reuse-values keeps `sharding` from the sharded release: refused, release unchanged.
        bad = control_plane.helm(
            "upgrade", RELEASE, str(CHART), "-n", ns, "--reuse-values", check=False
        )
        assert bad.returncode != 0
        assert "sharding was removed" in bad.stderr and "replicaCount" in bad.stderr, bad.stderr
        assert _objects(control_plane, "statefulset", ns) == [FULLNAME]

        control_plane.helm(
            "upgrade", RELEASE, str(CHART), "-n", ns, "--reset-values", "--set", "replicaCount=3"
        )
        assert _objects(control_plane, "statefulset", ns) == []
        assert f"{FULLNAME}-shards" not in _objects(control_plane, "service", ns)
        dep = json.loads(
            control_plane.kubectl("get", "deployment", FULLNAME, "-n", ns, "-o", "json").stdout
        )
        assert dep["spec"]["replicas"] == 3
        assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
        args = _container(dep)["args"]
        assert f"--group={FULLNAME}" in args
        assert not [a for a in args if a.startswith("--shard")]
        assert _objects(control_plane, "poddisruptionbudget", ns) == [FULLNAME]
        sa = f"system:serviceaccount:{ns}:{FULLNAME}"
        assert _can_i(control_plane, sa, "update", LEASES, namespace=ns)
        status = json.loads(control_plane.helm("status", RELEASE, "-n", ns, "-o", "json").stdout)
        assert status["info"]["status"] == "deployed"
    finally:
        control_plane.helm("uninstall", RELEASE, "--namespace", ns, check=False)
