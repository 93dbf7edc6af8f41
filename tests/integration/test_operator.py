"""The real operator (`inferenceops run`) against a real kube-apiserver and the emulator."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import TOKEN, EmulatorClient, OperatorProcess, condition, get_ie, wait_until

INTERVAL = "5s"


@dataclass(frozen=True)
class Script:
    """How to drive one provider's endpoint through the emulator's control API."""

    provider: str
    key: tuple[str, ...]  # the endpoint's key in the emulator
    spec: dict[str, Any]
    provisioning: dict[str, Any]
    running: dict[str, Any]
    failed: dict[str, Any]
    failed_code: str


def scripts(base: str) -> dict[str, Script]:
    creds = {"name": "creds", "key": "token"}
    da_id = "0b5633ba2b904511ad514346f4d0int1"
    return {
        s.provider: s
        for s in [
            Script(
                "friendli",
                ("fr-int-1",),
                {
                    "friendli": {
                        "endpointId": "fr-int-1",
                        "url": f"{base}/friendli",
                        "credentialsSecretRef": creds,
                    }
                },
                {"status": "INITIALIZING", "phase": "DOWNLOADING_MODEL"},
                {
                    "status": "RUNNING",
                    "curr_replicas": 1,
                    "desired_replicas": 1,
                    "autoscaling_min": 0,
                    "autoscaling_max": 2,
                },
                {"status": "FAILED", "error_code": "WORKLOAD_INIT_DOWNLOAD_ERROR"},
                "WORKLOAD_INIT_DOWNLOAD_ERROR",
            ),
            Script(
                "runpod",
                ("rpint1",),
                {
                    "runpod": {
                        "endpointId": "rpint1",
                        "url": f"{base}/runpod/v2",
                        "credentialsSecretRef": creds,
                    }
                },
                {"workers": ["INITIALIZING"], "workers_min": 0, "workers_max": 2},
                {"workers": ["RUNNING", "IDLE"], "workers_min": 0, "workers_max": 2},
                {"workers": ["UNHEALTHY"], "workers_min": 0, "workers_max": 2},
                "WorkersUnhealthy",
            ),
            Script(
                "takeoff",
                ("tk-int-1",),
                {"takeoff": {"url": f"{base}/takeoff/tk-int-1"}},
                {"loading": ["llama"]},
                {"live": ["llama"]},
                {"dead": ["llama"]},
                "ReadersDead",
            ),
            Script(
                "nsModelServer",
                ("ns-int-1",),
                {"nsModelServer": {"url": f"{base}/ns/ns-int-1"}},
                {"stage": "LOADING_MODEL", "progress": 40},
                {"stage": "READY", "progress": 100},
                {
                    "stage": "FAILED",
                    "progress": 100,
                    "errors": [{"errorType": "INVALID_MODEL", "cause": "cannot load"}],
                },
                "INVALID_MODEL",
            ),
            Script(
                "dataArtsFabric",
                ("ws-int", da_id),
                {
                    "dataArtsFabric": {
                        "url": f"{base}/dataarts",
                        "workspaceId": "ws-int",
                        "endpointId": da_id,
                        "credentialsSecretRef": creds,
                    }
                },
                {"status": "CREATING", "warm_up_num": 1, "max_num": 2},
                {"status": "RUNNING", "warm_up_num": 1, "max_num": 2},
                {
                    "status": "CREATE_FAILED",
                    "error_code": "DataArtsFabric.00020001",
                    "error_msg": "insufficient quota",
                    "warm_up_num": 1,
                    "max_num": 2,
                },
                "DataArtsFabric.00020001",
            ),
        ]
    }


def apply_ie(control_plane: Any, ns: str, name: str, spec: dict[str, Any]) -> None:
    manifest = {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"pollInterval": INTERVAL, **spec},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def wait_phase(
    control_plane: Any, ns: str, name: str, phase: str, timeout: float = 30
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_ie(control_plane, ns, name)
        return obj if (obj.get("status") or {}).get("phase") == phase else None

    return wait_until(f"{ns}/{name} phase {phase}", check, timeout)  # type: ignore[no-any-return]


def event_reasons(control_plane: Any, ns: str, name: str) -> list[str]:
    out = control_plane.kubectl(
        "get", "events", "-n", ns, "-o", "json", f"--field-selector=involvedObject.name={name}"
    )
    return [e["reason"] for e in json.loads(out.stdout)["items"]]


PROVIDERS = ["friendli", "runpod", "takeoff", "nsModelServer", "dataArtsFabric"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_lifecycle(
    provider: str, control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    script = scripts(emulator.base_url)[provider]
    emulator.put(script.provider, *script.key, **script.provisioning)
    apply_ie(control_plane, ns, "ep", script.spec)
    obj = wait_phase(control_plane, ns, "ep", "Provisioning")
    assert condition(obj, "Reconciling")["status"] == "True"
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]

    emulator.put(script.provider, *script.key, **script.running)
    wait_phase(control_plane, ns, "ep", "Running")
    control_plane.kubectl("wait", "--for=condition=Ready", "--timeout=20s", "-n", ns, "ie/ep")
    obj = get_ie(control_plane, ns, "ep")
    assert condition(obj, "Synced")["status"] == "True"
    assert not condition(obj, "Reconciling") and not condition(obj, "Stalled")

    emulator.put(script.provider, *script.key, **script.failed)
    obj = wait_phase(control_plane, ns, "ep", "Failed")
    assert obj["status"]["errorCode"] == script.failed_code
    assert condition(obj, "Stalled")["reason"] == "Failed"
    reasons = wait_until(
        "events",
        lambda: (r := event_reasons(control_plane, ns, "ep")) and "PhaseFailed" in r and r,
        10,
    )
    assert {"PhaseRunning", "PhaseFailed"} <= set(reasons)


def test_invalid_specs_are_rejected_by_the_api_server(
    control_plane: Any, crds: None, ns: str
) -> None:
    cases = {
        "no provider block": ({}, "exactly one provider block"),
        "two blocks": (
            {"nsModelServer": {"url": "http://a"}, "takeoff": {"url": "http://b"}},
            "exactly one provider block",
        ),
        "poll too fast": (
            {"pollInterval": "1s", "nsModelServer": {"url": "http://a"}},
            "pollInterval must be at least 5s",
        ),
        "bad endpoint id": (
            {
                "friendli": {
                    "endpointId": "../etc/passwd",
                    "credentialsSecretRef": {"name": "c", "key": "k"},
                }
            },
            "endpointId",
        ),
        "bad url": ({"nsModelServer": {"url": "file:///etc/passwd"}}, "url"),
        "secret name is a path": (
            {
                "runpod": {
                    "endpointId": "ep1",
                    "credentialsSecretRef": {"name": "../x", "key": "k"},
                }
            },
            "spec.runpod.credentialsSecretRef.name",
        ),
        "queue metrics on v1": (
            {
                "runpod": {
                    "endpointId": "ep1",
                    "api": "v1",
                    "queueMetrics": True,
                    "credentialsSecretRef": {"name": "c", "key": "k"},
                }
            },
            "queueMetrics needs api v2",
        ),
        "queue url with userinfo": (
            {
                "runpod": {
                    "endpointId": "ep1",
                    "queueUrl": "https://user:pass@host.example",
                    "credentialsSecretRef": {"name": "c", "key": "k"},
                }
            },
            "credentials belong in a Secret",
        ),
    }
    # Every provider's URL field refuses user:password@: it would show in status and -o wide.
    userinfo = "https://user:pass@host.example"
    creds = {"credentialsSecretRef": {"name": "c", "key": "k"}}
    for provider, block in {
        "friendli": {"endpointId": "ep1", **creds},
        "runpod": {"endpointId": "ep1", **creds},
        "takeoff": {},
        "nsModelServer": {},
        "dataArtsFabric": {
            "workspaceId": "ws-1",
            "endpointId": "0b5633ba2b904511ad514346f4d0int1",
            **creds,
        },
    }.items():
        cases[f"{provider} url with userinfo"] = (
            {provider: {**block, "url": userinfo}},
            "credentials belong in a Secret",
        )
    for label, (spec, needle) in cases.items():
        manifest = {
            "apiVersion": "inferenceops.io/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": "bad", "namespace": ns},
            "spec": spec,
        }
        out = control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
        assert out.returncode != 0, label
        assert needle in out.stderr, (label, out.stderr)
    # An "@" in the path is not userinfo, and a dotted Secret name is a valid one.
    fine = {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": "fine", "namespace": ns},
        "spec": {
            "runpod": {
                "endpointId": "ep1",
                "url": "https://api.example.com/v2/a@b",
                "queueMetrics": True,
                "credentialsSecretRef": {"name": "team.creds-1", "key": "k"},
            }
        },
    }
    control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(fine))


def test_printer_columns(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    script = scripts(emulator.base_url)["friendli"]
    emulator.put("friendli", "fr-cols", **script.running)
    apply_ie(
        control_plane,
        ns,
        "cols",
        {"friendli": {**script.spec["friendli"], "endpointId": "fr-cols"}},
    )
    wait_phase(control_plane, ns, "cols", "Running")
    out = control_plane.kubectl("get", "inferenceendpoints", "-n", ns).stdout.splitlines()
    assert out[0].split() == ["NAME", "PROVIDER", "PHASE", "READY", "WORKERS", "ERROR", "AGE"]
    assert out[1].split()[:5] == ["cols", "friendli", "Running", "True", "1/1"]
    wide = control_plane.kubectl("get", "ie", "-n", ns, "-o", "wide").stdout.splitlines()
    header = wide[0]
    for column in ("ENDPOINT", "SYNCED", "LAST POLL", "MESSAGE"):
        assert column in header
    assert "fr-cols" in wide[1] and "endpoint is Running" in wide[1]


def test_secret_rotation_and_deletion(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    script = scripts(emulator.base_url)["friendli"]
    emulator.put("friendli", "fr-rot", **script.running)
    apply_ie(
        control_plane, ns, "rot", {"friendli": {**script.spec["friendli"], "endpointId": "fr-rot"}}
    )
    wait_phase(control_plane, ns, "rot", "Running")
    new_token = "rotated-token-0001"
    emulator.set_token("friendli", new_token)
    try:
        obj = wait_until(
            "Unauthorized",
            lambda: (
                (o := get_ie(control_plane, ns, "rot"))
                and condition(o, "Synced").get("reason") == "Unauthorized"
                and o
            ),
            30,
        )
        assert obj["status"]["phase"] == "Running", "last good phase kept"
        assert condition(obj, "Stalled")["reason"] == "Unauthorized"
        control_plane.kubectl(
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            ns,
            f"--from-literal=token={new_token}",
            "--dry-run=client",
            "-o",
            "yaml",
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": ns},
            "stringData": {"token": new_token},
        }
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(secret))
        wait_until(
            "Synced again",
            lambda: condition(get_ie(control_plane, ns, "rot"), "Synced").get("status") == "True",
            30,
        )
        control_plane.kubectl("delete", "secret", "creds", "-n", ns)
        control_plane.kubectl(
            "annotate",
            "ie",
            "rot",
            "-n",
            ns,
            "--overwrite",
            "inferenceops.io/reconcile-requested-at=secret-deleted",
        )
        obj = wait_until(
            "SecretMissing",
            lambda: (
                (o := get_ie(control_plane, ns, "rot"))
                and condition(o, "Synced").get("reason") == "SecretMissing"
                and o
            ),
            20,
        )
        assert obj["status"]["lastHandledReconcileAt"] == "secret-deleted"
        assert new_token not in json.dumps(obj)
    finally:
        emulator.set_token(None, TOKEN)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "status", "status": 500}, "Unreachable"),
        ({"kind": "status", "status": 429, "retry_after": 7}, "RateLimited"),
        ({"kind": "garbage", "mode": "html"}, "BadResponse"),
    ],
)
def test_provider_errors_keep_last_phase(
    fault: dict[str, Any],
    reason: str,
    control_plane: Any,
    emulator: EmulatorClient,
    operator: OperatorProcess,
    ns: str,
) -> None:
    instance = f"ns-err-{reason.lower()}"
    emulator.put("nsModelServer", instance, stage="READY", progress=100)
    apply_ie(
        control_plane, ns, "err", {"nsModelServer": {"url": f"{emulator.base_url}/ns/{instance}"}}
    )
    wait_phase(control_plane, ns, "err", "Running")
    fault_id = emulator.add_fault("nsModelServer", endpoint=instance, **fault)
    try:
        before = emulator.requests(provider="nsModelServer", endpoint=instance)
        obj = wait_until(
            reason,
            lambda: (
                (o := get_ie(control_plane, ns, "err"))
                and condition(o, "Synced").get("reason") == reason
                and o
            ),
            30,
        )
        assert obj["status"]["phase"] == "Running"
        assert condition(obj, "Ready")["status"] == "True", "one failed poll never flips Ready"
        time.sleep(10)
        # Backoff, not a tight loop: at most one poll per ~2 s even right after the failure.
        assert emulator.requests(provider="nsModelServer", endpoint=instance) - before <= 8
        assert reason in event_reasons(control_plane, ns, "err")
    finally:
        emulator.remove_fault(fault_id)
    wait_until(
        "Synced again",
        lambda: condition(get_ie(control_plane, ns, "err"), "Synced").get("status") == "True",
        30,
    )


def test_no_status_writes_in_steady_state(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    if control_plane.audit_log is None:
        pytest.skip("needs the local control plane's audit log (USE_EXISTING_CLUSTER is set)")
    emulator.put("nsModelServer", "ns-steady", stage="READY", progress=100)
    apply_ie(
        control_plane, ns, "steady", {"nsModelServer": {"url": f"{emulator.base_url}/ns/ns-steady"}}
    )
    wait_phase(control_plane, ns, "steady", "Running")
    time.sleep(2)

    def writes() -> int:
        return len(
            control_plane.audit_events(
                objectRef__name="steady",
                objectRef__namespace=ns,
                objectRef__subresource="status",
                verb=("patch", "update"),
                stage="ResponseComplete",
            )
        )

    polls_before = emulator.requests(provider="nsModelServer", endpoint="ns-steady")
    writes_before = writes()
    assert writes_before >= 1
    time.sleep(16)  # three 5 s intervals
    assert emulator.requests(provider="nsModelServer", endpoint="ns-steady") - polls_before >= 2
    assert writes() == writes_before, "a poll that learns nothing new writes nothing"
    # One real change → exactly one write.
    emulator.put("nsModelServer", "ns-steady", stage="LOADING_MODEL", progress=50)
    wait_phase(control_plane, ns, "steady", "Provisioning")
    time.sleep(1)
    assert writes() == writes_before + 1


def test_delete_stops_polling_and_leaves_no_finalizer(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    emulator.put("nsModelServer", "ns-del", stage="READY", progress=100)
    apply_ie(control_plane, ns, "del", {"nsModelServer": {"url": f"{emulator.base_url}/ns/ns-del"}})
    obj = wait_phase(control_plane, ns, "del", "Running")
    assert not obj["metadata"].get("finalizers")
    annotations = obj["metadata"].get("annotations") or {}
    assert not [a for a in annotations if "kopf" in a], annotations
    control_plane.kubectl("delete", "ie", "del", "-n", ns, "--timeout=10s")
    time.sleep(1)
    count = emulator.requests(provider="nsModelServer", endpoint="ns-del")
    time.sleep(11)
    assert emulator.requests(provider="nsModelServer", endpoint="ns-del") == count


def test_reconcile_request_polls_once_at_once(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    emulator.put("nsModelServer", "ns-rec", stage="READY", progress=100)
    manifest = {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": "rec", "namespace": ns},
        "spec": {"pollInterval": "10m", "nsModelServer": {"url": f"{emulator.base_url}/ns/ns-rec"}},
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    wait_phase(control_plane, ns, "rec", "Running")
    before = emulator.requests(provider="nsModelServer", endpoint="ns-rec")
    emulator.put("nsModelServer", "ns-rec", stage="LOADING_MODEL", progress=10)
    control_plane.kubectl(
        "annotate",
        "ie",
        "rec",
        "-n",
        ns,
        "inferenceops.io/reconcile-requested-at=2026-11-23T12:00:00Z",
    )
    obj = wait_phase(control_plane, ns, "rec", "Provisioning", timeout=10)
    assert obj["status"]["lastHandledReconcileAt"] == "2026-11-23T12:00:00Z"
    time.sleep(2)
    assert emulator.requests(provider="nsModelServer", endpoint="ns-rec") - before == 1


def test_restart_carries_on(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    emulator.put("nsModelServer", "ns-restart", stage="LOADING_MODEL", progress=30)
    apply_ie(
        control_plane,
        ns,
        "restart",
        {"nsModelServer": {"url": f"{emulator.base_url}/ns/ns-restart"}},
    )
    apply_ie(
        control_plane,
        ns,
        "doomed",
        {"nsModelServer": {"url": f"{emulator.base_url}/ns/ns-restart"}},
    )
    before = wait_phase(control_plane, ns, "restart", "Provisioning")
    wait_phase(control_plane, ns, "doomed", "Provisioning")
    assert operator.stop() in (0, -15)
    # No finalizer: deleting needs no operator.
    control_plane.kubectl("delete", "ie", "doomed", "-n", ns, "--timeout=10s")
    gone = control_plane.kubectl("get", "ie", "doomed", "-n", ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    emulator.put("nsModelServer", "ns-restart", stage="READY", progress=100)
    operator.restart()
    after = wait_phase(control_plane, ns, "restart", "Running")
    assert after["status"]["lastTransitionTime"] >= before["status"]["lastTransitionTime"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]


def test_runpod_queue_depth_is_opt_in(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    """runpod.queueMetrics: the /health route's queue in status.queue (issue 15)."""
    emulator.put("runpod", "rp-queue", workers=["RUNNING"], jobs={"inQueue": 7, "inProgress": 2})
    emulator.put("runpod", "rp-noqueue", workers=["RUNNING"], jobs={"inQueue": 7})
    base = f"{emulator.base_url}/runpod/v2"
    for name, opted in (("rp-queue", True), ("rp-noqueue", False)):
        block: dict[str, Any] = {
            "endpointId": name,
            "url": base,
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        }
        if opted:
            block |= {"queueMetrics": True, "queueUrl": base}
        apply_ie(control_plane, ns, name, {"runpod": block})
    obj = wait_until(
        "status.queue",
        lambda: (o := get_ie(control_plane, ns, "rp-queue")).get("status", {}).get("queue") and o,
        30,
    )
    assert obj["status"]["queue"] == {"inQueue": 7, "inProgress": 2, "failed": 0}
    plain = wait_phase(control_plane, ns, "rp-noqueue", "Running")
    assert "queue" not in plain["status"]
    assert emulator.requests(provider="runpod", path="/runpod/v2/rp-queue/health") >= 1
    assert emulator.requests(provider="runpod", path="/runpod/v2/rp-noqueue/health") == 0
