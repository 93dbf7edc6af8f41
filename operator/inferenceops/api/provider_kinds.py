"""InferenceProvider (namespaced) and ClusterInferenceProvider (cluster-scoped): provider accounts
as resources, and `spec.providerRef` that lets an InferenceEndpoint use one.

A provider object's block is derived from the endpoint's block of the same provider: every field
but the ones naming one remote endpoint (`ProviderConfig.endpoint_fields`), all optional except
the credentials, plus the account's request budget. Deriving it keeps the two from drifting when
a provider gains a field.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from ..providers import Provider, ProviderConfig, all_providers
from .v1alpha1 import DURATION_PATTERN, SHORT_CHARS, Condition

__all__ = [
    "CLUSTER_KIND",
    "CLUSTER_PLURAL",
    "INVENTORY_IDS",
    "MIN_INVENTORY_SECONDS",
    "NAMESPACED_KIND",
    "NAMESPACED_PLURAL",
    "AccountBudget",
    "InventorySpec",
    "InventoryStatus",
    "NamespaceCondition",
    "ProviderObjectStatus",
    "ProviderRef",
    "account_model",
    "allowed_overrides_model",
]

NAMESPACED_KIND = "InferenceProvider"
NAMESPACED_PLURAL = "inferenceproviders"
NAMESPACED_SHORT_NAME = "ipr"  # "ip" is taken by networking.k8s.io IPAddress
CLUSTER_KIND = "ClusterInferenceProvider"
CLUSTER_PLURAL = "clusterinferenceproviders"
CLUSTER_SHORT_NAME = "cipr"


class _Camel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class ProviderRef(_Camel):
    """Which provider object an InferenceEndpoint uses for its account."""

    kind: Annotated[
        Literal["InferenceProvider", "ClusterInferenceProvider"],
        Field(description="InferenceProvider (same namespace) or ClusterInferenceProvider."),
    ] = "InferenceProvider"
    name: Annotated[
        str, Field(min_length=1, max_length=253, description="Name of the provider object.")
    ]


class AccountBudget(ProviderConfig):
    """The request budget of the account: the operator's --requests-per-second when unset, and
    a burst of two seconds' worth of the rate."""

    endpoint_fields = frozenset()

    requests_per_second: Annotated[
        float | None,
        Field(gt=0, le=100000, description="Sustained provider requests per second."),
    ] = None
    burst: Annotated[
        int | None,
        Field(ge=1, le=100000, description="Requests allowed at once (default: 2 s of the rate)."),
    ] = None


@cache
def account_model(provider: Provider[Any]) -> type[AccountBudget]:
    """The provider object's block for `provider`: the endpoint block without its endpoint
    fields, every field optional but the credentials (a provider object exists to hold them),
    plus the budget."""
    config = provider.config_model
    fields: dict[str, Any] = {}
    for name, info in config.model_fields.items():
        if name in config.endpoint_fields:
            continue
        field = copy.copy(info)
        annotation: Any = info.annotation
        # Several credential fields are alternatives (the model's own rule picks one).
        if name not in config.credential_fields or len(config.credential_fields) > 1:
            # Unset means "the endpoint's value, else the provider's documented default".
            field.default = None
            annotation = annotation | None
        fields[name] = (annotation, field)
    model = create_model(
        f"{type(provider).__name__}Account",
        __base__=AccountBudget,
        __doc__=f"A {provider.display_name} account.",
        **fields,
    )
    model.credential_fields = config.credential_fields
    assert issubclass(model, AccountBudget)
    return model


#: Stands for any value in `spec.allowedOverrides`.
ANY_VALUE = "*"


def _value_pattern(info: Any) -> str:
    """The field's own pattern, widened to accept `*`: an allow-list entry is a value the field
    could hold, or the wildcard."""
    pattern = next((m.pattern for m in info.metadata if getattr(m, "pattern", None)), None)
    inner = (pattern or "^.+$").removeprefix("^").removesuffix("$")
    return rf"^(\*|{inner})$"


@cache
def allowed_overrides_model() -> type[BaseModel]:
    """`spec.allowedOverrides` of a provider object: per account-scoping field (the providers'
    `ProviderConfig.account_fields`, e.g. Friendli's teamId), the values an endpoint using the
    object may set instead of the object's own. Unset: none (the endpoint may only repeat the
    object's value)."""
    owners: dict[str, list[str]] = {}
    infos: dict[str, Any] = {}
    for provider in all_providers():
        config = provider.config_model
        for name in sorted(config.account_fields):
            owners.setdefault(name, []).append(provider.name)
            infos[name] = config.model_fields[name]
    fields: dict[str, Any] = {}
    for name, info in infos.items():
        alias = info.alias or name
        blocks = " and ".join(f"{b}.{alias}" for b in owners[name])
        item = Annotated[str, Field(min_length=1, max_length=256, pattern=_value_pattern(info))]
        fields[name] = (
            list[item] | None,
            Field(
                default=None,
                max_length=64,
                description=f"Values of {blocks} an endpoint using this provider object may "
                f"set instead of this object's own; {ANY_VALUE!r} allows any. Unset: none.",
            ),
        )
    model = create_model(
        "AllowedOverrides",
        __base__=_Camel,
        __doc__="What an endpoint using this provider object may set to another value than the "
        "object's own (a team, a workspace of the same account).",
        **fields,
    )
    return model


