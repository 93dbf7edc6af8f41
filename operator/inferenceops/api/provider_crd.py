"""Generates the InferenceProvider and ClusterInferenceProvider CRDs from the models, with the
endpoint CRD's schema helpers (api/crd.py)."""

from __future__ import annotations

from typing import Any

from ..providers import all_providers
from .crd import _camel, _exactly_one, _status_schema, structural_schema
from .provider_kinds import (
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    CLUSTER_SHORT_NAME,
    NAMESPACED_KIND,
    NAMESPACED_PLURAL,
    NAMESPACED_SHORT_NAME,
    InventorySpec,
    NamespaceCondition,
    ProviderObjectStatus,
    account_model,
    allowed_overrides_model,
)
from .v1alpha1 import (
    CATEGORY,
    GROUP,
    VERSION,
)

__all__ = ["provider_crd"]


def _provider_spec_schema(cluster: bool) -> dict[str, Any]:
    providers = list(all_providers())
    names = [p.name for p in providers]
    properties: dict[str, Any] = {}
    rules = [
        {
            "rule": "[" + ", ".join(f"has(self.{n})" for n in names) + "].filter(x, x).size() == 1",
            "message": f"exactly one provider block must be set: one of {', '.join(names)}",
        }
    ]
    credentialed = []
    for provider in providers:
        model = account_model(provider)
        block = structural_schema(model)
        block["description"] = f"A {provider.display_name} account."
        properties[provider.name] = block
        credentials = [_camel(f, model) for f in model.credential_fields]
        if len(credentials) > 1:
            rules.append(
                {
                    "rule": f"!has(self.{provider.name}) || "
                    + _exactly_one(f"self.{provider.name}", credentials),
                    "message": f"{provider.name} needs exactly one of {', '.join(credentials)}",
                }
            )
        if credentials:
            credentialed.append(provider.name)
    overrides = allowed_overrides_model()
    properties["allowedOverrides"] = structural_schema(overrides)
    for name, info in overrides.model_fields.items():
        alias = info.alias or name
        owners = [p.name for p in providers if name in p.config_model.account_fields]
        rules.append(
            {
                "rule": f"!has(self.allowedOverrides) || !has(self.allowedOverrides.{alias}) || "
                + " || ".join(f"has(self.{o})" for o in owners),
                "message": f"allowedOverrides.{alias} applies to a {' or '.join(owners)} block",
            }
        )
    properties["inventory"] = structural_schema(InventorySpec)
    properties["inventory"]["description"] = (
        "Opt-in: list the account's remote endpoints every interval (one listing per account) "
        "and show in status how many no InferenceEndpoint names."
    )
    if cluster:
        properties["secretNamespace"] = {
            "type": "string",
            "maxLength": 63,
            "description": "Namespace of the Secrets the credential references name; a "
            "ClusterInferenceProvider reads Secrets there and nowhere else.",
        }
        properties["conditions"] = {
            "type": "array",
            "maxItems": 16,
            "items": structural_schema(NamespaceCondition),
            "description": "Endpoints in which namespaces may use this provider: any namespace "
            "when unset, else those a condition matches (listed by name or selected by labels).",
        }
        rules.append(
            {
                "rule": " || ".join(f"has(self.{n})" for n in credentialed)
                + " ? has(self.secretNamespace) : true",
                "message": "secretNamespace is required with credentials",
            }
        )
    return {
        "type": "object",
        "description": "The provider account: one provider block.",
        "properties": properties,
        "x-kubernetes-validations": rules,
    }


def _provider_printer_columns() -> list[dict[str, Any]]:
    def condition(kind: str, field: str = "status") -> str:
        return f'.status.conditions[?(@.type=="{kind}")].{field}'

    return [
        {"name": "Provider", "type": "string", "jsonPath": ".status.provider"},
        {"name": "Ready", "type": "string", "jsonPath": condition("Ready")},
        {"name": "Reason", "type": "string", "jsonPath": condition("Ready", "reason")},
        {"name": "Endpoints", "type": "string", "jsonPath": ".status.endpointSummary"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {
            "name": "Last Success",
            "type": "date",
            "jsonPath": ".status.lastSuccessTime",
            "priority": 1,
        },
        {
            # With spec.inventory: the account's endpoints no InferenceEndpoint names.
            "name": "Unmanaged",
            "type": "integer",
            "jsonPath": ".status.inventory.unmanagedEndpoints",
            "priority": 1,
        },
        {
            "name": "Message",
            "type": "string",
            "jsonPath": condition("Ready", "message"),
            "priority": 1,
        },
    ]


def provider_crd(*, cluster: bool) -> dict[str, Any]:
    kind, plural = (
        (CLUSTER_KIND, CLUSTER_PLURAL) if cluster else (NAMESPACED_KIND, NAMESPACED_PLURAL)
    )
    short = CLUSTER_SHORT_NAME if cluster else NAMESPACED_SHORT_NAME
    status = _status_schema(ProviderObjectStatus, 8)
    scope = (
        "cluster-wide; usable from the namespaces its conditions allow"
        if cluster
        else ("usable by InferenceEndpoints of its own namespace")
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": [CATEGORY],
            },
            "scope": "Cluster" if cluster else "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _provider_printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": f"A model-inference provider account ({scope}).",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": _provider_spec_schema(cluster),
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }
