"""examples/gitops: renders with plain `kubectl kustomize` (default load restrictor) into the
objects a Flux Kustomization or Argo CD Application would apply.

Tests marked `integration` need the local control plane (fixture `control_plane`, provided by
tests/conftest.py from tests/controlplane/fixtures.py)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import fixtures
from .kstatus import kstatus_verdicts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gitops"
CRDS = ROOT / "crds"
CRD_FILE = CRDS / "inferenceops.io_inferenceendpoints.yaml"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
PROVIDERS = {"friendli", "runpod", "takeoff", "nsModelServer", "dataArtsFabric"}
CREDENTIALED = {"friendli", "runpod", "dataArtsFabric"}
NAMESPACE = "inference"


def kustomize(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def crd_text() -> str:
    """The lead's CRD file when it exists, else the operator's generator output."""
    if CRD_FILE.exists():
        return CRD_FILE.read_text()
    crd = pytest.importorskip("inferenceops.api.crd")
    return crd.crd_yaml()


def render_copy(tmp: Path) -> list[dict[str, Any]]:
    """examples/gitops rendered from a copy whose ../../crds is a stand-in (so the example's
    own content is tested whether or not crds/kustomization.yaml exists yet)."""
    shutil.copytree(EXAMPLE, tmp / "examples" / "gitops")
    (tmp / "crds").mkdir()
    (tmp / "crds" / CRD_FILE.name).write_text(crd_text())
    (tmp / "crds" / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {CRD_FILE.name}\n"
    )
    return kustomize(tmp / "examples" / "gitops")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict[str, Any]]:
    if (CRDS / "kustomization.yaml").exists():
        return kustomize(EXAMPLE)
    return render_copy(tmp_path_factory.mktemp("gitops"))


def of_kind(objs, kind):
    return [o for o in objs if o["kind"] == kind]


def test_renders_in_place() -> None:
    if not (CRDS / "kustomization.yaml").exists():
        pytest.skip("crds/kustomization.yaml (listing the CRD) not added yet")
    objs = kustomize(EXAMPLE)
    assert len(of_kind(objs, "CustomResourceDefinition")) == 3


def test_kinds(rendered) -> None:
    assert Counter(o["kind"] for o in rendered) == Counter(
        {
            "Namespace": 1,
            "CustomResourceDefinition": 3,
            # crds/ brings the Secret-access admission policies along (one per kind)
            "ValidatingAdmissionPolicy": 3,
            "ValidatingAdmissionPolicyBinding": 3,
            "Secret": 1,
            "InferenceEndpoint": 5,
        }
    )
    crds = of_kind(rendered, "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == {
        f"{plural}.inferenceops.io"
        for plural in ("inferenceendpoints", "inferenceproviders", "clusterinferenceproviders")
    }
    assert all("namespace" not in c["metadata"] for c in crds)
    assert of_kind(rendered, "Namespace")[0]["metadata"]["name"] == NAMESPACE


def test_one_endpoint_per_provider(rendered) -> None:
    seen = []
    for ep in of_kind(rendered, "InferenceEndpoint"):
        assert ep["apiVersion"] == fixtures.API_VERSION
        assert ep["metadata"]["namespace"] == NAMESPACE
        blocks = set(ep["spec"]) & PROVIDERS
        assert len(blocks) == 1, (ep["metadata"]["name"], ep["spec"])
        assert set(ep["spec"]) - PROVIDERS <= {"pollInterval"}
        assert re.fullmatch(r"\d+(s|m|h)", ep["spec"]["pollInterval"])
        seen += blocks
    assert sorted(seen) == sorted(PROVIDERS)


def test_secret_is_generated_and_referenced(rendered) -> None:
    (secret,) = of_kind(rendered, "Secret")
    name = secret["metadata"]["name"]
    assert re.fullmatch(r"provider-credentials-[a-z0-9]{10}", name), name
    assert secret["metadata"]["namespace"] == NAMESPACE
    assert secret["type"] == "Opaque"
    keys = set(secret["data"])
    refs = 0
    for ep in of_kind(rendered, "InferenceEndpoint"):
        for provider, block in ep["spec"].items():
            if provider in CREDENTIALED:
                ref = block["credentialsSecretRef"]
                assert ref["name"] == name, "kustomizeconfig.yaml nameReference not applied"
                assert ref["key"] in keys
                refs += 1
    assert refs == len(CREDENTIALED)


def test_specs_match_the_field_formats(rendered) -> None:
    specs = {
        p: ep["spec"][p]
        for ep in of_kind(rendered, "InferenceEndpoint")
        for p in ep["spec"]
        if p in PROVIDERS
    }
    daf = specs["dataArtsFabric"]
    assert re.fullmatch(r"[A-Za-z0-9-]{1,36}", daf["workspaceId"])
    assert re.fullmatch(r"[A-Za-z0-9-]{32,36}", daf["endpointId"])
    assert specs["runpod"].get("api", "v2") in {"v1", "v2"}
    for p in ("takeoff", "nsModelServer", "dataArtsFabric"):
        assert re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", specs[p]["url"])


def test_specs_parse_with_the_operator(rendered) -> None:
    api = pytest.importorskip("inferenceops.api.v1alpha1")
    for ep in of_kind(rendered, "InferenceEndpoint"):
        api.parse_spec(ep["spec"])  # raises InvalidSpecError


def test_argocd_application_points_at_the_example() -> None:
    text = (EXAMPLE / "argocd-application.yaml").read_text()
    app = yaml.safe_load(text)
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    assert app["spec"]["source"]["path"] == "examples/gitops"
    assert app["spec"]["destination"]["namespace"] == NAMESPACE
    kust = yaml.safe_load((EXAMPLE / "kustomization.yaml").read_text())
    assert "argocd-application.yaml" not in kust.get("resources", [])


def test_rendered_endpoints_are_not_current_before_the_operator_runs(rendered) -> None:
    """As rendered (no status) kstatus would say Current; as the API server returns them with
    the recommended CRD default, InProgress."""
    eps = of_kind(rendered, "InferenceEndpoint")
    for ep in eps:
        ep["metadata"]["generation"] = 1
    assert {v.status for v in kstatus_verdicts(eps)} == {"Current"}
    defaulted = [{**copy.deepcopy(ep), "status": dict(fixtures.CRD_STATUS_DEFAULT)} for ep in eps]
    assert {v.status for v in kstatus_verdicts(defaulted)} == {"InProgress"}


# ---- against the local API server ------------------------------------------------------------


def _apply_crd(cp, crd: dict[str, Any]) -> None:
    cp.kubectl("apply", "-f", "-", input=json.dumps(crd))
    cp.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", f"crd/{crd['metadata']['name']}"
    )


def _get_json(cp, *args) -> dict[str, Any]:
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


@pytest.mark.integration
def test_server_dry_run_apply(control_plane, rendered) -> None:
    """Every rendered object passes the real API server's validation (CRD schema, CEL rules)."""
    cp = control_plane
    for crd in of_kind(rendered, "CustomResourceDefinition"):
        _apply_crd(cp, crd)
    cp.kubectl("apply", "-f", "-", input=json.dumps(of_kind(rendered, "Namespace")[0]))
    rest = [o for o in rendered if o["kind"] not in ("CustomResourceDefinition", "Namespace")]
    out = cp.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rest}),
    )
    assert out.stdout.count("(server dry run)") == len(rest), out.stdout