class LabelSelectorRequirement(_Camel):
    key: Annotated[str, Field(min_length=1, max_length=317)]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: Annotated[list[Annotated[str, Field(max_length=63)]] | None, Field(max_length=64)] = (
        None
    )


class LabelSelector(_Camel):
    """A Kubernetes label selector (as in metav1.LabelSelector)."""

    match_labels: Annotated[dict[str, str] | None, Field(description="Labels that must match.")] = (
        None
    )
    match_expressions: Annotated[list[LabelSelectorRequirement] | None, Field(max_length=16)] = None


class NamespaceCondition(_Camel):
    """Namespaces listed by name or selected by labels (as a ClusterSecretStore's conditions)."""

    namespaces: Annotated[
        list[Annotated[str, Field(max_length=63)]] | None,
        Field(max_length=256, description="Namespaces, by name."),
    ] = None
    namespace_selector: Annotated[
        LabelSelector | None, Field(description="Namespaces, by their labels.")
    ] = None


#: How many unmanaged ids the status lists; the count says how many there are in all.
INVENTORY_IDS = 20
#: The shortest inventory interval honoured: a listing can be 100 pages.
MIN_INVENTORY_SECONDS = 60.0


class InventorySpec(_Camel):
    """Opt-in: list the account's remote endpoints every `interval`, one listing for the whole
    account, and say in status which no InferenceEndpoint watches."""

    interval: Annotated[
        str,
        Field(
            pattern=DURATION_PATTERN,
            max_length=32,
            description="How often the account is listed, e.g. 10m (at least 1m).",
        ),
    ] = "10m"


class InventoryStatus(_Camel):
    """What the last listing of the account found (spec.inventory)."""

    remote_endpoints: Annotated[
        int | None, Field(ge=0, description="Endpoints the account holds at the provider.")
    ] = None
    watched_endpoints: Annotated[
        int | None,
        Field(ge=0, description="Of those, how many an InferenceEndpoint using this object names."),
    ] = None
    unmanaged_endpoints: Annotated[
        int | None, Field(ge=0, description="Of those, how many none names.")
    ] = None
    unmanaged_ids: Annotated[
        list[Annotated[str, Field(max_length=SHORT_CHARS)]] | None,
        Field(
            max_length=INVENTORY_IDS,
            description=f"The first {INVENTORY_IDS} unmanaged ids, sorted "
            "(inferenceops import prints manifests for them).",
        ),
    ] = None
    last_list_time: Annotated[
        str | None,
        Field(
            max_length=SHORT_CHARS,
            description="When the listing that last changed these numbers was made.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None
    message: Annotated[
        str | None,
        Field(
            max_length=1024,
            description="Why the account cannot be listed, or why the last listing failed.",
        ),
    ] = None


class ProviderObjectStatus(_Camel):
    """What the operator writes on a provider object."""

    provider: Annotated[
        str | None, Field(max_length=SHORT_CHARS, description="Which provider block is in use.")
    ] = None
    endpoints: Annotated[
        int | None, Field(ge=0, description="InferenceEndpoints using this provider object.")
    ] = None
    ready_endpoints: Annotated[
        int | None, Field(ge=0, description="Of those, how many are Ready.")
    ] = None
    endpoint_summary: Annotated[
        str | None,
        Field(max_length=SHORT_CHARS, description="ready/total, for the Endpoints printer column."),
    ] = None
    last_success_time: Annotated[
        str | None,
        Field(
            max_length=SHORT_CHARS,
            description="When a call with these credentials last succeeded.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None
    paused_until: Annotated[
        str | None,
        Field(
            max_length=SHORT_CHARS,
            description="While RateLimited: when the provider allows requests again.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None
    observed_generation: int | None = None
    inventory: Annotated[
        InventoryStatus | None, Field(description="The account's endpoints (spec.inventory).")
    ] = None
    conditions: list[Condition] | None = None


def provider_blocks() -> dict[str, type[AccountBudget]]:
    return {p.name: account_model(p) for p in all_providers()}
