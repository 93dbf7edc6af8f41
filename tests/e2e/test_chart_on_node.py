"""The path users take, on a real node: the image built by `make image`, `helm install`, a pod
the kubelet starts and probes, the examples reaching their conditions, metrics through the
chart's Service, a pod replaced, the operator's own security settings and token rotation,
three replicas sharing the endpoints (one poller and writer each, a force-deleted pod covered),
an image upgrade rolled with no endpoint going stale, and `helm uninstall`.

The steps share one release and run in file order; each says what it proves. Status writes are
counted in the API server's audit log, where a bound service-account token names the pod that
made the request (`user.extra["authentication.kubernetes.io/pod-name"]`).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest
from examples.demo.demo import pointed_at_emulator

from inferenceops.api import API_VERSION
from tests.integration.conftest import TOKEN, EmulatorClient, wait_until

from .conftest import CHART, NEXT_TAG, VERSION

pytestmark = pytest.mark.e2e

RELEASE = "inferenceops"  # contains the chart's name, so it is also the objects' full name
OPERATOR_NS = "inferenceops"
USERS_NS = "e2e"
SELECTOR = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"
EXAMPLES_READY = ("llama-friendli", "sdxl-runpod", "mistral-takeoff", "qwen-dataarts")
EXAMPLE_FAILED = "classifier-ns"
#: Enough endpoints that each of 3 members owns some (a member owns none with p = 3 (2/3)^24,
#: 2e-4).
SHARED = tuple(f"shared-{i}" for i in range(24))
REPLICAS = 3
LEASE_DURATION = 15.0  # the chart's leaseDuration
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
    # One replica until step 8 (three): the steps before look at "the" pod.
    node.helm(
        "install",
        *install_args("--set-string", f"image.tag={VERSION}", "--set", "replicaCount=1"),
        "--create-namespace",
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
# 8. three replicas: each endpoint polled and written by one pod; a force-deleted pod covered
# ---------------------------------------------------------------------------------------------


def pod_by_ip(pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["status"]["podIP"]: p for p in pods}


def pollers(emulator: EmulatorClient, names: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Per NS model server endpoint: the client addresses that polled it (and how often) since
    the emulator's counts were last reset."""
    clients = emulator.summary()["clients"].get("nsModelServer", {})
    return {name: dict(clients.get(name, {})) for name in names}


def leases(node: Any) -> list[dict[str, Any]]:
    """The release's membership Leases."""
    return _json(
        node, "get", "leases", "-n", OPERATOR_NS, "-l", f"inferenceops.io/group={RELEASE}"
    )["items"]


def lease_holders(node: Any) -> dict[str, str]:
    """The release's membership Leases: holder (pod name) -> Lease name."""
    return {lease["spec"]["holderIdentity"]: lease["metadata"]["name"] for lease in leases(node)}


def members_seen(node: Any, pod: str) -> float:
    return metric_total(metrics(node, pod), "inferenceops_members")


