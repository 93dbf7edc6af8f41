"""The path users take, on a real node: the image built by `make image`, `helm install`, a pod
the kubelet starts and probes, the examples reaching their conditions, metrics through the
chart's Service, a pod replaced, the operator's own security settings and token rotation,
sharding, an image upgrade and `helm uninstall`.

The steps share one release and run in file order; each says what it proves. Status writes are
counted in the API server's audit log, where a bound service-account token names the pod that
made the request (`user.extra["authentication.kubernetes.io/pod-name"]`).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from examples.demo.demo import pointed_at_emulator

from inferenceops.api import API_VERSION
from inferenceops.scheduler import shard_of
from tests.integration.conftest import TOKEN, EmulatorClient, wait_until

from .conftest import CHART, NEXT_TAG, VERSION

pytestmark = pytest.mark.e2e

RELEASE = "inferenceops"  # contains the chart's name, so it is also the objects' full name
OPERATOR_NS = "inferenceops"
USERS_NS = "e2e"
SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"
EXAMPLES_READY = ("llama-friendli", "sdxl-runpod", "mistral-takeoff", "qwen-dataarts")
EXAMPLE_FAILED = "classifier-ns"
SHARDED = tuple(f"shard-{i}" for i in range(8))
POD_NAME = "authentication.kubernetes.io/pod-name"
POLL = 5.0  # the examples' pollInterval in this suite


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _json(node: Any, *args: str) -> Any:
    return json.loads(node.kubectl(*args, "-o", "json").stdout)


def operator_pods(node: Any) -> list[dict[str, Any]]:
    pods = _json(node, "get", "pods", "-n", OPERATOR_NS, "-l", SELECTOR)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_operator_pods(node: Any, count: int, timeout: float = 180.0) -> list[dict[str, Any]]:
    """Wait until exactly `count` operator pods exist (none terminating) and all are Ready."""

    def check() -> list[dict[str, Any]] | None:
        pods = _json(node, "get", "pods", "-n", OPERATOR_NS, "-l", SELECTOR)["items"]
        if len(pods) == count and all(is_ready(p) for p in pods):
            return pods
        return None

    try:
        return wait_until(f"{count} Ready operator pod(s)", check, timeout, every=1.0)  # type: ignore[no-any-return]
    except AssertionError as err:
        raise AssertionError(f"{err}\n{node.logs_tail(20)}") from None


def endpoint(node: Any, name: str) -> dict[str, Any]:
    return _json(node, "get", "ie", name, "-n", USERS_NS)  # type: ignore[no-any-return]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def summary(obj: dict[str, Any]) -> tuple[Any, ...]:
    """What a user sees of an endpoint; must never regress across an operator change."""
    status = obj.get("status") or {}
    ready = condition(obj, "Ready")
    return (
        status.get("phase"),
        status.get("errorCode"),
        json.dumps(status.get("workers"), sort_keys=True),
        ready.get("status"),
        ready.get("lastTransitionTime"),
    )


def summaries(node: Any) -> dict[str, tuple[Any, ...]]:
    items = _json(node, "get", "ie", "-n", USERS_NS)["items"]
    return {o["metadata"]["name"]: summary(o) for o in items}


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status_writes(node: Any, since: str) -> Counter[tuple[str, str]]:
    """(endpoint name, writing pod) -> successful status PATCHes received at or after `since`."""
    counted: Counter[tuple[str, str]] = Counter()
    for event in node.audit_events(
        objectRef__resource="inferenceendpoints", objectRef__subresource="status", verb="patch"
    ):
        if event.get("requestReceivedTimestamp", "") < since:
            continue
        if (event.get("responseStatus") or {}).get("code", 0) >= 300:
            continue
        pod = ((event.get("user") or {}).get("extra") or {}).get(POD_NAME, ["?"])[0]
        counted[(event["objectRef"]["name"], pod)] += 1
    return counted


def kubectl_wait(node: Any, condition_type: str, *names: str, timeout: int = 120) -> None:
    node.kubectl(
        "wait",
        f"--for=condition={condition_type}",
        f"--timeout={timeout}s",
        "-n",
        USERS_NS,
        *(f"ie/{n}" for n in names),
        timeout=timeout + 30,
    )


def api_status(node: Any, token: str) -> int:
    """HTTP status of GET /api with a bearer token (no client certificate)."""
    context = ssl.create_default_context(cafile=node.ca_file)
    request = urllib.request.Request(
        node.control_plane.server + "/api", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def metrics(node: Any, pod: str | None = None) -> str:
    """/metrics through the chart's metrics Service (the API server's service proxy, which
    resolves the Service's endpoints), or straight from one pod through the pod proxy."""
    if pod is None:
        path = f"/api/v1/namespaces/{OPERATOR_NS}/services/{RELEASE}-metrics:metrics/proxy/metrics"
    else:
        path = f"/api/v1/namespaces/{OPERATOR_NS}/pods/{pod}:9090/proxy/metrics"
    return str(node.kubectl("get", "--raw", path).stdout)


