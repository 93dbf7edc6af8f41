"""The committed CRD is exactly what the models generate, and has what users depend on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from inferenceops.api import parse_spec
from inferenceops.api.crd import crd, crd_yaml
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
    assert set(spec["properties"]) == {"pollInterval", *names}
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert any(all(f"has(self.{n})" in r for n in names) and "size() == 1" in r for r in rules)
    assert "duration(self.pollInterval) >= duration('5s')" in rules
    assert spec["properties"]["pollInterval"]["default"] == "30s"


def test_schema_fields_match_models() -> None:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for provider in all_providers():
        model_fields = {f.alias or name for name, f in provider.config_model.model_fields.items()}
        assert set(spec[provider.name]["properties"]) == model_fields, provider.name
        required = {
            f.alias or name
            for name, f in provider.config_model.model_fields.items()
            if f.is_required()
        }
        assert set(spec[provider.name].get("required", [])) == required, provider.name


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
