"""The InferenceEndpoint API (group inferenceops.io): models, names, the CRD generated from them."""

from .v1alpha1 import (
    API_VERSION,
    CATEGORY,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
    VERSION,
    Condition,
    ConditionStatus,
    InferenceEndpointStatus,
    InvalidSpecError,
    ParsedSpec,
    WorkersStatus,
    parse_duration,
    parse_spec,
)

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "SINGULAR",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "InferenceEndpointStatus",
    "InvalidSpecError",
    "ParsedSpec",
    "WorkersStatus",
    "parse_duration",
    "parse_spec",
]