@pytest.mark.integration
def test_read_back_from_api_server(control_plane, rendered) -> None:
    """Applied for real, read back: the endpoints (no operator running) must not look Current
    to kstatus -- this holds only once the CRD declares status.default (docs/gitops.md)."""
    cp = control_plane
    for crd in of_kind(rendered, "CustomResourceDefinition"):
        _apply_crd(cp, crd)
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rendered}),
    )
    items = _get_json(cp, "inferenceendpoints.inferenceops.io", "-n", NAMESPACE)["items"]
    assert len(items) == 5
    for item in items:
        assert item["metadata"]["generation"] == 1
    verdicts = kstatus_verdicts(items)
    assert [v.status for v in verdicts] == ["InProgress"] * 5, (
        [v.message for v in verdicts],
        [i.get("status") for i in items],
    )


@pytest.mark.integration
def test_status_default_is_applied_on_read(control_plane) -> None:
    """The mechanism on its own, with a copy of the CRD in a throw-away group: a structural
    `default` on .status is applied by the API server to an object stored without status."""
    crd_mod = pytest.importorskip("inferenceops.api.crd")
    crd = copy.deepcopy(crd_mod.crd())
    group = f"t{uuid.uuid4().hex[:8]}.gitops-test.inferenceops.io"
    crd["spec"]["group"] = group
    crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.{group}"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["status"]["default"] = dict(fixtures.CRD_STATUS_DEFAULT)
    cp = control_plane
    _apply_crd(cp, crd)
    try:
        obj = fixtures.endpoint("fresh", status=None)
        obj["apiVersion"] = f"{group}/{fixtures.VERSION}"
        obj["metadata"] = {"name": "fresh", "namespace": "default"}
        created = json.loads(
            cp.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(obj)).stdout
        )
        got = created
        for _ in range(20):  # the informer-fed read path may lag a moment behind the create
            got = _get_json(
                cp, f"{crd['spec']['names']['plural']}.{group}", "fresh", "-n", "default"
            )
            if "status" in got:
                break
            time.sleep(0.25)
        assert got.get("status") == fixtures.CRD_STATUS_DEFAULT, got
        assert kstatus_verdicts([got])[0].status == "InProgress"
    finally:
        cp.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false", check=False)


@pytest.mark.integration
def test_argocd_cm_snippet_merges(control_plane) -> None:
    """`kubectl patch --type merge --patch-file docs/argocd/argocd-cm.yaml` adds the key to an
    existing argocd-cm and keeps what was there."""
    cp = control_plane
    cp.kubectl("create", "namespace", "argocd", check=False)
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "argocd-cm", "namespace": "argocd"},
                "data": {"url": "https://argocd.example.com"},
            }
        ),
    )
    cp.kubectl(
        "-n",
        "argocd",
        "patch",
        "configmap",
        "argocd-cm",
        "--type",
        "merge",
        "--patch-file",
        str(ROOT / "docs" / "argocd" / "argocd-cm.yaml"),
    )
    data = _get_json(cp, "-n", "argocd", "configmap", "argocd-cm")["data"]
    assert data["url"] == "https://argocd.example.com"
    key = "resource.customizations.health.inferenceops.io_InferenceEndpoint"
    assert data[key] == (ROOT / "docs" / "argocd" / "health.lua").read_text()