def metric_total(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def apply(node: Any, items: list[dict[str, Any]]) -> None:
    node.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )


def install_args(*values: str) -> list[str]:
    return [
        RELEASE,
        str(CHART),
        "--namespace",
        OPERATOR_NS,
        "--set",
        "image.pullPolicy=Never",
        "--set",
        "logFormat=text",
        # The emulator on the node is plain http, and its endpoints carry tokens.
        "--set-json",
        'extraArgs=["--allow-insecure-http"]',
        *values,
    ]


# ---------------------------------------------------------------------------------------------
# 1. helm install: the pod becomes Ready through its readiness probe
# ---------------------------------------------------------------------------------------------


def test_helm_install_pod_ready_through_its_probe(node: Any, image: None) -> None:
    node.helm(
        "install", *install_args("--set-string", f"image.tag={VERSION}"), "--create-namespace"
    )
    (pod,) = ready_operator_pods(node, 1)
    container = pod["spec"]["containers"][0]
    assert container["image"] == f"inferenceops:{VERSION}"
    # Ready is the kubelet's verdict from this probe: the operator answered /healthz.
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    # It runs on the node's pod network, with a projected service-account token.
    assert pod["status"]["podIP"].startswith(node.host_ip.rsplit(".", 1)[0] + ".")
    volumes = [v["name"] for v in pod["spec"]["volumes"]]
    assert any(v.startswith("kube-api-access-") for v in volumes), volumes


# ---------------------------------------------------------------------------------------------
# 2. the examples, pointed at the emulator, reach their conditions
# ---------------------------------------------------------------------------------------------


def test_examples_reach_ready_and_the_failing_one_stalls(
    node: Any, emulator: EmulatorClient
) -> None:
    node.kubectl("create", "namespace", USERS_NS)
    items = pointed_at_emulator(emulator.base_url, USERS_NS, TOKEN)
    apply(node, items)
    kubectl_wait(node, "Ready", *EXAMPLES_READY)
    kubectl_wait(node, "Stalled", EXAMPLE_FAILED)
    for name in EXAMPLES_READY:
        assert endpoint(node, name)["status"]["phase"] == "Running", name
    failed = endpoint(node, EXAMPLE_FAILED)
    assert failed["status"]["phase"] == "Failed"
    assert failed["status"]["errorCode"] == "INVALID_MODEL"
    assert condition(failed, "Ready")["status"] == "False"


def test_an_endpoint_through_a_provider_object(node: Any, emulator: EmulatorClient) -> None:
    """Issue 16 on the node: the chart installs the provider kinds and the RBAC to watch them; an
    endpoint naming an InferenceProvider polls with its account, and the provider says Ready."""
    apply(
        node,
        [
            {
                "apiVersion": API_VERSION,
                "kind": "InferenceProvider",
                "metadata": {"name": "friendli-shared", "namespace": USERS_NS},
                "spec": {
                    "friendli": {
                        "url": f"{emulator.base_url}/friendli",
                        "credentialsSecretRef": {"name": "friendli-credentials", "key": "token"},
                    }
                },
            },
            {
                "apiVersion": API_VERSION,
                "kind": "InferenceEndpoint",
                "metadata": {"name": "llama-via-provider", "namespace": USERS_NS},
                "spec": {
                    "pollInterval": "5s",
                    "providerRef": {"name": "friendli-shared"},
                    "friendli": {"endpointId": "abc123xyz"},
                },
            },
        ],
    )
    kubectl_wait(node, "Ready", "llama-via-provider")
    assert endpoint(node, "llama-via-provider")["status"]["phase"] == "Running"
    node.kubectl(
        "wait",
        "--for=condition=Ready",
        "--timeout=60s",
        "-n",
        USERS_NS,
        "inferenceprovider/friendli-shared",
    )
    status = _json(node, "get", "ipr", "friendli-shared", "-n", USERS_NS)["status"]
    assert status["endpoints"] == 1 and status["readyEndpoints"] == 1, status
    node.kubectl("delete", "ie", "llama-via-provider", "-n", USERS_NS)
    node.kubectl("delete", "ipr", "friendli-shared", "-n", USERS_NS)


