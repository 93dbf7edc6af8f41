"""Generates the ValidatingAdmissionPolicies that let only who may read a Secret name it.

The operator reads the Secrets that InferenceEndpoints and provider objects name, and sends their
values to the URL in the same spec. Without a check, anyone who may create an endpoint could
have the operator send them any Secret of the namespace. These policies (admissionregistration
v1, no webhook server: Kubernetes >= 1.30) make the API server refuse a CREATE or UPDATE of an
InferenceEndpoint, InferenceProvider or ClusterInferenceProvider naming a Secret unless the
requesting user may `get` that Secret: in the object's namespace, or in a
ClusterInferenceProvider's `spec.secretNamespace`.

- Which fields name a Secret is read from the models, not listed by hand: every field a provider
  block declares in `credential_fields`, and every field whose name ends in `SecretRef`, at any
  depth, so a new provider's reference cannot be forgotten (a unit test checks the committed
  YAML equals this generator's output).
- An UPDATE is checked only when what decides which Secret is read and where its value goes
  changed: a Secret reference (name or key), a field of `destination_fields` (`url`...) of a
  block that can name a Secret, or `secretNamespace`. A label change, a reconcile
  annotation or a GitOps re-apply of the same spec by someone without Secret access goes through;
  pointing an existing reference at another server does not.
- `spec.providerRef` is not checked: using a provider object is the delegation provider objects
  exist for; whoever created the provider object passed this check.
- Only the main resource is matched, never `/status`: the operator's status writes are untouched.

`make crds` writes crds/secret-access-policy.yaml (`kubectl apply -k crds/`) and the chart's
templates/secret-access-policy.yaml (names per release; `admissionPolicy.enabled`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import BaseModel

from ..providers import ProviderConfig, all_providers
from .provider_kinds import (
    CLUSTER_KIND,
    CLUSTER_PLURAL,
    NAMESPACED_KIND,
    NAMESPACED_PLURAL,
    account_model,
)
from .v1alpha1 import GROUP, KIND, PLURAL

__all__ = [
    "CHART_TEMPLATE",
    "POLICY_FILE",
    "chart_template_yaml",
    "policy_documents",
    "policy_yaml",
    "secret_ref_paths",
]

#: Where `make crds` writes the policies: crds/ (not a CRD, so not copied into the chart's crds/,
#: which Helm never upgrades) and the chart's templates/.
POLICY_FILE = "secret-access-policy.yaml"
CHART_TEMPLATE = "secret-access-policy.yaml"
#: Name prefix of the policies applied from crds/; the chart's carry its release's name.
DEFAULT_PREFIX = "inferenceops.io"

Path = tuple[str, ...]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field's type (through Optional/Annotated), else None. A model in
    a list or a map cannot be checked by the generated CEL: refuse it rather than skip it."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        models = [m for a in typing.get_args(annotation) if (m := _model_of(a)) is not None]
        if len(models) > 1:
            raise ValueError(f"cannot check a union of several models: {annotation}")
        return models[0] if models else None
    if origin in (list, tuple, set, frozenset, dict):
        if any(_model_of(a) is not None for a in typing.get_args(annotation)):
            raise ValueError(f"cannot check models inside a collection: {annotation}")
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _alias(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].alias or name


def secret_ref_paths(model: type[BaseModel]) -> list[Path]:
    """Paths (camelCase) in a provider block to every object naming a Secret (its `name`)."""
    credentials = set(getattr(model, "credential_fields", ()))
    paths: list[Path] = []

    def walk(current: type[BaseModel], prefix: Path) -> None:
        for name, info in current.model_fields.items():
            alias = _alias(current, name)
            sub = _model_of(info.annotation)
            names_secret = (current is model and name in credentials) or alias.endswith("SecretRef")
            if names_secret:
                if sub is None or "name" not in sub.model_fields:
                    raise ValueError(f"{'.'.join((*prefix, alias))} names a Secret without a name")
                paths.append((*prefix, alias))
            elif sub is not None:
                walk(sub, (*prefix, alias))

    walk(model, ())
    return paths


def _destination_paths(model: type[BaseModel]) -> list[Path]:
    config = model if issubclass(model, ProviderConfig) else None
    fields = config.destination_fields if config is not None else frozenset()
    return [(_alias(model, f),) for f in sorted(fields) if f in model.model_fields]


def _blocks(kind: str) -> Iterator[tuple[str, type[BaseModel]]]:
    for provider in all_providers():
        yield provider.name, (provider.config_model if kind == KIND else account_model(provider))


def _present(root: str, path: Path) -> str:
    return " && ".join(f"has({root}.spec.{'.'.join(path[: i + 1])})" for i in range(len(path)))


def _value(root: str, path: Path) -> str:
    return f"{root}.spec.{'.'.join(path)}"


def _secret_checks(kind: str, where: str) -> list[dict[str, str]]:
    """One validation per field naming a Secret: its message names that Secret and field (a
    message cannot ask the authorizer which of several Secrets was refused)."""
    checks = []
    for block, model in _blocks(kind):
        for path in secret_ref_paths(model):
            field = (block, *path)
            name = f"{_value('object', field)}.name"
            checks.append(
                {
                    "expression": f"variables.unchanged || !({_present('object', field)}) || "
                    "authorizer.group('').resource('secrets')"
                    f".namespace(variables.secretNamespace).name({name}).check('get').allowed()",
                    "messageExpression": f"request.userInfo.username + ' may not get Secret ' + "
                    f"{name} + {where} + ', which this {kind} names in spec.{'.'.join(field)}: "
                    "only who may read a Secret may have the operator use it (or use "
                    "spec.providerRef)'",
                    "reason": "Forbidden",
                }
            )
    return checks


def _same(path: Path) -> str:
    """The field is absent from both objects, or present in both with the same value."""
    new, old = _present("object", path), _present("oldObject", path)
    return (
        f"(({new}) == ({old}) && (!({new}) || {_value('object', path)} == "
        f"{_value('oldObject', path)}))"
    )


def _unchanged(kind: str) -> str:
    """CEL: an UPDATE that leaves every field deciding which Secret is read and where its value
    goes as it was."""
    guarded: list[Path] = []
    for block, model in _blocks(kind):
        # A reference moved to another block shows as one gone and one new.
        if refs := secret_ref_paths(model):
            guarded += [(block, *p) for p in refs + _destination_paths(model)]
    if kind == CLUSTER_KIND:
        guarded.append(("secretNamespace",))
    same = " && ".join(_same(p) for p in guarded)
    return f"request.operation == 'UPDATE' && {same}"


def _policy(kind: str, plural: str, prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if kind == CLUSTER_KIND:
        namespace = "has(object.spec.secretNamespace) ? object.spec.secretNamespace : ''"
        where = "' in namespace ' + variables.secretNamespace + ' (spec.secretNamespace)'"
    else:
        namespace = "request.namespace"
        where = "' in namespace ' + variables.secretNamespace"
    name = f"{prefix}-secret-access-{plural}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            # A CEL error must not let a write through; the integration tests run these.
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        # The main resource only: `/status` (the operator's writes) is not matched.
                        "resources": [plural],
                    }
                ]
            },
            "variables": [
                {"name": "secretNamespace", "expression": namespace},
                {"name": "unchanged", "expression": _unchanged(kind)},
            ],
            "validations": _secret_checks(kind, where),
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return policy, binding


def policy_documents(prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """The three policies (one per kind: each is type-checked against its own schema) and their
    bindings."""
    documents: list[dict[str, Any]] = []
    for kind, plural in (
        (KIND, PLURAL),
        (NAMESPACED_KIND, NAMESPACED_PLURAL),
        (CLUSTER_KIND, CLUSTER_PLURAL),
    ):
        documents += _policy(kind, plural, prefix)
    return documents


_HEADER = (
    "# Generated by `inferenceops admission-policy` (operator/inferenceops/api/admission.py). "
    "Do not edit.\n"
)


def _dump(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, width=100)


def policy_yaml() -> str:
    """crds/secret-access-policy.yaml."""
    return _HEADER + _dump(policy_documents())


_PREFIX_SLOT = "inferenceops-release-prefix"
_LABELS_SLOT = "inferenceops-release-labels"


def chart_template_yaml() -> str:
    """The chart's template: the same documents, named after the release (several releases may
    be installed), labelled as the chart's other objects, and switched by a value."""
    documents = policy_documents(_PREFIX_SLOT)
    for document in documents:
        document["metadata"]["labels"] = _LABELS_SLOT
    text = _dump(documents)
    text = text.replace(_PREFIX_SLOT, '{{ include "inferenceops.clusterName" . }}')
    text = text.replace(
        f"labels: {_LABELS_SLOT}", 'labels:\n    {{- include "inferenceops.labels" . | nindent 4 }}'
    )
    return (
        _HEADER.replace("#", "{{- /*", 1).rstrip("\n")
        + " */}}\n{{- if .Values.admissionPolicy.enabled }}\n"
        + text
        + "{{- end }}\n"
    )
