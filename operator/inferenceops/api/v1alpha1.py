"""InferenceEndpoint v1alpha1: the spec's common fields, the status model, and spec parsing.

Provider blocks are not listed here: each provider module owns its block's model and the
registry assembles the spec from them, so adding a provider does not touch this file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ..providers import Provider, ProviderConfig, all_providers
from ..providers.sanitize import MESSAGE_CHARS, WORD_CHARS

GROUP = "inferenceops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceEndpoint"
PLURAL = "inferenceendpoints"
SINGULAR = "inferenceendpoint"
SHORT_NAME = "ie"
CATEGORY = "inference"

DEFAULT_POLL_INTERVAL = "30s"
MIN_POLL_INTERVAL_SECONDS = 5.0
#: Go duration syntax, as CEL's duration() and `kubectl` users expect (e.g. 30s, 1m30s, 2h).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class InvalidSpecError(ValueError):
    """The spec cannot be acted on; the message is written to the `Synced` condition."""


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration string such as `30s` or `1m30s`."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise InvalidSpecError(f"pollInterval {text!r} is not a duration like 30s, 5m or 1h30m")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


#: The default in seconds; also the interval of an endpoint whose spec cannot be parsed (its
#: staleness deadline and its next look still need one).
DEFAULT_POLL_INTERVAL_SECONDS = parse_duration(DEFAULT_POLL_INTERVAL)


@dataclass(frozen=True, slots=True)
class AccountSource:
    """The provider object an endpoint's account comes from (its `spec.providerRef`, resolved):
    its Secrets are read in `secret_namespace` and its budget replaces the operator's flags."""

    kind: str
    #: "" for a ClusterInferenceProvider.
    namespace: str
    name: str
    secret_namespace: str
    requests_per_second: float | None = None
    burst: int | None = None
    #: The account-scoping fields (aliases) the endpoint sets to another value than the
    #: object's, as its `spec.allowedOverrides` allows: a failure of such a call is the
    #: endpoint's, not the provider object's (provider_status.py).
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedSpec:
    poll_interval: float
    provider: Provider[Any]
    #: With `spec.providerRef`, the endpoint's block merged over the provider object's.
    config: ProviderConfig
    account: AccountSource | None = None


def parse_spec(spec: Mapping[str, Any] | None) -> ParsedSpec:
    """Validate a spec as the API server's schema and CEL rules do, for objects that bypassed them
    (an older CRD, a `probe` of a local file)."""
    spec = spec or {}
    if spec.get("providerRef") is not None:
        raise InvalidSpecError(
            "spec.providerRef is resolved by the operator from the provider object; "
            "to probe, set the provider block's fields inline"
        )
    interval = parse_duration(str(spec.get("pollInterval") or DEFAULT_POLL_INTERVAL))
    if interval < MIN_POLL_INTERVAL_SECONDS:
        raise InvalidSpecError(
            f"pollInterval {spec.get('pollInterval')!r} is below the minimum of 5s"
        )
    providers = list(all_providers())
    present = [p for p in providers if spec.get(p.name) is not None]
    if len(present) != 1:
        names = ", ".join(p.name for p in providers)
        found = ", ".join(p.name for p in present) or "none"
        raise InvalidSpecError(f"exactly one provider block must be set ({names}); found: {found}")
    provider = present[0]
    try:
        config = provider.config_model.model_validate(spec[provider.name])
    except ValidationError as err:
        problems = "; ".join(
            f"{provider.name}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in err.errors()
        )
        raise InvalidSpecError(problems) from None
    return ParsedSpec(poll_interval=interval, provider=provider, config=config)


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


ConditionStatus = Literal["True", "False", "Unknown"]

# Every status string has a maxLength, so that `.status` stays small (under 32 KiB, tested)
# whatever a provider answers; provider strings are cut to these before status.py sees them
# (providers/sanitize.py).
#: A timestamp (RFC 3339), a phase, a provider name, "ready/total".
SHORT_CHARS = 64
#: An endpoint's id or URL (2048) with Takeoff's consumer group.
ENDPOINT_CHARS = 2304
#: The inferenceops.io/reconcile-requested-at value, as acted on.
RECONCILE_TOKEN_CHARS = 256


