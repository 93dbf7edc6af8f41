"""The committed CRD is exactly what the models generate, and has what users depend on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inferenceops.api import parse_spec
from inferenceops.api.crd import all_crds, crd, crd_yaml, provider_crd
from inferenceops.providers import all_providers

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "inferenceops.io_inferenceendpoints.yaml"


def _version() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]  # type: ignore[no-any-return]


def test_committed_crd_matches_models() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), "run `make crds` and commit the result"


def test_names() -> None:
    spec = crd()["spec"]
    assert spec["group"] == "inferenceops.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "InferenceEndpoint",
        "listKind": "InferenceEndpointList",
        "plural": "inferenceendpoints",
        "singular": "inferenceendpoint",
        "shortNames": ["ie"],
        "categories": ["inference"],
    }
    assert _version()["name"] == "v1alpha1" and _version()["subresources"] == {"status": {}}


def test_every_provider_block_and_the_one_of_rule() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    names = [p.name for p in all_providers()]
    assert set(spec["properties"]) == {"pollInterval", "providerRef", *names}
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any(all(f"has(self.{n})" in r for n in names) and "size() == 1" in r for r in rules)
    assert "duration(self.pollInterval) >= duration('5s')" in rules
    assert spec["properties"]["pollInterval"]["default"] == "30s"


def test_schema_fields_match_models() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for provider in all_providers():
        model_fields = {f.alias or name for name, f in provider.config_model.model_fields.items()}
        assert set(spec[provider.name]["properties"]) == model_fields, provider.name
        # What a provider object can supply is required by CEL only without a providerRef.
        required = {
            f.alias or name
            for name, f in provider.config_model.model_fields.items()
            if f.is_required() and name in provider.config_model.endpoint_fields
        }
        assert set(spec[provider.name].get("required", [])) == required, provider.name


def test_provider_ref_rules() -> None:
    rules = {
        r["message"]: r["rule"]
        for r in _version()["schema"]["openAPIV3Schema"]["properties"]["spec"][
            "x-kubernetes-validations"
        ]
    }
    assert rules["friendli needs credentialsSecretRef unless spec.providerRef is set"] == (
        "!has(self.friendli) || has(self.providerRef) || (has(self.friendli.credentialsSecretRef))"
    )
    remove = (
        "with spec.providerRef the credentials come from the provider object: "
        "remove dataArtsFabric.credentialsSecretRef and accessKeySecretRef"
    )
    assert "!has(self.dataArtsFabric.accessKeySecretRef)" in rules[remove]
    # Takeoff and the NS model server have nothing a provider object could supply.
    assert not [m for m in rules if m.startswith(("takeoff", "nsModelServer"))]


def test_shareable_fields_have_no_server_side_default() -> None:
    """A defaulted url or api would look set by the user and override the provider object's."""
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "default" not in spec["friendli"]["properties"]["url"]
    assert "default" not in spec["runpod"]["properties"]["api"]


def _provider_version(cluster: bool) -> dict[str, Any]:
    return provider_crd(cluster=cluster)["spec"]["versions"][0]  # type: ignore[no-any-return]


def test_committed_provider_crds_match_models() -> None:
    for name, document in all_crds().items():
        assert (ROOT / "crds" / name).read_text() == crd_yaml(document), name


def test_provider_kinds_names_and_scope() -> None:
    namespaced, cluster = provider_crd(cluster=False)["spec"], provider_crd(cluster=True)["spec"]
    assert (namespaced["scope"], cluster["scope"]) == ("Namespaced", "Cluster")
    assert namespaced["names"]["shortNames"] == ["ipr"]
    assert cluster["names"]["shortNames"] == ["cipr"]
    assert namespaced["names"]["kind"] == "InferenceProvider"
    assert cluster["names"]["kind"] == "ClusterInferenceProvider"
    for version in (_provider_version(False), _provider_version(True)):
        assert version["subresources"] == {"status": {}}
        columns = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
        assert columns == ["Provider", "Ready", "Reason", "Endpoints", "Age"]


def test_provider_blocks_hold_no_endpoint_fields_and_a_budget() -> None:
    spec = _provider_version(False)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for provider in all_providers():
        block = spec["properties"][provider.name]["properties"]
        assert "endpointId" not in block, provider.name
        assert {"requestsPerSecond", "burst"} <= set(block), provider.name
    assert set(spec["properties"]["takeoff"]["properties"]) == {"requestsPerSecond", "burst"}
    assert spec["properties"]["friendli"]["required"] == ["credentialsSecretRef"]
    messages = [r["message"] for r in spec["x-kubernetes-validations"]]
    assert any(m.startswith("exactly one provider block") for m in messages)
    assert (
        "dataArtsFabric needs exactly one of credentialsSecretRef, accessKeySecretRef" in messages
    )


def test_cluster_provider_names_its_secret_namespace_and_may_restrict_namespaces() -> None:
    spec = _provider_version(True)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"secretNamespace", "conditions"} <= set(spec["properties"])
    condition = spec["properties"]["conditions"]["items"]["properties"]
    assert set(condition) == {"namespaces", "namespaceSelector"}
    labels = condition["namespaceSelector"]["properties"]["matchLabels"]
    assert labels["additionalProperties"] == {"type": "string"}
    assert "secretNamespace is required with credentials" in [
        r["message"] for r in spec["x-kubernetes-validations"]
    ]
    assert (
        "secretNamespace"
        not in (
            _provider_version(False)["schema"]["openAPIV3Schema"]["properties"]["spec"][
                "properties"
            ]
        )
    )


def test_structural_schema_has_no_json_schema_leftovers() -> None:
    text = yaml.safe_dump(crd())
    for leftover in ("$ref", "anyOf", "title:", "$defs", "null"):
        assert leftover not in text, leftover


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in _version()["additionalPrinterColumns"]}
    assert [c["name"] for c in _version()["additionalPrinterColumns"] if "priority" not in c] == [
        "Provider",
        "Phase",
        "Ready",
        "Workers",
        "Error",
        "Age",
    ]
    assert {n for n, c in columns.items() if c.get("priority") == 1} == {
        "Endpoint",
        "Synced",
        "Last Poll",
        "Message",
    }
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_status_conditions_are_a_map_keyed_by_type() -> None:
    status = _version()["schema"]["openAPIV3Schema"]["properties"]["status"]
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {
        "type",
        "status",
        "reason",
        "lastTransitionTime",
    }


def test_examples_are_valid_specs() -> None:
    found = 0
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "InferenceEndpoint":
                parse_spec(doc["spec"])
                found += 1
    assert found >= 5
