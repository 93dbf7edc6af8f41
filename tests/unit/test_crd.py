"""The committed CRD is exactly what the models generate, and has what users depend on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferenceops.api import InvalidSpecError, parse_spec
from inferenceops.api.crd import all_crds, crd, crd_yaml
from inferenceops.api.provider_crd import provider_crd
from inferenceops.api.v1alpha1 import DEFAULT_POLL_INTERVAL_SECONDS
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


def test_the_default_interval_is_the_crd_default_in_seconds() -> None:
    # The operator's fallback (an endpoint whose spec it cannot parse) is this same constant.
    assert DEFAULT_POLL_INTERVAL_SECONDS == 30.0
    ns = {"nsModelServer": {"url": "http://ns.test:8080"}}
    assert parse_spec(ns).poll_interval == DEFAULT_POLL_INTERVAL_SECONDS


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
    for path in sorted((ROOT / "examples" / "providers").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "InferenceEndpoint":
                parse_spec(doc["spec"])
                found += 1
    assert found >= 5


# --- userinfo in URLs and Secret names (issue 14) ------------------------------------------------

USERINFO_URLS = [
    "https://user:pass@api.example.com",
    "http://token@10.0.0.1:3001/v2",
    "https://user:p%40ss@host/path",
]
#: An "@" after the host is part of the path, not userinfo.
PLAIN_URLS = ["https://api.example.com/v2", "http://ns.ml.svc:8080/a@b", "https://h:443/x"]


def _spec(provider: str, **block: Any) -> dict[str, Any]:
    minimal: dict[str, dict[str, Any]] = {
        "friendli": {"endpointId": "ep1", "credentialsSecretRef": {"name": "c", "key": "k"}},
        "runpod": {"endpointId": "ep1", "credentialsSecretRef": {"name": "c", "key": "k"}},
        "takeoff": {"url": "http://takeoff:3001"},
        "nsModelServer": {"url": "http://ns:8080"},
        "dataArtsFabric": {
            "url": "https://fabric.example.com",
            "workspaceId": "ws-1",
            "endpointId": "0b5633ba2b904511ad514346f4d0int1",
            "credentialsSecretRef": {"name": "c", "key": "k"},
        },
    }
    return {provider: minimal[provider] | block}


def _provider_blocks() -> dict[str, Any]:
    spec = _version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return {p.name: spec["properties"][p.name] for p in all_providers()}


def test_every_provider_has_a_url_field() -> None:
    assert all("url" in block["properties"] for block in _provider_blocks().values())


@pytest.mark.parametrize("provider", [p.name for p in all_providers()])
def test_url_userinfo_rule_in_the_crd(provider: str) -> None:
    url = _provider_blocks()[provider]["properties"]["url"]
    [rule] = url["x-kubernetes-validations"]
    assert "credentials belong in a Secret" in rule["message"]
    # The CEL rule is `!self.matches('<RE2>')`; this RE2 reads the same in Python.
    regex = re.fullmatch(r"!self\.matches\('(.+)'\)", rule["rule"])
    assert regex is not None, rule["rule"]
    assert all(re.search(regex.group(1), u) for u in USERINFO_URLS)
    assert not any(re.search(regex.group(1), u) for u in PLAIN_URLS)


@pytest.mark.parametrize("url", USERINFO_URLS)
@pytest.mark.parametrize("provider", [p.name for p in all_providers()])
def test_url_with_userinfo_is_an_invalid_spec(provider: str, url: str) -> None:
    with pytest.raises(InvalidSpecError, match="credentials belong in a Secret"):
        parse_spec(_spec(provider, url=url))


@pytest.mark.parametrize("url", PLAIN_URLS)
@pytest.mark.parametrize("provider", [p.name for p in all_providers()])
def test_url_without_userinfo_is_accepted(provider: str, url: str) -> None:
    assert parse_spec(_spec(provider, url=url)).config.url == url  # type: ignore[attr-defined]


CREDENTIALED = ["friendli", "runpod", "dataArtsFabric"]
BAD_SECRET_NAMES = ["../x", "x/y", "Creds", "a_b", "-a", "a-", ".a", "a..b"]
GOOD_SECRET_NAMES = ["c", "runpod-key", "team.v1", "0a"]


@pytest.mark.parametrize("provider", CREDENTIALED)
def test_secret_name_pattern_in_the_crd(provider: str) -> None:
    ref = _provider_blocks()[provider]["properties"]["credentialsSecretRef"]
    name = ref["properties"]["name"]
    assert name["maxLength"] == 253
    assert all(re.fullmatch(name["pattern"], n) for n in GOOD_SECRET_NAMES)
    assert not any(re.fullmatch(name["pattern"], n) for n in BAD_SECRET_NAMES)


@pytest.mark.parametrize("name", [*BAD_SECRET_NAMES, "a" * 254])
@pytest.mark.parametrize("provider", CREDENTIALED)
def test_bad_secret_name_is_an_invalid_spec(provider: str, name: str) -> None:
    with pytest.raises(InvalidSpecError, match=r"credentialsSecretRef\.name"):
        parse_spec(_spec(provider, credentialsSecretRef={"name": name, "key": "k"}))


@pytest.mark.parametrize("name", [*GOOD_SECRET_NAMES, "a" * 253])
def test_secret_names_kubernetes_accepts_are_accepted(name: str) -> None:
    spec = _spec("runpod", credentialsSecretRef={"name": name, "key": "k"})
    assert parse_spec(spec).config.credentials_secret_ref.name == name  # type: ignore[attr-defined]
