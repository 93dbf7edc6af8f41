"""Generates the CustomResourceDefinition from the models, so the YAML never drifts from the code.

`make crds` writes crds/inferenceops.io_inferenceendpoints.yaml; a unit test fails when the file
and this generator disagree.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel

from ..providers import ProviderConfig, all_providers
from .provider_kinds import (
    CLUSTER_PLURAL,
    NAMESPACED_PLURAL,
    ProviderRef,
)
from .v1alpha1 import (
    CATEGORY,
    DEFAULT_POLL_INTERVAL,
    DURATION_PATTERN,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    VERSION,
    InferenceEndpointStatus,
)

__all__ = ["all_crds", "crd", "crd_yaml", "structural_schema"]

# Keywords a structural schema accepts that pydantic's JSON schema may produce.
_KEEP = (
    "type",
    "description",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "enum",
    "format",
    "maxItems",
    "x-kubernetes-validations",
)


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A Kubernetes structural schema (no $ref, no anyOf-null, no titles) for a pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}))


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        resolved = _convert(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        if "description" in node:
            resolved["description"] = node["description"]
        return resolved
    if "anyOf" in node:
        # Optional[X] appears as anyOf [X, null]; the API server has no null, so X it is.
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union {node['anyOf']} in a structural schema")
        merged = {**_convert(options[0], defs)}
        for key in ("description", "default"):
            if key in node and node[key] is not None:
                merged[key] = node[key]
        return merged
    out: dict[str, Any] = {k: node[k] for k in _KEEP if k in node}
    if "exclusiveMinimum" in node:
        out["minimum"] = node["exclusiveMinimum"]
        out["exclusiveMinimum"] = True
    if node.get("default") is not None:
        out["default"] = node["default"]
    if "enum" in node and "type" not in out:
        out["type"] = "string"
    if "const" in node:
        out["type"], out["enum"] = "string", [node["const"]]
    if isinstance(node.get("additionalProperties"), dict):
        # A map (dict[str, str]): the API server's schema for labels and the like.
        out["type"] = "object"
        out["additionalProperties"] = _convert(node["additionalProperties"], defs)
    elif node.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        out["properties"] = {k: _convert(v, defs) for k, v in node.get("properties", {}).items()}
        required = [r for r in node.get("required", []) if "default" not in node["properties"][r]]
        if required:
            out["required"] = required
    if node.get("type") == "array":
        out["items"] = _convert(node["items"], defs)
    return out


def _spec_schema() -> dict[str, Any]:
    providers = list(all_providers())
    names = [p.name for p in providers]
    properties: dict[str, Any] = {
        "pollInterval": {
            "type": "string",
            "default": DEFAULT_POLL_INTERVAL,
            "pattern": DURATION_PATTERN,
            "maxLength": 32,
            "description": "How often to poll the provider when the endpoint is steady "
            "(a duration such as 30s, 5m; at least 5s).",
        }
    }
    properties["providerRef"] = structural_schema(ProviderRef)
    properties["providerRef"]["description"] = (
        "Use a provider object's account (URL, team or workspace, credentials, request budget) "
        "instead of the credentials in the provider block."
    )
    account_rules: list[dict[str, str]] = []
    for provider in providers:
        block = structural_schema(provider.config_model)
        block["description"] = f"Poll a {provider.display_name} endpoint."
        account_rules += _endpoint_block_rules(provider.name, provider.config_model, block)
        properties[provider.name] = block
    one_of = ", ".join(f"has(self.{n})" for n in names)
    return {
        "type": "object",
        "description": "Which remote endpoint to observe, and how often.",
        "properties": properties,
        "x-kubernetes-validations": [
            {
                "rule": f"[{one_of}].filter(x, x).size() == 1",
                "message": f"exactly one provider block must be set: one of {', '.join(names)}",
            },
            {
                "rule": "duration(self.pollInterval) >= duration('5s')",
                "message": "pollInterval must be at least 5s",
            },
            *account_rules,
        ],
    }


def _camel(name: str, model: type[BaseModel]) -> str:
    return model.model_fields[name].alias or name


def _exactly_one(path: str, fields: list[str]) -> str:
    if len(fields) == 1:
        return f"has({path}.{fields[0]})"
    return "[" + ", ".join(f"has({path}.{f})" for f in fields) + "].filter(x, x).size() == 1"


def _endpoint_block_rules(
    name: str, model: type[ProviderConfig], block: dict[str, Any]
) -> list[dict[str, str]]:
    """What an endpoint's block needs with and without `providerRef`: the fields a provider
    object can supply are required only without one (checked by CEL, not `required`), carry no
    server-side default (an applied default would be indistinguishable from a value the user
    set, and would override the provider object's), and credentials come from one place."""
    shared = [f for f in model.model_fields if f not in model.endpoint_fields]
    for field in shared:
        alias = _camel(field, model)
        block["properties"][alias].pop("default", None)
        if alias in block.get("required", []):
            block["required"].remove(alias)
    if not block.get("required"):
        block.pop("required", None)
    needed = [
        _camel(f, model)
        for f, info in model.model_fields.items()
        if f in shared and info.is_required() and f not in model.credential_fields
    ]
    credentials = [_camel(f, model) for f in model.credential_fields]
    rules = []
    inline = [f"has(self.{name}.{f})" for f in needed]
    if credentials:
        inline.append(_exactly_one(f"self.{name}", credentials))
    if inline:
        what = ", ".join([*needed, " or ".join(credentials)] if credentials else needed)
        rules.append(
            {
                "rule": f"!has(self.{name}) || has(self.providerRef) || "
                + " && ".join(f"({r})" for r in inline),
                "message": f"{name} needs {what} unless spec.providerRef is set",
            }
        )
    if credentials:
        rules.append(
            {
                "rule": f"!has(self.{name}) || !has(self.providerRef) || "
                + " && ".join(f"!has(self.{name}.{c})" for c in credentials),
                "message": f"with spec.providerRef the credentials come from the provider "
                f"object: remove {name}.{' and '.join(credentials)}",
            }
        )
    return rules


def _status_schema(model: type[BaseModel], max_conditions: int) -> dict[str, Any]:
    """The `.status` schema of every kind: the model's, conditions a map keyed by type."""
    schema = structural_schema(model)
    schema["description"] = "Observed state, written by the operator only."
    # Served for objects the operator has not written yet: kstatus (Flux) then reads generation 1
    # vs observed 0 as InProgress instead of calling a never-polled object Current.
    schema["default"] = {"observedGeneration": 0}
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["maxItems"] = max_conditions
    return schema


def _printer_columns() -> list[dict[str, Any]]:
    def condition(kind: str, field: str = "status") -> str:
        return f'.status.conditions[?(@.type=="{kind}")].{field}'

    return [
        {"name": "Provider", "type": "string", "jsonPath": ".status.provider"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": condition("Ready")},
        {"name": "Workers", "type": "string", "jsonPath": ".status.workerSummary"},
        {"name": "Error", "type": "string", "jsonPath": ".status.error"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "priority": 1},
        {"name": "Synced", "type": "string", "jsonPath": condition("Synced"), "priority": 1},
        {"name": "Last Poll", "type": "date", "jsonPath": ".status.lastPollTime", "priority": 1},
        {
            "name": "Message",
            "type": "string",
            "jsonPath": condition("Ready", "message"),
            "priority": 1,
        },
    ]


def crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": [SHORT_NAME],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A model-inference endpoint hosted by a provider; "
                            "the operator polls it and reports its state in status.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _spec_schema(),
                                "status": _status_schema(InferenceEndpointStatus, 16),
                            },
                        }
                    },
                }
            ],
        },
    }


_HEADER = "# Generated by `inferenceops crd` (operator/inferenceops/api/crd.py). Do not edit.\n"


def crd_yaml(document: dict[str, Any] | None = None) -> str:
    return _HEADER + yaml.safe_dump(document or crd(), sort_keys=False, width=100)


def all_crds() -> dict[str, dict[str, Any]]:
    """Every CRD by the file name `make crds` writes it to."""
    from .provider_crd import provider_crd  # it builds on this module's schema helpers

    return {
        f"{GROUP}_{PLURAL}.yaml": crd(),
        f"{GROUP}_{NAMESPACED_PLURAL}.yaml": provider_crd(cluster=False),
        f"{GROUP}_{CLUSTER_PLURAL}.yaml": provider_crd(cluster=True),
    }
