"""The Secret-access admission policies (crds/secret-access-policy.yaml) in a real API server:
only who may `get` a Secret can create or change an object naming it; delegation through
`spec.providerRef` and the operator's status writes are not affected.

Each case is a `kubectl --as=<user> ... --dry-run=server` (admission runs for dry runs too, and
nothing is stored) or a real write where the object must exist. Users:
- `author`: may create and change the three kinds, may read no Secret;
- `reader`: the same, and may `get` Secrets in the test namespace (not in the vault namespace);
- `vault-reader`: the same as author, and may `get` Secrets in the vault namespace only.

The policies are applied for this module and removed after it (failurePolicy Fail: a CEL error
would refuse every write, which these tests would show).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from .conftest import ROOT, wait_until

pytestmark = pytest.mark.integration

API = "inferenceops.io/v1alpha1"
POLICY = ROOT / "crds" / "secret-access-policy.yaml"
AUTHOR, READER, VAULT_READER = "it-author", "it-secret-reader", "it-vault-reader"
DA_ID = "0b5633ba2b904511ad514346f4d0prv1"
KINDS = ["inferenceendpoints", "inferenceproviders", "clusterinferenceproviders"]


def _apply(cp: Any, *documents: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def _as(cp: Any, user: str, *args: str, input: str | None = None) -> Any:
    return cp.kubectl(f"--as={user}", *args, input=input, check=False)


def dry_run(cp: Any, user: str, document: dict[str, Any]) -> Any:
    return _as(cp, user, "apply", "--dry-run=server", "-f", "-", input=json.dumps(document))


def refused(result: Any, secret: str, namespace: str) -> bool:
    return (
        result.returncode != 0
        and f"may not get Secret {secret} in namespace {namespace}" in result.stderr
    )


def endpoint(namespace: str, spec: dict[str, Any], name: str = "ep") -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"pollInterval": "5s", **spec},
    }


def friendli(secret: str = "creds", key: str = "token", **extra: Any) -> dict[str, Any]:
    return {
        "friendli": {
            "endpointId": "fr-1",
            "url": "https://friendli.invalid",
            "credentialsSecretRef": {"name": secret, "key": key},
            **extra,
        }
    }


@pytest.fixture(scope="module")
def policy(control_plane: Any, crds: None) -> Iterator[None]:
    control_plane.kubectl("apply", "-f", str(POLICY))
    yield
    control_plane.kubectl("delete", "-f", str(POLICY), "--ignore-not-found")


@pytest.fixture
def users(control_plane: Any, policy: None, ns: str) -> Iterator[str]:
    """The three users, allowed in `ns` (and cluster-wide for the cluster kind); returns the
    vault namespace (with a Secret `shared`)."""
    vault = f"{ns}-vault"
    control_plane.kubectl("create", "namespace", vault)
    control_plane.kubectl(
        "create", "secret", "generic", "shared", "-n", vault, "--from-literal=token=x"
    )
    author_rules = [
        {
            "apiGroups": ["inferenceops.io"],
            "resources": KINDS,
            "verbs": ["get", "list", "create", "update", "patch"],
        },
        {
            "apiGroups": ["inferenceops.io"],
            "resources": [f"{k}/status" for k in KINDS],
            "verbs": ["get", "patch", "update"],
        },
    ]
    secret_rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    role = f"{ns}-author"

    def binding(role_kind: str, role_name: str, user: str, namespace: str = "") -> dict:
        kind = "ClusterRoleBinding" if not namespace else "RoleBinding"
        name = f"{role_name}-{user}"
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace} if namespace else {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": role_kind,
                "name": role_name,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }

    _apply(
        control_plane,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": author_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "secrets", "namespace": ns},
            "rules": secret_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "secrets-vault", "namespace": vault},
            "rules": secret_rules,
        },
        *(binding("ClusterRole", role, user) for user in (AUTHOR, READER, VAULT_READER)),
        binding("Role", "secrets", READER, ns),
        binding("Role", "secrets-vault", VAULT_READER, vault),
    )
    # RBAC and the policies take effect within moments: wait until both show.
    wait_until(
        "the policy refusing and RBAC allowing",
        lambda: (
            refused(dry_run(control_plane, AUTHOR, endpoint(ns, friendli())), "creds", ns)
            and dry_run(control_plane, READER, endpoint(ns, friendli())).returncode == 0
        ),
        30,
    )
    yield vault
    for user in (AUTHOR, READER, VAULT_READER):
        control_plane.kubectl("delete", "clusterrolebinding", f"{role}-{user}", check=False)
    control_plane.kubectl("delete", "clusterrole", role, check=False)


def test_an_inline_credentials_secret_ref(control_plane: Any, users: str, ns: str) -> None:
    document = endpoint(ns, friendli())
    result = dry_run(control_plane, AUTHOR, document)
    assert refused(result, "creds", ns), result.stderr
    assert "it-author may not get Secret creds" in result.stderr  # who, which, in one line
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert dry_run(control_plane, READER, document).returncode == 0


def test_a_dataarts_access_key_secret_ref(control_plane: Any, users: str, ns: str) -> None:
    document = endpoint(
        ns,
        {
            "dataArtsFabric": {
                "url": "https://fabric.invalid",
                "workspaceId": "ws-1",
                "endpointId": DA_ID,
                "accessKeySecretRef": {"name": "fabric-keys"},
            }
        },
    )
    assert refused(dry_run(control_plane, AUTHOR, document), "fabric-keys", ns)
    # `reader` may get every Secret of the namespace, existing or not.
    assert dry_run(control_plane, READER, document).returncode == 0


def test_an_inference_provider(control_plane: Any, users: str, ns: str) -> None:
    document = {
        "apiVersion": API,
        "kind": "InferenceProvider",
        "metadata": {"name": "acct", "namespace": ns},
        "spec": {"runpod": {"credentialsSecretRef": {"name": "creds", "key": "token"}}},
    }
    assert refused(dry_run(control_plane, AUTHOR, document), "creds", ns)
    assert dry_run(control_plane, READER, document).returncode == 0


def test_a_cluster_provider_is_checked_in_its_secret_namespace(
    control_plane: Any, users: str, ns: str
) -> None:
    vault = users
    document = {
        "apiVersion": API,
        "kind": "ClusterInferenceProvider",
        "metadata": {"name": f"cipr-{ns}"},
        "spec": {
            "secretNamespace": vault,
            "friendli": {"credentialsSecretRef": {"name": "shared", "key": "token"}},
        },
    }
    result = dry_run(control_plane, AUTHOR, document)
    assert refused(result, "shared", vault) and "(spec.secretNamespace)" in result.stderr
    # Reading Secrets in the test namespace is not reading them in the vault.
    assert refused(dry_run(control_plane, READER, document), "shared", vault)
    assert dry_run(control_plane, VAULT_READER, document).returncode == 0


def test_using_a_provider_object_is_delegation(control_plane: Any, users: str, ns: str) -> None:
    for ref in ({"name": "acct"}, {"kind": "ClusterInferenceProvider", "name": "shared"}):
        document = endpoint(ns, {"providerRef": ref, "friendli": {"endpointId": "fr-1"}})
        result = dry_run(control_plane, AUTHOR, document)
        assert result.returncode == 0, result.stderr


def test_status_writes_and_harmless_updates_pass_a_redirect_does_not(
    control_plane: Any, users: str, ns: str
) -> None:
    _apply(control_plane, endpoint(ns, friendli(), name="owned"))  # by the admin
    status = json.dumps({"status": {"phase": "Running", "observedGeneration": 1}})
    result = _as(
        control_plane,
        AUTHOR,
        *("patch", "ie", "owned", "-n", ns, "--subresource=status", "--type=merge", "-p", status),
    )
    assert result.returncode == 0, result.stderr
    # A label, the reconcile annotation, a re-apply of the same spec: nothing new is read.
    for args in (
        ("label", "ie", "owned", "-n", ns, "team=ml"),
        (
            "annotate",
            "ie",
            "owned",
            "-n",
            ns,
            f"inferenceops.io/reconcile-requested-at={time.time()}",
        ),
        ("patch", "ie", "owned", "-n", ns, "--type=merge", "-p", '{"spec":{"pollInterval":"10s"}}'),
    ):
        result = _as(control_plane, AUTHOR, *args)
        assert result.returncode == 0, (args, result.stderr)
    result = _as(
        control_plane,
        AUTHOR,
        "apply",
        "-f",
        "-",
        input=json.dumps(endpoint(ns, friendli(), name="owned")),
    )
    assert result.returncode == 0, result.stderr
    # Sending the same Secret elsewhere, or another key of it, is naming it anew.
    for patch in (
        {"spec": {"friendli": {"url": "https://attacker.invalid"}}},
        {"spec": {"friendli": {"credentialsSecretRef": {"key": "password"}}}},
    ):
        result = _as(
            control_plane,
            AUTHOR,
            *("patch", "ie", "owned", "-n", ns, "--type=merge", "-p", json.dumps(patch)),
        )
        assert refused(result, "creds", ns), (patch, result.stderr)
        assert (
            _as(
                control_plane,
                READER,
                *(
                    "patch",
                    "ie",
                    "owned",
                    "-n",
                    ns,
                    "--type=merge",
                    "-p",
                    json.dumps(patch),
                    "--dry-run=server",
                ),
            ).returncode
            == 0
        )


def test_the_policy_is_what_the_kustomization_applies(control_plane: Any, policy: None) -> None:
    """`kubectl apply -k crds/` installs the policies with the CRDs."""
    out = control_plane.kubectl("kustomize", str(ROOT / "crds")).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(out) if d]
    assert kinds.count("ValidatingAdmissionPolicy") == 3
    assert kinds.count("ValidatingAdmissionPolicyBinding") == 3
    names = json.loads(
        control_plane.kubectl("get", "validatingadmissionpolicies", "-o", "json").stdout
    )
    assert {f"inferenceops.io-secret-access-{k}" for k in KINDS} <= {
        i["metadata"]["name"] for i in names["items"]
    }