def test_a_user_who_cannot_read_a_secret_cannot_name_it(node: Any) -> None:
    """Issue 21 on the node: the chart's admission policy refuses an endpoint naming a Secret its
    author may not read (kubectl's one-line error names it), and lets the same author use a
    provider object (delegation)."""
    author = "e2e-endpoint-author"
    apply(
        node,
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "endpoint-author", "namespace": USERS_NS},
                "rules": [
                    {
                        "apiGroups": ["inferenceops.io"],
                        "resources": ["inferenceendpoints"],
                        "verbs": ["get", "list", "create", "update", "patch"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "endpoint-author", "namespace": USERS_NS},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "endpoint-author",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": author}
                ],
            },
        ],
    )

    def as_author(spec: dict[str, Any]) -> Any:
        document = {
            "apiVersion": API_VERSION,
            "kind": "InferenceEndpoint",
            "metadata": {"name": "not-my-secret", "namespace": USERS_NS},
            "spec": {"pollInterval": "5s", **spec},
        }
        return node.kubectl(
            f"--as={author}",
            "apply",
            "--dry-run=server",
            "-f",
            "-",
            input=json.dumps(document),
            check=False,
        )

    inline = {
        "friendli": {
            "endpointId": "abc123xyz",
            "credentialsSecretRef": {"name": "friendli-credentials", "key": "token"},
        }
    }
    # RBAC (checked first) may take a moment to allow the author: then the policy answers.
    refused = wait_until(
        "the policy's refusal",
        lambda: "may not get Secret" in (r := as_author(inline)).stderr and r,
        30,
    )
    assert refused.returncode != 0
    assert (
        f"{author} may not get Secret friendli-credentials in namespace {USERS_NS}"
        in refused.stderr
    ), refused.stderr
    delegated = as_author(
        {"providerRef": {"name": "friendli-shared"}, "friendli": {"endpointId": "abc123xyz"}}
    )
    assert delegated.returncode == 0, delegated.stderr
    node.kubectl("delete", "rolebinding,role", "endpoint-author", "-n", USERS_NS)


# ---------------------------------------------------------------------------------------------
# 3. /metrics through the chart's Service
# ---------------------------------------------------------------------------------------------


def test_metrics_through_the_service_show_polls_and_writes(node: Any) -> None:
    slices = _json(
        node,
        "get",
        "endpointslices",
        "-n",
        OPERATOR_NS,
        "-l",
        f"kubernetes.io/service-name={RELEASE}-metrics",
    )["items"]
    addresses = [a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]]
    (pod,) = operator_pods(node)
    assert addresses == [pod["status"]["podIP"]]
    text = metrics(node)
    assert metric_total(text, "inferenceops_polls_total", outcome="ok") >= 5
    assert metric_total(text, "inferenceops_status_writes_total", result="ok") >= 5


# ---------------------------------------------------------------------------------------------
# 4. the pod is deleted: its replacement takes over, nothing regresses, no burst of rewrites
# ---------------------------------------------------------------------------------------------


