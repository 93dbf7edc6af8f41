"""The Secret-access admission policies: the committed files are what the models generate, and
every field naming a Secret is checked. (The policies themselves run against a real API server in
tests/integration/test_admission_policy.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, ClassVar

import pytest
import yaml
from pydantic import BaseModel, Field

from inferenceops.api.admission import (
    chart_template_yaml,
    policy_documents,
    policy_yaml,
    secret_ref_paths,
)
from inferenceops.cli import main
from inferenceops.providers import CredentialedConfig, SecretKeyRef, all_providers

ROOT = Path(__file__).resolve().parents[2]


def test_committed_policy_matches_the_generator() -> None:
    assert (ROOT / "crds" / "secret-access-policy.yaml").read_text() == policy_yaml(), (
        "run `make crds` and commit the result"
    )
    chart = ROOT / "charts" / "inferenceops" / "templates" / "secret-access-policy.yaml"
    assert chart.read_text() == chart_template_yaml(), "run `make crds` and commit the result"


def test_kustomization_applies_the_policy_with_the_crds() -> None:
    kustomization = yaml.safe_load((ROOT / "crds" / "kustomization.yaml").read_text())
    assert "secret-access-policy.yaml" in kustomization["resources"]


def test_the_cli_prints_both_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admission-policy"]) == 0
    assert capsys.readouterr().out == policy_yaml()
    assert main(["admission-policy", "--helm-template"]) == 0
    assert capsys.readouterr().out == chart_template_yaml()


def _policies() -> dict[str, dict]:
    return {
        d["spec"]["matchConstraints"]["resourceRules"][0]["resources"][0]: d
        for d in policy_documents()
        if d["kind"] == "ValidatingAdmissionPolicy"
    }


def _variable(policy: dict, name: str) -> str:
    return next(v["expression"] for v in policy["spec"]["variables"] if v["name"] == name)


def test_every_secret_reference_of_every_kind_is_checked() -> None:
    policies = _policies()
    assert set(policies) == {
        "inferenceendpoints",
        "inferenceproviders",
        "clusterinferenceproviders",
    }
    for plural, policy in policies.items():
        checks = " ".join(v["expression"] for v in policy["spec"]["validations"])
        messages = " ".join(v["messageExpression"] for v in policy["spec"]["validations"])
        for provider in all_providers():
            for field in provider.config_model.credential_fields:
                alias = provider.config_model.model_fields[field].alias
                ref = f"object.spec.{provider.name}.{alias}"
                assert f".name({ref}.name).check('get').allowed()" in checks, (plural, ref)
                assert f"{ref}.name + " in messages, (plural, ref)
                assert f"{ref} ==" in _variable(policy, "unchanged"), (plural, ref)
    # The ones users know by name.
    every = " ".join(str(p["spec"]["validations"]) for p in policies.values())
    for ref in ("friendli.credentialsSecretRef", "dataArtsFabric.accessKeySecretRef"):
        assert ref in every


def test_where_the_secret_is_and_what_is_matched() -> None:
    policies = _policies()
    assert _variable(policies["inferenceendpoints"], "secretNamespace") == "request.namespace"
    assert "object.spec.secretNamespace" in _variable(
        policies["clusterinferenceproviders"], "secretNamespace"
    )
    assert "object.spec.secretNamespace ==" in _variable(
        policies["clusterinferenceproviders"], "unchanged"
    )
    for policy in policies.values():
        spec = policy["spec"]
        assert spec["failurePolicy"] == "Fail"
        (rule,) = spec["matchConstraints"]["resourceRules"]
        assert rule["operations"] == ["CREATE", "UPDATE"]
        assert not any("/" in r for r in rule["resources"]), "status writes must not be matched"
        assert "object.spec.providerRef" not in str(spec), "delegation stays allowed"
        assert "url ==" in _variable(policy, "unchanged"), "redirecting a Secret is a change"
    bindings = [d for d in policy_documents() if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert sorted(b["spec"]["policyName"] for b in bindings) == sorted(
        p["metadata"]["name"] for p in policies.values()
    )
    assert all(b["spec"]["validationActions"] == ["Deny"] for b in bindings)


class _Nested(BaseModel):
    token_secret_ref: Annotated[SecretKeyRef | None, Field(alias="tokenSecretRef")] = None


class _FutureConfig(CredentialedConfig):
    """A new provider naming a second Secret, nested and not in credential_fields."""

    credential_fields: ClassVar[tuple[str, ...]] = ("credentials_secret_ref",)
    extra: Annotated[_Nested | None, Field(alias="extra")] = None


def test_a_new_secret_reference_is_found_without_being_listed() -> None:
    assert secret_ref_paths(_FutureConfig) == [
        ("credentialsSecretRef",),
        ("extra", "tokenSecretRef"),
    ]


class _ListOfRefs(CredentialedConfig):
    more: list[_Nested] = []


def test_a_reference_the_policy_cannot_check_fails_generation() -> None:
    with pytest.raises(ValueError, match="inside a collection"):
        secret_ref_paths(_ListOfRefs)


def test_every_field_the_policies_read_is_in_the_kinds_schema() -> None:
    """A path the CRD does not have would be a type-checking warning, and at run time an error
    that failurePolicy Fail turns into refusing every write."""
    from inferenceops.api.crd import all_crds

    schemas = {
        c["spec"]["names"]["plural"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for c in all_crds().values()
    }
    for plural, policy in _policies().items():
        text = yaml.safe_dump(policy["spec"], width=10_000)
        paths = set(re.findall(r"(?:oldObject|object)\.spec((?:\.[A-Za-z]+)+)", text))
        assert paths, plural
        for path in paths:
            node = schemas[plural]["properties"]["spec"]
            for part in path.strip(".").split("."):
                assert part in node.get("properties", {}), (plural, path)
                node = node["properties"][part]