def test_three_replicas_share_the_endpoints_and_cover_a_force_deleted_pod(
    node: Any, emulator: EmulatorClient
) -> None:
    node.helm("upgrade", *install_args("--reuse-values", "--set", f"replicaCount={REPLICAS}"))
    pods = ready_operator_pods(node, REPLICAS)
    assert {p["metadata"]["ownerReferences"][0]["kind"] for p in pods} == {"ReplicaSet"}
    names = [p["metadata"]["name"] for p in pods]
    wait_until(
        "every member seeing the others",
        lambda: all(members_seen(node, n) == REPLICAS for n in names),
        2 * LEASE_DURATION,
    )
    assert sorted(lease_holders(node)) == sorted(names)

    for name in SHARED:
        emulator.put("nsModelServer", name, stage="READY", progress=100)
    base = f"{emulator.base_url}/ns"
    apply(
        node,
        [
            {
                "apiVersion": "inferenceops.io/v1alpha1",
                "kind": "InferenceEndpoint",
                "metadata": {"name": name, "namespace": USERS_NS},
                "spec": {"pollInterval": "5s", "nsModelServer": {"url": f"{base}/{name}"}},
            }
            for name in SHARED
        ],
    )
    kubectl_wait(node, "Ready", *SHARED)

    # Polls: every endpoint's requests come from exactly one pod's address; every pod has some.
    by_ip = pod_by_ip(pods)
    emulator.reset_requests()
    time.sleep(3 * POLL)
    polled = pollers(emulator, SHARED)
    for name, clients in polled.items():
        assert len(clients) == 1 and set(clients) <= set(by_ip), (name, polled)
    owner = {
        name: by_ip[next(iter(clients))]["metadata"]["name"] for name, clients in polled.items()
    }
    share = Counter(owner.values())
    print(f"\nendpoints per replica: {dict(share)}")
    assert set(share) == set(names), f"a member owns nothing: {share}"
    for pod in names:  # each pod's own metric agrees with what the emulator saw
        assert metric_total(metrics(node, pod), "inferenceops_endpoints_owned") >= share[pod]

    # Writes: a real change on every endpoint is written once, by the pod that polls it.
    since = now()
    for name in SHARED:
        emulator.patch("nsModelServer", name, stage="LOADING_MODEL", progress=50)
    wait_until(
        "every change in .status",
        lambda: all(endpoint(node, n)["status"]["phase"] == "Provisioning" for n in SHARED),
        6 * POLL,
    )
    time.sleep(POLL)
    writes = status_writes(node, since)
    assert writes == Counter({(n, owner[n]): 1 for n in SHARED})

    # A pod force-deleted (no grace): its endpoints are polled by the others within one lease
    # duration plus one interval.
    victim = share.most_common(1)[0][0]
    (victim_ip,) = [ip for ip, p in by_ip.items() if p["metadata"]["name"] == victim]
    orphans = tuple(n for n in SHARED if owner[n] == victim)
    before = summaries(node)
    emulator.reset_requests()
    deleted = time.monotonic()
    node.kubectl(
        "delete", "pod", victim, "-n", OPERATOR_NS, "--grace-period=0", "--force", "--wait=false"
    )
    covered_at: dict[str, float] = {}
    lease_gone: list[float] = []

    def covered() -> bool:
        for name, clients in pollers(emulator, orphans).items():
            if name not in covered_at and set(clients) - {victim_ip}:
                covered_at[name] = time.monotonic() - deleted
        if not lease_gone and victim not in lease_holders(node):
            lease_gone.append(time.monotonic() - deleted)
        return len(covered_at) == len(orphans)

    bound = LEASE_DURATION + POLL
    wait_until("the force-deleted pod's endpoints polled by others", covered, bound + 30, 0.5)
    worst = max(covered_at.values())
    print(
        f"force-deleted {victim} ({len(orphans)} endpoints): all polled by others after "
        f"{worst:.1f} s (first {min(covered_at.values()):.1f} s; bound: lease {LEASE_DURATION:g} "
        f"s + interval {POLL:g} s = {bound:g} s); its Lease "
        + (f"deleted after {lease_gone[0]:.1f} s" if lease_gone else "left to expire")
        + " (the kubelet still sends SIGTERM with a 2 s minimum grace on a forced delete)"
    )
    # Measured on the node, then asserted with a margin for the 2-core machine: at most the
    # issue's 30 s for a 15 s lease and a 5 s interval.
    assert worst <= bound + 10, covered_at
    ready_operator_pods(node, REPLICAS)  # the Deployment's replacement joins
    time.sleep(2 * POLL)
    after = summaries(node)
    for name in SHARED:
        assert after[name] == before[name], name  # nothing regressed across the takeover


# ---------------------------------------------------------------------------------------------
# 6. a new image tag rolls the pods; helm uninstall leaves the CRD and the users' resources
# ---------------------------------------------------------------------------------------------


class RollWatch(threading.Thread):
    """Once a second during a rolling upgrade: every endpoint whose Ready condition says
    ObservationStale (or whose phase left its value before the roll), and for each shared
    endpoint the longest time between two polls the emulator counted."""

    def __init__(self, node: Any, emulator: EmulatorClient, before: dict[str, tuple[Any, ...]]):
        super().__init__(name="roll-watch", daemon=True)
        self.node, self.emulator, self.before = node, emulator, before
        self.stopping = threading.Event()
        self.stale: dict[str, str] = {}
        self.changed: dict[str, tuple[Any, ...]] = {}
        self.last_poll: dict[str, tuple[int, float]] = {}
        self.longest_gap: dict[str, float] = {}
        self.samples = 0

    def run(self) -> None:
        while not self.stopping.wait(1.0):
            now_ = time.monotonic()
            items = _json(self.node, "get", "ie", "-n", USERS_NS)["items"]
            for obj in items:
                name = obj["metadata"]["name"]
                if condition(obj, "Ready").get("reason") == "ObservationStale":
                    self.stale.setdefault(name, condition(obj, "Ready").get("message", ""))
                if name in self.before and summary(obj) != self.before[name]:
                    self.changed.setdefault(name, summary(obj))
            for name, clients in pollers(self.emulator, SHARED).items():
                count = sum(clients.values())
                last = self.last_poll.get(name)
                if last is None or count > last[0]:
                    if last is not None:
                        gap = now_ - last[1]
                        self.longest_gap[name] = max(self.longest_gap.get(name, 0.0), gap)
                    self.last_poll[name] = (count, now_)
            self.samples += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