class Condition(_CamelModel):
    """A Kubernetes-convention condition (as in metav1.Condition)."""

    type: Annotated[
        str, Field(max_length=SHORT_CHARS, description="Ready, Synced, Reconciling or Stalled.")
    ]
    status: ConditionStatus
    reason: Annotated[
        str, Field(max_length=WORD_CHARS, description="CamelCase reason a user can search for.")
    ]
    message: Annotated[str, Field(max_length=MESSAGE_CHARS)] = ""
    last_transition_time: Annotated[
        str,
        Field(
            max_length=SHORT_CHARS,
            description="When status last changed.",
            json_schema_extra={"format": "date-time"},
        ),
    ]
    observed_generation: int | None = None


class WorkersStatus(_CamelModel):
    ready: Annotated[int | None, Field(ge=0, description="Workers able to serve.")] = None
    total: Annotated[int | None, Field(ge=0, description="Workers that exist.")] = None
    min: Annotated[int | None, Field(ge=0, description="Autoscaling minimum.")] = None
    max: Annotated[int | None, Field(ge=0, description="Autoscaling maximum.")] = None


class QueueStatus(_CamelModel):
    in_queue: Annotated[int | None, Field(ge=0, description="Jobs waiting for a worker.")] = None
    in_progress: Annotated[int | None, Field(ge=0, description="Jobs a worker is running.")] = None
    failed: Annotated[
        int | None, Field(ge=0, description="Failed jobs, as the provider counts them.")
    ] = None


_TIME = {"format": "date-time"}


class InferenceEndpointStatus(_CamelModel):
    """What the operator writes; every field is optional because the provider may not say."""

    phase: Annotated[
        str | None, Field(max_length=SHORT_CHARS, description="Provider-neutral phase.")
    ] = None
    provider: Annotated[
        str | None, Field(max_length=SHORT_CHARS, description="Which provider block is in use.")
    ] = None
    endpoint: Annotated[
        str | None,
        Field(max_length=ENDPOINT_CHARS, description="The remote endpoint's id or URL."),
    ] = None
    provider_status: Annotated[
        str | None,
        Field(
            max_length=WORD_CHARS,
            description="The provider's own status word, verbatim (one line, cut at 128).",
        ),
    ] = None
    provider_phase: Annotated[
        str | None,
        Field(max_length=WORD_CHARS, description="The provider's sub-phase, where it has one."),
    ] = None
    error_code: Annotated[
        str | None, Field(max_length=WORD_CHARS, description="The provider's error code.")
    ] = None
    error_message: Annotated[
        str | None,
        Field(
            max_length=MESSAGE_CHARS,
            description="The provider's error text (one line, cut at 1024, credentials masked).",
        ),
    ] = None
    error: Annotated[
        str | None,
        Field(
            max_length=WORD_CHARS,
            description="For the Error printer column: the provider's error code, else why the "
            "last poll failed (e.g. SecretMissing, Unauthorized, Unreachable).",
        ),
    ] = None
    progress: Annotated[
        int | None, Field(ge=0, le=100, description="Start-up or rollout progress, in percent.")
    ] = None
    workers: WorkersStatus | None = None
    queue: Annotated[
        QueueStatus | None,
        Field(
            description="Job queue depth, where the provider block opts in (runpod.queueMetrics)."
        ),
    ] = None
    worker_summary: Annotated[
        str | None,
        Field(max_length=SHORT_CHARS, description="ready/total, for the Workers printer column."),
    ] = None
    observed_generation: int | None = None
    last_poll_time: Annotated[
        str | None,
        Field(
            max_length=SHORT_CHARS,
            description="When a poll last changed the status (see --poll-time-refresh).",
            json_schema_extra=_TIME,
        ),
    ] = None
    last_transition_time: Annotated[
        str | None,
        Field(
            max_length=SHORT_CHARS,
            description="When phase last changed.",
            json_schema_extra=_TIME,
        ),
    ] = None
    last_handled_reconcile_at: Annotated[
        str | None,
        Field(
            max_length=RECONCILE_TOKEN_CHARS,
            description="Last inferenceops.io/reconcile-requested-at value acted on (its first "
            "256 characters).",
        ),
    ] = None
    conditions: list[Condition] | None = None
