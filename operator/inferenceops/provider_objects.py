"""InferenceProviders and ClusterInferenceProviders as the operator sees them, and the resolution
of an endpoint's `spec.providerRef` into the spec it is polled with.

Tenancy rules (docs/provider-accounts.md):
- an InferenceProvider serves endpoints of its own namespace only (a providerRef has no
  namespace, so nothing else can be named) and its Secrets are read there;
- a ClusterInferenceProvider's Secrets are read in its `secretNamespace`, and when it has
  `conditions` only endpoints in a namespace one of them matches may use it;
- with a provider object's credentials, where requests go (`url`) is the provider object's: an
  endpoint could otherwise send someone else's credentials to a server of its own;
- which team or workspace of the account a request acts on (`ProviderConfig.account_fields`) is
  the provider object's unless its `spec.allowedOverrides` lists the endpoint's value: one key
  often reaches teams the object's owner never meant to share;
- a ClusterInferenceProvider's `secretNamespace` must be one the operator was told it may read
  (`--cluster-secret-namespace`): its author could otherwise name any Secret of the cluster.
A rule broken means no request at all: the endpoint's Synced and Stalled say which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .api import AccountSource
from .api.provider_kinds import (
    ANY_VALUE,
    CLUSTER_KIND,
    NAMESPACED_KIND,
    AccountBudget,
    LabelSelector,
    NamespaceCondition,
    ProviderRef,
    account_model,
    allowed_overrides_model,
)
from .providers import Provider, all_providers
from .providers.http import validation_summary

__all__ = [
    "OVERRIDE_NOT_ALLOWED",
    "PROVIDER_MISMATCH",
    "PROVIDER_MISSING",
    "PROVIDER_NOT_ALLOWED",
    "SECRET_NAMESPACE_NOT_ALLOWED",
    "ObjectKey",
    "ProviderObjects",
    "Resolved",
    "Unresolved",
    "ref_key",
]

from .status import (
    INVALID_SPEC,
    OVERRIDE_NOT_ALLOWED,
    PROVIDER_MISMATCH,
    PROVIDER_MISSING,
    PROVIDER_NOT_ALLOWED,
    SECRET_NAMESPACE_NOT_ALLOWED,
)

#: (kind, namespace, name); namespace "" for a ClusterInferenceProvider.
ObjectKey = tuple[str, str, str]
_BUDGET_FIELDS = frozenset(AccountBudget.model_fields)


class Unresolved(Exception):
    """A providerRef that cannot be used; `reason` becomes the Synced (and Stalled) reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Resolved:
    #: The endpoint's spec with the provider object's block merged in and no providerRef.
    spec: dict[str, Any]
    account: AccountSource


def ref_key(namespace: str, spec: Mapping[str, Any]) -> ObjectKey | None:
    """The provider object an endpoint's spec names, whether or not it exists."""
    raw = spec.get("providerRef")
    if raw is None:
        return None
    try:
        ref = ProviderRef.model_validate(raw)
    except ValidationError:
        return None
    return (ref.kind, namespace if ref.kind == NAMESPACED_KIND else "", ref.name)


def _describe(key: ObjectKey) -> str:
    kind, namespace, name = key
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


