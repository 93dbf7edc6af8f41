"""InferenceProvider and ClusterInferenceProvider against a real kube-apiserver: what its schema
and CEL rules admit, and what the operator does with an endpoint's providerRef."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from .conftest import (
    ROOT,
    TOKEN,
    VAULT,
    EmulatorClient,
    OperatorProcess,
    condition,
    get_ie,
    wait_until,
)

API = "inferenceops.io/v1alpha1"
DA_ID = "0b5633ba2b904511ad514346f4d0prv1"


def apply(control_plane: Any, *documents: dict[str, Any], check: bool = True) -> Any:
    return control_plane.kubectl(
        "apply", "-f", "-", input=yaml.safe_dump_all(documents), check=check
    )


def provider(name: str, namespace: str, block: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "InferenceProvider",
        "metadata": {"name": name, "namespace": namespace},
        "spec": block,
    }


def endpoint(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"pollInterval": "5s", **spec},
    }


FRIENDLI_ACCOUNT = {
    "friendli": {
        "url": "http://127.0.0.1:1/friendli",
        "credentialsSecretRef": {"name": "creds", "key": "token"},
        "requestsPerSecond": 5,
        "burst": 10,
    }
}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            provider(
                "two", "default", {**FRIENDLI_ACCOUNT, "runpod": FRIENDLI_ACCOUNT["friendli"]}
            ),
            "exactly one provider block",
        ),
        (provider("none", "default", {}), "exactly one provider block"),
        (
            provider(
                "both",
                "default",
                {
                    "dataArtsFabric": {
                        "credentialsSecretRef": {"name": "c", "key": "t"},
                        "accessKeySecretRef": {"name": "c"},
                    }
                },
            ),
            "exactly one of credentialsSecretRef, accessKeySecretRef",
        ),
        (
            {
                "apiVersion": API,
                "kind": "ClusterInferenceProvider",
                "metadata": {"name": "no-secret-namespace"},
                "spec": FRIENDLI_ACCOUNT,
            },
            "secretNamespace is required",
        ),
        (
            endpoint(
                "ref-and-creds",
                "default",
                {
                    "providerRef": {"name": "acct"},
                    "friendli": {
                        "endpointId": "x",
                        "credentialsSecretRef": {"name": "c", "key": "t"},
                    },
                },
            ),
            "the credentials come from the provider object",
        ),
        (
            endpoint("neither", "default", {"friendli": {"endpointId": "x"}}),
            "friendli needs credentialsSecretRef unless spec.providerRef is set",
        ),
        (
            endpoint(
                "da-inline-no-url",
                "default",
                {
                    "dataArtsFabric": {
                        "endpointId": DA_ID,
                        "credentialsSecretRef": {"name": "c", "key": "t"},
                    }
                },
            ),
            "dataArtsFabric needs url, workspaceId",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else v["metadata"]["name"],
)
def test_the_api_server_rejects(
    control_plane: Any, crds: None, document: Any, message: str
) -> None:
    result = apply(control_plane, document, check=False)
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr


def test_the_api_server_admits_provider_objects_and_references(
    control_plane: Any, crds: None
) -> None:
    cluster = {
        "apiVersion": API,
        "kind": "ClusterInferenceProvider",
        "metadata": {"name": "admitted"},
        "spec": {
            "secretNamespace": "default",
            "conditions": [
                {"namespaces": ["default"]},
                {"namespaceSelector": {"matchLabels": {"team": "ml"}}},
            ],
            "dataArtsFabric": {
                "url": "https://fabric.example",
                "workspaceId": "ws-1",
                "accessKeySecretRef": {"name": "ak"},
            },
        },
    }
    documents = [
        provider("admitted", "default", FRIENDLI_ACCOUNT),
        provider("takeoff-budget", "default", {"takeoff": {"requestsPerSecond": 2}}),
        cluster,
        endpoint(
            "by-ref",
            "default",
            {"providerRef": {"name": "admitted"}, "friendli": {"endpointId": "x"}},
        ),
        endpoint(
            "da-by-ref",
            "default",
            {
                "providerRef": {"kind": "ClusterInferenceProvider", "name": "admitted"},
                "dataArtsFabric": {"endpointId": DA_ID},
            },
        ),
    ]
    try:
        apply(control_plane, *documents)
        got = json.loads(
            control_plane.kubectl(
                "get", "clusterinferenceprovider", "admitted", "-o", "json"
            ).stdout
        )
        # The access key's Secret keys are defaulted by the API server.
        assert got["spec"]["dataArtsFabric"]["accessKeySecretRef"] == {
            "name": "ak",
            "accessKeyIdKey": "accessKeyId",
            "secretAccessKeyKey": "secretAccessKey",
        }
        names = control_plane.kubectl("get", "ipr", "-n", "default", "-o", "name").stdout.split()
        assert "inferenceprovider.inferenceops.io/admitted" in names
        ie = json.loads(
            control_plane.kubectl("get", "ie", "by-ref", "-n", "default", "-o", "json").stdout
        )
        assert "url" not in ie["spec"]["friendli"]  # no server-side default to override the account
    finally:
        control_plane.kubectl("delete", "ie", "by-ref", "da-by-ref", "-n", "default", check=False)
        control_plane.kubectl(
            "delete", "ipr", "admitted", "takeoff-budget", "-n", "default", check=False
        )
        control_plane.kubectl("delete", "cipr", "admitted", check=False)


# --- the operator resolving providerRef -------------------------------------------------------


def synced_reason(control_plane: Any, ns: str, name: str) -> str | None:
    return condition(get_ie(control_plane, ns, name), "Synced").get("reason")


def wait_reason(control_plane: Any, ns: str, name: str, reason: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        f"{ns}/{name} Synced reason {reason}",
        lambda: (
            (o := get_ie(control_plane, ns, name))
            and condition(o, "Synced").get("reason") == reason
            and o
        ),
        30,
    )


def get_provider(control_plane: Any, ns: str, name: str) -> dict[str, Any]:
    where = ["ipr", name, "-n", ns] if ns else ["cipr", name]
    return json.loads(control_plane.kubectl("get", *where, "-o", "json").stdout)  # type: ignore[no-any-return]


def running(emulator: EmulatorClient, endpoint_id: str) -> None:
    emulator.put(
        "friendli",
        endpoint_id,
        status="RUNNING",
        curr_replicas=1,
        desired_replicas=1,
        autoscaling_min=0,
        autoscaling_max=2,
    )


def test_endpoint_polls_through_an_inference_provider_and_survives_its_deletion(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    running(emulator, "fr-prov-1")
    account = {
        "friendli": {
            "url": f"{emulator.base_url}/friendli",
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        }
    }
    apply(control_plane, provider("acct", ns, account))
    spec = {"providerRef": {"name": "acct"}, "friendli": {"endpointId": "fr-prov-1"}}
    apply(control_plane, endpoint("ep", ns, spec))
    wait_reason(control_plane, ns, "ep", "Polled")
    assert get_ie(control_plane, ns, "ep")["status"]["phase"] == "Running"
    # The provider object's own status: the credentials worked, 1 of 1 endpoints Ready.
    shown = wait_until(
        "the provider's status",
        lambda: (
            (o := get_provider(control_plane, ns, "acct"))
            and (o.get("status") or {}).get("endpointSummary") == "1/1"
            and o
        ),
        30,
    )
    assert condition(shown, "Ready")["reason"] == "Authorized"
    assert shown["status"]["observedGeneration"] == shown["metadata"]["generation"]
    assert shown["status"]["provider"] == "friendli" and shown["status"]["lastSuccessTime"]
    events = control_plane.kubectl(
        "get", "events", "-n", ns, "-o", "json", "--field-selector=involvedObject.name=acct"
    )
    assert "Authorized" in [e["reason"] for e in json.loads(events.stdout)["items"]]
    columns = control_plane.kubectl("get", "ipr", "acct", "-n", ns).stdout.split("\n")[1].split()
    assert columns[:4] == ["acct", "friendli", "True", "Authorized"], columns

    control_plane.kubectl("delete", "ipr", "acct", "-n", ns)
    obj = wait_reason(control_plane, ns, "ep", "ProviderMissing")
    assert condition(obj, "Stalled")["reason"] == "ProviderMissing"
    assert f"InferenceProvider {ns}/acct not found" in condition(obj, "Synced")["message"]
    before = emulator.requests(provider="friendli", endpoint="fr-prov-1")
    time.sleep(6)  # more than the 5 s interval: no polls without an account
    assert emulator.requests(provider="friendli", endpoint="fr-prov-1") == before

    apply(control_plane, provider("acct", ns, account))
    wait_reason(control_plane, ns, "ep", "Polled")
    assert not condition(get_ie(control_plane, ns, "ep"), "Stalled")


def test_cluster_provider_tenancy_and_secret_rotation(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    running(emulator, "fr-prov-2")
    vault = VAULT  # one the operator may read Secrets in (--cluster-secret-namespace)
    name = f"shared-{ns}"
    control_plane.kubectl(
        "create", "secret", "generic", name, "-n", vault, f"--from-literal=token={TOKEN}"
    )
    cip = {
        "apiVersion": API,
        "kind": "ClusterInferenceProvider",
        "metadata": {"name": name},
        "spec": {
            "secretNamespace": vault,
            "conditions": [{"namespaceSelector": {"matchLabels": {"inference": "allowed"}}}],
            "friendli": {
                "url": f"{emulator.base_url}/friendli",
                "credentialsSecretRef": {"name": name, "key": "token"},
            },
        },
    }
    spec = {
        "providerRef": {"kind": "ClusterInferenceProvider", "name": name},
        "friendli": {"endpointId": "fr-prov-2"},
    }
    new_token = "rotated-cluster-token-0002"
    try:
        apply(control_plane, cip)
        apply(control_plane, endpoint("ep", ns, spec))
        obj = wait_reason(control_plane, ns, "ep", "ProviderNotAllowed")
        assert condition(obj, "Stalled")["reason"] == "ProviderNotAllowed"
        assert emulator.requests(provider="friendli", endpoint="fr-prov-2") == 0

        control_plane.kubectl("label", "namespace", ns, "inference=allowed")
        wait_reason(control_plane, ns, "ep", "Polled")

        # Rotation: the provider's Secret, in its own namespace, takes effect at the next poll.
        emulator.set_token("friendli", new_token)
        wait_reason(control_plane, ns, "ep", "Unauthorized")
        shown = wait_until(
            "the cluster provider Unauthorized",
            lambda: (
                (o := get_provider(control_plane, "", name))
                and condition(o, "Ready").get("reason") == "Unauthorized"
                and o
            ),
            30,
        )
        assert condition(shown, "Stalled")["reason"] == "Unauthorized"
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": vault},
            "stringData": {"token": new_token},
        }
        control_plane.kubectl("apply", "-f", "-", input=json.dumps(secret))
        obj = wait_reason(control_plane, ns, "ep", "Polled")
        assert new_token not in json.dumps(obj)
    finally:
        emulator.set_token(None, TOKEN)
        control_plane.kubectl("delete", "ie", "ep", "-n", ns, check=False)
        control_plane.kubectl("delete", "cipr", name, check=False)


def test_a_cluster_provider_reading_secrets_elsewhere_is_stalled_and_sends_nothing(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    """The session operator may read cluster providers' Secrets in `default` and VAULT only:
    one naming the test namespace (whose Secret `creds` holds a valid token) reads nothing."""
    running(emulator, "fr-prov-4")
    name = f"elsewhere-{ns}"
    cip = {
        "apiVersion": API,
        "kind": "ClusterInferenceProvider",
        "metadata": {"name": name},
        "spec": {
            "secretNamespace": ns,
            "friendli": {
                "url": f"{emulator.base_url}/friendli",
                "credentialsSecretRef": {"name": "creds", "key": "token"},
            },
        },
    }
    spec = {
        "providerRef": {"kind": "ClusterInferenceProvider", "name": name},
        "friendli": {"endpointId": "fr-prov-4"},
    }
    try:
        apply(control_plane, cip, endpoint("ep", ns, spec))
        obj = wait_reason(control_plane, ns, "ep", "SecretNamespaceNotAllowed")
        message = condition(obj, "Synced")["message"]
        assert f"namespace {ns}" in message and "--cluster-secret-namespace" in message
        assert condition(obj, "Stalled")["reason"] == "SecretNamespaceNotAllowed"
        shown = wait_until(
            "the cluster provider Stalled",
            lambda: (
                (o := get_provider(control_plane, "", name))
                and condition(o, "Stalled").get("reason") == "SecretNamespaceNotAllowed"
                and o
            ),
            30,
        )
        assert condition(shown, "Ready")["status"] == "False"
        assert emulator.requests(provider="friendli", endpoint="fr-prov-4") == 0
    finally:
        control_plane.kubectl("delete", "ie", "ep", "-n", ns, check=False)
        control_plane.kubectl("delete", "cipr", name, check=False)


def test_the_examples_pass_the_api_servers_validation(
    control_plane: Any, crds: None, ns: str
) -> None:
    for path in sorted((ROOT / "examples" / "provider-accounts").glob("*.yaml")):
        out = control_plane.kubectl(
            "apply", "--dry-run=server", "-n", ns, "-f", str(path), check=False
        )
        assert out.returncode == 0, (path.name, out.stderr)
        assert out.stdout.count("(server dry run)") >= 2, out.stdout


def test_dataarts_with_an_access_key_outlives_the_token_expiry(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    """The IAM token expires (emulated, as after 24 hours): the endpoint on a token says
    Unauthorized; the one on an access key pair keeps being polled, with no change by anyone."""
    ak, sk = "HPUAINTEGRATIONKEY01", "integrationSecretKey0123456789abcdefghij"
    endpoint_ids = {"on-token": DA_ID, "on-keys": DA_ID[:-4] + "keys"}
    for endpoint_id in endpoint_ids.values():
        emulator.put("dataArtsFabric", "ws-prov", endpoint_id, status="RUNNING", warm_up_num=1)
    emulator.set_access_key("dataArtsFabric", ak, sk)
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        "fabric-keys",
        "-n",
        ns,
        f"--from-literal=accessKeyId={ak}",
        f"--from-literal=secretAccessKey={sk}",
    )
    account = {"url": f"{emulator.base_url}/dataarts", "workspaceId": "ws-prov"}
    apply(
        control_plane,
        provider(
            "on-token",
            ns,
            {
                "dataArtsFabric": {
                    **account,
                    "credentialsSecretRef": {"name": "creds", "key": "token"},
                }
            },
        ),
        provider(
            "on-keys",
            ns,
            {"dataArtsFabric": {**account, "accessKeySecretRef": {"name": "fabric-keys"}}},
        ),
        *(
            endpoint(
                name, ns, {"providerRef": {"name": name}, "dataArtsFabric": {"endpointId": eid}}
            )
            for name, eid in endpoint_ids.items()
        ),
    )
    try:
        for name in endpoint_ids:
            wait_reason(control_plane, ns, name, "Polled")
        emulator.set_token("dataArtsFabric", TOKEN, expires_in=0)
        obj = wait_reason(control_plane, ns, "on-token", "Unauthorized")
        assert obj["status"]["phase"] == "Running", "last good phase kept"
        polled = emulator.requests(provider="dataArtsFabric", endpoint=endpoint_ids["on-keys"])
        time.sleep(12)  # two more 5 s intervals after the expiry
        assert (
            emulator.requests(provider="dataArtsFabric", endpoint=endpoint_ids["on-keys"])
            >= polled + 2
        )
        keys = get_ie(control_plane, ns, "on-keys")
        assert condition(keys, "Synced")["reason"] == "Polled", keys["status"]
        assert condition(keys, "Ready")["status"] == "True"
        assert condition(get_provider(control_plane, ns, "on-keys"), "Ready")["reason"] == (
            "Authorized"
        )
        token_provider = wait_until(
            "the token provider Unauthorized",
            lambda: (
                (o := get_provider(control_plane, ns, "on-token"))
                and condition(o, "Ready").get("reason") == "Unauthorized"
                and o
            ),
            30,
        )
        assert sk not in json.dumps(keys) + json.dumps(token_provider)
    finally:
        emulator.set_token(None, TOKEN)