def test_new_image_tag_rolls_the_pods(node: Any, emulator: EmulatorClient) -> None:
    """Three replicas roll one at a time (maxSurge 1, maxUnavailable 0); each stopping pod hands
    its endpoints over, so no endpoint turns ObservationStale and none regresses."""
    before = {p["metadata"]["uid"] for p in operator_pods(node)}
    assert len(before) == REPLICAS
    statuses = summaries(node)
    watch = RollWatch(node, emulator, statuses)
    watch.start()
    started = time.monotonic()
    try:
        node.helm(
            "upgrade", *install_args("--reuse-values", "--set-string", f"image.tag={NEXT_TAG}")
        )
        node.kubectl(
            "rollout",
            "status",
            f"deployment/{RELEASE}",
            "-n",
            OPERATOR_NS,
            "--timeout=300s",
            timeout=330,
        )
        pods = ready_operator_pods(node, REPLICAS)
        rolled = time.monotonic() - started
        # Three more intervals: a stale mark shows only after 3 intervals without a poll.
        time.sleep(3 * POLL + 2)
    finally:
        watch.stop()
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {f"inferenceops:{NEXT_TAG}"}
    assert not before & {p["metadata"]["uid"] for p in pods}
    gaps = sorted(watch.longest_gap.values())
    print(
        f"\nrolled {REPLICAS} replicas in {rolled:.0f} s; {watch.samples} samples; "
        f"ObservationStale: {len(watch.stale)}; longest gap between two polls of one endpoint: "
        f"{gaps[-1] if gaps else float('nan'):.1f} s (interval {POLL:g} s)"
    )
    assert watch.samples >= 10, "the watch must have seen the roll"
    # Each old pod deleted its Lease as it stopped (SIGTERM): only the new pods are members.
    assert sorted(lease_holders(node)) == sorted(p["metadata"]["name"] for p in pods)
    assert watch.stale == {}, watch.stale
    assert watch.changed == {}, watch.changed
    after = summaries(node)
    for name in EXAMPLES_READY:
        assert after[name] == statuses[name], name


def test_helm_uninstall_keeps_the_crd_and_the_users_resources(node: Any) -> None:
    endpoints_before = sorted(summaries(node))
    pods = {p["metadata"]["name"]: p["metadata"]["uid"] for p in operator_pods(node)}
    owners = {
        lease["spec"]["holderIdentity"]: lease["metadata"].get("ownerReferences")
        for lease in leases(node)
    }
    for name, uid in pods.items():  # each pod's Lease is owned by that pod
        assert owners.get(name) == [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}]
    node.helm("uninstall", RELEASE, "--namespace", OPERATOR_NS, "--wait", "--timeout", "3m")
    wait_until("the operator pods gone", lambda: not operator_pods(node), 120)

    instance = f"app.kubernetes.io/instance={RELEASE}"
    for kinds, scope in (
        (
            "deployments,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets",
            ["-A"],
        ),
        ("clusterroles,clusterrolebindings", []),
    ):
        left = node.kubectl("get", kinds, *scope, "-l", instance, "-o", "name").stdout.split()
        assert left == [], left
    # The uninstall deletes the Lease Role together with the Deployment, so a stopping pod may
    # no longer delete its own Lease; each names its pod as owner, and the garbage collector
    # deletes it with the pod.
    wait_until("the members' Leases gone", lambda: not lease_holders(node), 60)
    node.kubectl("get", "crd", "inferenceendpoints.inferenceops.io")
    assert sorted(summaries(node)) == endpoints_before
    ready = [n for n in EXAMPLES_READY if condition(endpoint(node, n), "Ready")["status"] == "True"]
    assert ready == list(EXAMPLES_READY)  # status stays as last written; nothing blanked it