def test_replacement_pod_takes_over_without_rewrites(node: Any, emulator: EmulatorClient) -> None:
    before = summaries(node)
    (old,) = operator_pods(node)
    since = now()
    node.kubectl("delete", "pod", old["metadata"]["name"], "-n", OPERATOR_NS, timeout=90)
    (new,) = ready_operator_pods(node, 1)
    new_name = new["metadata"]["name"]
    assert new_name != old["metadata"]["name"]
    # Every endpoint is polled at least twice by the new pod.
    polled = emulator.requests(provider="nsModelServer", endpoint="classifier")
    wait_until(
        "the new pod polling",
        lambda: emulator.requests(provider="nsModelServer", endpoint="classifier") >= polled + 2,
        6 * POLL,
    )
    time.sleep(POLL)
    assert summaries(node) == before
    assert status_writes(node, since) == Counter(), "a restart must not rewrite unchanged status"

    # One real change afterwards is one write, by the new pod.
    since = now()
    emulator.patch("runpod", "jpnw0v75y3qoql", workers=["RUNNING", "RUNNING", "IDLE"])
    wait_until(
        "the change in .status",
        lambda: endpoint(node, "sdxl-runpod")["status"]["workers"]["total"] == 3,
        6 * POLL,
    )
    time.sleep(POLL)
    assert status_writes(node, since) == Counter({("sdxl-runpod", new_name): 1})


# ---------------------------------------------------------------------------------------------
# 7. in the pod: non-root, read-only root filesystem, no capabilities; a rotated token
# ---------------------------------------------------------------------------------------------


def test_pod_runs_unprivileged_with_a_read_only_root(node: Any) -> None:
    (pod,) = operator_pods(node)
    pid = node.container_pid(OPERATOR_NS, pod["metadata"]["name"], "operator")
    status = dict(line.split(":", 1) for line in node.read_text(f"/proc/{pid}/status").splitlines())
    assert status["Uid"].split() == ["65532"] * 4
    assert status["Gid"].split() == ["65532"] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, (caps, status[caps])
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # filtered: the RuntimeDefault profile
    root = next(
        line.split()
        for line in node.read_text(f"/proc/{pid}/mountinfo").splitlines()
        if line.split()[4] == "/"
    )
    assert "ro" in root[5].split(","), root
    # And the kernel agrees: even root inside its mount namespace cannot write there.
    attempt = node.run_in_container(pid, ["/usr/bin/python3", "-c", "open('/e2e-probe', 'w')"])
    assert attempt.returncode != 0 and "Read-only file system" in attempt.stderr, attempt


def test_operator_keeps_working_when_its_token_is_rotated(
    node: Any, emulator: EmulatorClient
) -> None:
    (pod,) = operator_pods(node)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    account = pod["spec"]["serviceAccountName"]
    token_file = node.pod_token_file(OPERATOR_NS, name)
    old_token = node.read_text(token_file)
    assert api_status(node, old_token) == 200

    # What the kubelet does on rotation, made quick: a new token bound to the pod is written
    # into the projected volume, and the old one stops being accepted (here: its service
    # account is recreated, so the old token's account uid no longer exists).
    sa = _json(node, "get", "serviceaccount", account, "-n", OPERATOR_NS)
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        sa["metadata"].pop(key, None)
    node.kubectl("delete", "serviceaccount", account, "-n", OPERATOR_NS)
    node.kubectl("create", "-f", "-", input=json.dumps(sa))
    wait_until("the old token rejected", lambda: api_status(node, old_token) == 401, 30)
    new_token = node.kubectl(
        "create",
        "token",
        account,
        "-n",
        OPERATOR_NS,
        "--bound-object-kind=Pod",
        f"--bound-object-name={name}",
        f"--bound-object-uid={uid}",
        "--duration=1h",
    ).stdout.strip()
    assert api_status(node, new_token) == 200
    node.replace_file(token_file, new_token)

    since = now()
    emulator.patch("takeoff", "mistral", live=["mistral-7b", "mistral-7b"])
    wait_until(
        "the change in .status with the new token",
        lambda: endpoint(node, "mistral-takeoff")["status"]["workers"]["total"] == 2,
        60,
    )
    assert status_writes(node, since) == Counter({("mistral-takeoff", name): 1})
    (still,) = ready_operator_pods(node, 1)
    assert still["metadata"]["uid"] == uid  # the same pod: no restart was needed
    assert still["status"]["containerStatuses"][0]["restartCount"] == 0
    logs = node.kubectl("logs", name, "-n", OPERATOR_NS).stdout
    assert "Traceback" not in logs
    assert old_token not in logs and new_token not in logs


# ---------------------------------------------------------------------------------------------
# 5. sharding: two pods, each polls and writes only its own half
# ---------------------------------------------------------------------------------------------