class ProviderObjects:
    """Fed by the two kinds' informers and the Namespace informer; calls `changed(key)` when a
    provider object's spec appears, changes or goes, and `changed(None)` when namespace labels
    change (cluster providers' conditions may now say otherwise).

    `cluster_secret_namespaces`: where ClusterInferenceProviders may read Secrets; None (tests,
    tools without a cluster) means anywhere."""

    def __init__(
        self,
        cluster_secret_namespaces: frozenset[str] | None = None,
        *,
        changed: Callable[[ObjectKey | None], None] = lambda key: None,
        status_changed: Callable[[], None] = lambda: None,
    ) -> None:
        """`changed` re-resolves endpoints; `status_changed` asks for provider statuses to be
        recomputed (a new object, a new generation)."""
        self.cluster_secret_namespaces = cluster_secret_namespaces
        self._specs: dict[ObjectKey, Mapping[str, Any]] = {}
        self._generations: dict[ObjectKey, int] = {}
        self._uids: dict[ObjectKey, str] = {}
        self._labels: dict[str, Mapping[str, str]] = {}
        self._statuses: dict[ObjectKey, Mapping[str, Any]] = {}
        self._changed = changed
        self._changed_status = status_changed

    def __len__(self) -> int:
        return len(self._specs)

    # --- what the informers see -----------------------------------------------------------

    def observe_namespaced(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self._observe(NAMESPACED_KIND, event_type, body)

    def observe_cluster(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        self._observe(CLUSTER_KIND, event_type, body)

    def _observe(self, kind: str, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        namespace = str(meta.get("namespace", "")) if kind == NAMESPACED_KIND else ""
        key = (kind, namespace, str(meta.get("name", "")))
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            self._uids.pop(key, None)
            self._generations.pop(key, None)
            self._statuses.pop(key, None)
            if self._specs.pop(key, None) is not None:
                self._changed(key)
            return
        spec = body.get("spec") or {}
        self._uids[key] = str(meta.get("uid", ""))
        generation = int(meta.get("generation") or 0)
        if self._generations.get(key) != generation:
            self._changed_status()  # observedGeneration to update
        self._generations[key] = generation
        self._statuses[key] = body.get("status") or {}
        # Our own status writes come back as MODIFIED: only a spec change re-resolves endpoints.
        if self._specs.get(key) != spec:
            self._specs[key] = spec
            self._changed(key)

    def observe_namespace(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = str(meta.get("name", ""))
        labels = {} if event_type == "DELETED" else dict(meta.get("labels") or {})
        if self._labels.get(name) != labels:
            self._labels[name] = labels
            self._changed(None)

    # --- what the status writer reads -----------------------------------------------------

    def all_keys(self) -> list[ObjectKey]:
        return list(self._specs)

    def identity(self, key: ObjectKey) -> tuple[str, int] | None:
        """(uid, generation) of an object that exists."""
        if key not in self._specs:
            return None
        return self._uids.get(key, ""), self._generations.get(key, 0)

    def status(self, key: ObjectKey) -> Mapping[str, Any]:
        """The status the object shows (as last seen, or as last written by us)."""
        return self._statuses.get(key) or {}

    def set_status(self, key: ObjectKey, status: Mapping[str, Any]) -> None:
        if key in self._specs:
            self._statuses[key] = status

    def spec(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return self._specs.get(key)

    def provider_name(self, key: ObjectKey) -> str | None:
        spec = self._specs.get(key) or {}
        return next((p.name for p in all_providers() if spec.get(p.name) is not None), None)

    # --- resolution -------------------------------------------------------------------------

    def resolve(self, namespace: str, spec: Mapping[str, Any]) -> Resolved:
        """The spec to poll with; raises `Unresolved` when the reference may not be used."""
        key = ref_key(namespace, spec)
        if key is None:
            raise Unresolved(INVALID_SPEC, "spec.providerRef needs a kind and a name")
        source = self._specs.get(key)
        if source is None:
            raise Unresolved(PROVIDER_MISSING, f"{_describe(key)} not found")
        kind, _, name = key
        if kind == CLUSTER_KIND and not self._allows(source, namespace):
            raise Unresolved(
                PROVIDER_NOT_ALLOWED,
                f"{_describe(key)} does not serve namespace {namespace} (its spec.conditions)",
            )
        provider = next((p for p in all_providers() if source.get(p.name) is not None), None)
        if provider is None:
            raise Unresolved(PROVIDER_MISMATCH, f"{_describe(key)} has no provider block")
        if (refused := self.refusal(key)) is not None:
            raise Unresolved(*refused)
        block = spec.get(provider.name)
        if not isinstance(block, Mapping):
            mine = next((p.name for p in all_providers() if spec.get(p.name) is not None), "none")
            raise Unresolved(
                PROVIDER_MISMATCH,
                f"{_describe(key)} is a {provider.name} account; this endpoint's block is {mine}",
            )
        try:
            defaults = account_model(provider).model_validate(source[provider.name])
        except ValidationError as err:
            summary = validation_summary(err, within=provider.name)
            raise Unresolved(PROVIDER_MISMATCH, f"{_describe(key)}: {summary}") from None
        shared = defaults.model_dump(by_alias=True, exclude_none=True)
        budget = {k: shared.pop(k, None) for k in ("requestsPerSecond", "burst")}
        config = provider.config_model
        if config.credential_fields:
            for field in config.destination_fields - config.endpoint_fields:
                alias = config.model_fields[field].alias or field
                if alias in block and block[alias] != shared.get(alias):
                    raise Unresolved(
                        PROVIDER_MISMATCH,
                        f"{provider.name}.{alias} is set by {_describe(key)}, whose credentials "
                        "this endpoint uses; remove it from the endpoint",
                    )
        overrides = _overrides(key, source, provider, block, shared)
        merged = {k: v for k, v in spec.items() if k != "providerRef"}
        merged[provider.name] = {**shared, **block}
        secret_namespace = (
            namespace if kind == NAMESPACED_KIND else str(source.get("secretNamespace") or "")
        )
        return Resolved(
            spec=merged,
            account=AccountSource(
                kind=kind,
                namespace=key[1],
                name=name,
                secret_namespace=secret_namespace,
                requests_per_second=budget["requestsPerSecond"],
                burst=budget["burst"],
                overrides=overrides,
            ),
        )

    def refusal(self, key: ObjectKey) -> tuple[str, str] | None:
        """(reason, message) when the provider object itself may not be used, whoever names it:
        a ClusterInferenceProvider with credentials whose secretNamespace the operator was not
        told it may read. Nothing is read then."""
        source = self._specs.get(key)
        allowed = self.cluster_secret_namespaces
        if source is None or key[0] != CLUSTER_KIND or allowed is None:
            return None
        provider = next((p for p in all_providers() if source.get(p.name) is not None), None)
        if provider is None or not provider.config_model.credential_fields:
            return None
        namespace = str(source.get("secretNamespace") or "")
        if namespace in allowed:
            return None
        return (
            SECRET_NAMESPACE_NOT_ALLOWED,
            f"{_describe(key)} reads Secrets in namespace {namespace or '(none)'}, where the "
            f"operator may not read them (its --cluster-secret-namespace: "
            f"{', '.join(sorted(allowed)) or 'none'})",
        )

    def _allows(self, source: Mapping[str, Any], namespace: str) -> bool:
        raw = source.get("conditions")
        if not raw:
            return True
        try:
            conditions = [NamespaceCondition.model_validate(c) for c in raw]
        except ValidationError:
            return False  # a rule we cannot read must not open the provider to everyone
        labels = self._labels.get(namespace, {})
        return any(
            namespace in (c.namespaces or [])
            or (c.namespace_selector is not None and selects(c.namespace_selector, labels))
            for c in conditions
        )


def _overrides(
    key: ObjectKey,
    source: Mapping[str, Any],
    provider: Provider[Any],
    block: Mapping[str, Any],
    shared: Mapping[str, Any],
) -> tuple[str, ...]:
    """The account-scoping fields `block` sets to another value than the provider object's;
    raises `Unresolved` for a value its `spec.allowedOverrides` does not list."""
    config = provider.config_model
    overridden: list[str] = []
    allowed: Mapping[str, Any] | None = None
    for field in sorted(config.account_fields):
        alias = config.model_fields[field].alias or field
        value = block.get(alias)
        if value is None or value == shared.get(alias):
            continue
        if allowed is None:
            try:
                rules = allowed_overrides_model().model_validate(
                    source.get("allowedOverrides") or {}
                )
                allowed = rules.model_dump(by_alias=True, exclude_none=True)
            except ValidationError:
                allowed = {}  # a rule we cannot read must not open the account to everyone
        values = list(allowed.get(alias) or [])
        if ANY_VALUE not in values and value not in values:
            listed = ", ".join(values) if values else "only its own value"
            raise Unresolved(
                OVERRIDE_NOT_ALLOWED,
                f"{provider.name}.{alias} {value!r} is not allowed by {_describe(key)}: its "
                f"spec.allowedOverrides.{alias} allows {listed}; remove it from the endpoint, "
                "or ask the provider object's owner to allow it",
            )
        overridden.append(alias)
    return tuple(overridden)


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every matchLabels entry and every expression holds (an
    empty selector selects everything)."""
    if any(labels.get(k) != v for k, v in (selector.match_labels or {}).items()):
        return False
    for expr in selector.match_expressions or []:
        values = expr.values or []
        present = expr.key in labels
        if expr.operator == "In" and not (present and labels[expr.key] in values):
            return False
        if expr.operator == "NotIn" and present and labels[expr.key] in values:
            return False
        if expr.operator == "Exists" and not present:
            return False
        if expr.operator == "DoesNotExist" and present:
            return False
    return True