def test_sharded_pods_each_poll_and_write_only_their_half(
    node: Any, emulator: EmulatorClient
) -> None:
    node.helm(
        "upgrade",
        *install_args("--reuse-values", "--set", "sharding.enabled=true"),
        "--set",
        "sharding.replicas=2",
    )
    pods = ready_operator_pods(node, 2)
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"StatefulSet"}
    index = {p["metadata"]["labels"]["apps.kubernetes.io/pod-index"]: p for p in pods}
    assert sorted(index) == ["0", "1"]

    base = f"{emulator.base_url}/ns"
    items = [
        {
            "apiVersion": "inferenceops.io/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": name, "namespace": USERS_NS},
            "spec": {"pollInterval": "5s", "nsModelServer": {"url": f"{base}/{name}"}},
        }
        for name in SHARDED
    ]
    apply(node, items)
    kubectl_wait(node, "Ready", *SHARDED)
    expected = {name: index[str(shard_of(USERS_NS, name, 2))] for name in SHARDED}
    assert {p["metadata"]["name"] for p in expected.values()} == set(
        p["metadata"]["name"] for p in pods
    ), "both shards must own some endpoints for this test to mean anything"

    # Polls: every endpoint's requests come from its own shard's pod address only.
    emulator.reset_requests()
    time.sleep(3 * POLL)
    clients = emulator.summary()["clients"]["nsModelServer"]
    for name in SHARDED:
        assert set(clients.get(name, {})) == {expected[name]["status"]["podIP"]}, (name, clients)

    # Writes: a real change on every endpoint is written once, by its own shard's pod.
    since = now()
    for name in SHARDED:
        emulator.patch("nsModelServer", name, stage="LOADING_MODEL", progress=50)
    wait_until(
        "every change in .status",
        lambda: all(endpoint(node, n)["status"]["phase"] == "Provisioning" for n in SHARDED),
        6 * POLL,
    )
    time.sleep(POLL)
    writes = status_writes(node, since)
    assert writes == Counter({(n, expected[n]["metadata"]["name"]): 1 for n in SHARDED})
    # Each pod's own metrics agree: it tracks only its half.
    for pod in pods:
        text = metrics(node, pod["metadata"]["name"])
        mine = sum(1 for p in expected.values() if p["metadata"]["name"] == pod["metadata"]["name"])
        assert metric_total(text, "inferenceops_endpoints") >= mine


# ---------------------------------------------------------------------------------------------
# 6. a new image tag rolls the pods; helm uninstall leaves the CRD and the users' resources
# ---------------------------------------------------------------------------------------------


def test_new_image_tag_rolls_the_pods(node: Any) -> None:
    before = {p["metadata"]["uid"] for p in operator_pods(node)}
    statuses = summaries(node)
    node.helm("upgrade", *install_args("--reuse-values", "--set-string", f"image.tag={NEXT_TAG}"))
    node.kubectl(
        "rollout",
        "status",
        f"statefulset/{RELEASE}",
        "-n",
        OPERATOR_NS,
        "--timeout=240s",
        timeout=270,
    )
    pods = ready_operator_pods(node, 2)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {f"inferenceops:{NEXT_TAG}"}
    assert not before & {p["metadata"]["uid"] for p in pods}
    time.sleep(2 * POLL)
    after = summaries(node)
    for name in EXAMPLES_READY:
        assert after[name] == statuses[name], name


def test_helm_uninstall_keeps_the_crd_and_the_users_resources(node: Any) -> None:
    endpoints_before = sorted(summaries(node))
    node.helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait", "--timeout", "3m")
    wait_until("the operator pods gone", lambda: not operator_pods(node), 120)

    instance = f"app.kubernetes.io/instance={RELEASE}"
    for kinds, scope in (
        ("deployments,statefulsets,services,serviceaccounts,roles,rolebindings", ["-A"]),
        ("clusterroles,clusterrolebindings", []),
    ):
        left = node.kubectl("get", kinds, *scope, "-l", instance, "-o", "name").stdout.split()
        assert left == [], left
    node.kubectl("get", "crd", "inferenceendpoints.inferenceops.io")
    assert sorted(summaries(node)) == endpoints_before
    ready = [n for n in EXAMPLES_READY if condition(endpoint(node, n), "Ready")["status"] == "True"]
    assert ready == list(EXAMPLES_READY)  # status stays as last written; nothing blanked it
