"""InferenceEndpoint objects for every phase x condition combination of the status contract.

Pure Python dicts, built by hand from the contract (not by the operator's code), each paired
with the verdict a user wants from kstatus (Flux, cli-utils) and from Argo CD's health check
(docs/argocd/health.lua). test_kstatus.py and test_argocd_health.py parametrize over CASES;
docs/gitops.md carries the same table for humans.

The contract, as written by the operator (operator/inferenceops/status.py):
  Ready        True for Running/Idle/Degraded; False (reason = phase) otherwise; Unknown with reason
               ObservationStale after 3 intervals without a successful poll, or reason Pending
               before the first successful poll.
  Synced       True/Polled, or False with the poll failure's reason.
  Reconciling  True (reason = phase) only while Pending/Provisioning/Updating/Waking/Terminating.
  Stalled      True only for InvalidSpec/SecretMissing/Unauthorized/NotFound, or phase Failed.
Conditions are listed in the operator's order: Ready, Synced, Reconciling, Stalled.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from typing import Any

GROUP = "inferenceops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceEndpoint"
NOW = "2025-01-01T00:00:00Z"

PHASES = (
    "Pending",
    "Provisioning",
    "Running",
    "Idle",
    "Updating",
    "Degraded",
    "Sleeping",
    "Waking",
    "Suspended",
    "Failed",
    "Terminating",
    "Terminated",
    "Unknown",
)
READY_PHASES = frozenset({"Running", "Idle", "Degraded"})
RECONCILING_PHASES = frozenset({"Pending", "Provisioning", "Updating", "Waking", "Terminating"})
SYNC_FAILURES = (
    "Unauthorized",
    "NotFound",
    "Unreachable",
    "Timeout",
    "RateLimited",
    "BadResponse",
    "SecretMissing",
    "InvalidSpec",
)
STALLING_FAILURES = frozenset({"InvalidSpec", "SecretMissing", "Unauthorized", "NotFound"})
TRANSIENT_FAILURES = tuple(r for r in SYNC_FAILURES if r not in STALLING_FAILURES)

#: The default the CRD should declare on `.status` (see docs/gitops.md): the API server applies
#: it whenever it returns an object without status, so kstatus sees generation 1 != observed 0
#: (InProgress) instead of "no conditions at all" (Current).
CRD_STATUS_DEFAULT: dict[str, Any] = {"observedGeneration": 0}


def _cond(kind: str, status: str, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": NOW,
        "observedGeneration": generation,
    }


def endpoint(
    name: str,
    *,
    generation: int = 1,
    status: dict[str, Any] | None = None,
    deletion: bool = False,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An InferenceEndpoint as the API server returns it (metadata.generation set)."""
    obj: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": "inference",
            "generation": generation,
            "uid": f"00000000-0000-4000-8000-{zlib.crc32(name.encode()):012x}",
            "creationTimestamp": NOW,
        },
        "spec": spec
        or {
            "pollInterval": "30s",
            "nsModelServer": {"url": "http://model-server.inference.svc:8080"},
        },
    }
    if deletion:
        obj["metadata"]["deletionTimestamp"] = NOW
        obj["metadata"]["finalizers"] = ["inferenceops.io/cleanup"]
    if status is not None:
        obj["status"] = status
    return obj


def ready_message(phase: str) -> str:
    return f"endpoint is {phase}"


def build_status(
    phase: str,
    *,
    generation: int = 1,
    observed_generation: int | None = None,
    sync_failure: str | None = None,
    first_poll: bool = False,
    stale: bool = False,
    error_code: str | None = None,
    error_message: str | None = None,
) -> dict[str, Any]:
    """The status the contract prescribes.

    phase          the phase reported (for a failed poll: the phase last seen)
    sync_failure   the reason the last poll failed (None: it succeeded)
    first_poll     no poll has ever succeeded (Ready Unknown/Pending)
    stale          no poll succeeded for 3 intervals (Ready Unknown/ObservationStale)
    """
    og = generation if observed_generation is None else observed_generation
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": og,
        "lastPollTime": NOW,
        "lastTransitionTime": NOW,
    }
    if not first_poll:
        status.update(
            providerStatus=phase.upper(),
            providerPhase=phase.lower(),
            workers={"ready": 1 if phase in READY_PHASES else 0, "total": 1, "min": 0, "max": 2},
        )
    if error_code or error_message:
        status.update(errorCode=error_code, errorMessage=error_message)
    conditions: list[dict[str, Any]] = []
    if first_poll:
        conditions.append(
            _cond("Ready", "Unknown", "Pending", "waiting for the first successful poll", og)
        )
    elif stale:
        conditions.append(
            _cond(
                "Ready",
                "Unknown",
                "ObservationStale",
                f"no successful poll since {NOW}; last known phase {phase}",
                og,
            )
        )
    elif phase in READY_PHASES:
        conditions.append(_cond("Ready", "True", phase, ready_message(phase), og))
    else:
        conditions.append(_cond("Ready", "False", phase, ready_message(phase), og))
    if sync_failure is None:
        if not first_poll:
            conditions.append(_cond("Synced", "True", "Polled", "the provider answered", og))
    else:
        conditions.append(
            _cond("Synced", "False", sync_failure, sync_failure_message(sync_failure), og)
        )
    stalled: dict[str, Any] | None = None
    if sync_failure in STALLING_FAILURES:
        stalled = _cond("Stalled", "True", sync_failure, sync_failure_message(sync_failure), og)
    elif phase == "Failed":
        text = ": ".join(x for x in (error_code, error_message) if x)
        text = text or "the provider reports the endpoint failed"
        stalled = _cond("Stalled", "True", "Failed", text, og)
    elif phase == "Terminated":
        stalled = _cond(
            "Stalled", "True", "Terminated", "the provider has terminated the endpoint", og
        )
    # Stalled and Reconciling are never both present: kstatus reads Reconciling first.
    if phase in RECONCILING_PHASES and stalled is None:
        conditions.append(_cond("Reconciling", "True", phase, ready_message(phase), og))
    if stalled is not None:
        conditions.append(stalled)
    status["conditions"] = conditions
    return status


def sync_failure_message(reason: str) -> str:
    return {
        "Unauthorized": "the provider rejected the credentials (HTTP 401)",
        "NotFound": "the provider has no endpoint with this id (HTTP 404)",
        "Unreachable": "connection refused",
        "Timeout": "no answer within 10s",
        "RateLimited": "HTTP 429; retrying after 30s",
        "BadResponse": "unexpected JSON from the provider",
        "SecretMissing": "secret inference/provider-credentials has no key apiKey",
        "InvalidSpec": "spec.runpod.endpointId must not be empty",
    }[reason]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


@dataclass(frozen=True)
class Case:
    id: str
    obj: dict[str, Any]
    kstatus: str  # the verdict a user wants from kstatus
    argo: str  # the Argo CD health status
    argo_message: str | None = None  # hs.message, exactly (None: not checked exactly)
    argo_message_contains: tuple[str, ...] = field(default_factory=tuple)
    note: str = ""

    def fresh_obj(self) -> dict[str, Any]:
        return copy.deepcopy(self.obj)


# What each phase means once a poll succeeded: (kstatus verdict, Argo health).
PHASE_VERDICTS: dict[str, tuple[str, str]] = {
    "Pending": ("InProgress", "Progressing"),
    "Provisioning": ("InProgress", "Progressing"),
    "Running": ("Current", "Healthy"),
    "Idle": ("Current", "Healthy"),
    "Updating": ("InProgress", "Progressing"),
    "Degraded": ("Current", "Healthy"),  # still serving; hs.message starts with "Degraded: "
    # User-requested steady states: a GitOps sync wants Current, but Ready=False makes raw
    # kstatus say InProgress. Flux users get Current via the healthCheckExprs in docs/gitops.md.
    "Sleeping": ("InProgress", "Suspended"),
    "Waking": ("InProgress", "Progressing"),
    "Suspended": ("InProgress", "Suspended"),
    "Failed": ("Failed", "Degraded"),
    "Terminating": ("InProgress", "Progressing"),
    # The endpoint's life is over: a sync waiting on it fails instead of timing out.
    "Terminated": ("Failed", "Missing"),
    "Unknown": ("InProgress", "Unknown"),
}

#: Phases whose wanted verdict differs from what kstatus can say under the fixed contract,
#: mapped to the verdict wanted (and what Flux's healthCheckExprs from docs/gitops.md give).
WANTED_WITH_FLUX_EXPRS: dict[str, str] = {"Sleeping": "Current", "Suspended": "Current"}


def _phase_message(phase: str, argo: str) -> str:
    if phase == "Degraded":
        return f"Degraded: {ready_message(phase)}"
    return ready_message(phase)


def _build_cases() -> list[Case]:
    cases: list[Case] = []

    # 1. every phase after a successful poll
    for phase in PHASES:
        ks, argo = PHASE_VERDICTS[phase]
        kw: dict[str, Any] = {}
        if phase == "Failed":
            kw = {"error_code": "OOM", "error_message": "model did not fit in GPU memory"}
        obj = endpoint(f"phase-{phase.lower()}", status=build_status(phase, **kw))
        if phase == "Failed":
            msg = "OOM: model did not fit in GPU memory"
        elif phase == "Terminated":
            msg = "the provider has terminated the endpoint"
        else:
            msg = _phase_message(phase, argo)
        cases.append(Case(f"polled-{phase}", obj, ks, argo, argo_message=msg))

    # 2. before the first successful poll
    cases.append(
        Case(
            "first-poll-pending",
            endpoint("first-pending", status=build_status("Pending", first_poll=True)),
            "InProgress",
            "Progressing",
            argo_message=ready_message("Pending"),
        )
    )
    for reason in SYNC_FAILURES:
        obj = endpoint(
            f"first-{reason.lower()}",
            status=build_status("Pending", first_poll=True, sync_failure=reason),
        )
        if reason in STALLING_FAILURES:
            cases.append(
                Case(
                    f"first-poll-{reason}",
                    obj,
                    "Failed",
                    "Degraded",
                    argo_message=sync_failure_message(reason),
                )
            )
        else:
            cases.append(
                Case(
                    f"first-poll-{reason}",
                    obj,
                    "InProgress",
                    "Progressing",
                    argo_message_contains=(ready_message("Pending"), f"last poll failed: {reason}"),
                )
            )

    # 3. a poll failed, not yet stale, for a phase last seen as each of these
    for last in ("Running", "Provisioning", "Sleeping", "Failed"):
        for reason in SYNC_FAILURES:
            obj = endpoint(
                f"{last.lower()}-then-{reason.lower()}",
                status=build_status(
                    last,
                    sync_failure=reason,
                    **(
                        {"error_code": "OOM", "error_message": "no GPU memory"}
                        if last == "Failed"
                        else {}
                    ),
                ),
            )
            if reason in STALLING_FAILURES:
                cases.append(
                    Case(
                        f"{last}-then-{reason}",
                        obj,
                        "Failed",
                        "Degraded",
                        argo_message=sync_failure_message(reason),
                    )
                )
                continue
            ks, argo = PHASE_VERDICTS[last]
            if last == "Failed":
                msg: str | None = "OOM: no GPU memory"
                contains: tuple[str, ...] = ()
            else:
                msg, contains = None, (ready_message(last), f"last poll failed: {reason}")
            cases.append(
                Case(
                    f"{last}-then-{reason}",
                    obj,
                    ks,
                    argo,
                    argo_message=msg,
                    argo_message_contains=contains,
                )
            )

    # 4. NotFound after the provider was deleting it: the lifecycle ended (phase Terminated)
    for last in ("Terminating", "Terminated"):
        obj = endpoint(
            f"{last.lower()}-then-notfound",
            status=build_status("Terminated", sync_failure="NotFound"),
        )
        cases.append(
            Case(
                f"{last}-then-NotFound",
                obj,
                "Failed",
                "Missing",
                argo_message=sync_failure_message("NotFound"),
            )
        )

    # 5. stale: no successful poll for 3 intervals
    for last in ("Running", "Idle", "Provisioning"):
        obj = endpoint(
            f"stale-{last.lower()}",
            status=build_status(last, sync_failure="Unreachable", stale=True),
        )
        cases.append(
            Case(
                f"stale-{last}",
                obj,
                "InProgress",
                "Unknown",
                argo_message_contains=("no successful poll since",),
            )
        )

    # 6. lifecycle of the object itself
    fresh_default = endpoint("fresh", status=copy.deepcopy(CRD_STATUS_DEFAULT))
    cases.append(
        Case(
            "fresh-with-crd-default",
            fresh_default,
            "InProgress",
            "Progressing",
            argo_message_contains=("generation 1",),
            note="as the API server returns a new object once the CRD has "
            "status.default {observedGeneration: 0}",
        )
    )
    cases.append(
        Case(
            "fresh-empty-status",
            endpoint("fresh-empty", status={}),
            "Current",
            "Progressing",
            argo_message="waiting for the operator to report status",
            note="kstatus can't tell: why the CRD default is needed",
        )
    )
    cases.append(
        Case(
            "fresh-no-status",
            endpoint("fresh-bare"),
            "Current",
            "Progressing",
            argo_message="waiting for the operator to report status",
            note="kstatus can't tell: why the CRD default is needed",
        )
    )
    lag = endpoint("generation-lag", generation=3, status=build_status("Running", generation=2))
    cases.append(
        Case(
            "generation-lag",
            lag,
            "InProgress",
            "Progressing",
            argo_message="waiting for the operator to observe generation 3 (observed 2)",
        )
    )
    lag_failed = endpoint(
        "generation-lag-failed",
        generation=2,
        status=build_status("Running", generation=1, sync_failure="InvalidSpec"),
    )
    cases.append(
        Case(
            "generation-lag-after-InvalidSpec",
            lag_failed,
            "InProgress",
            "Progressing",
            argo_message="waiting for the operator to observe generation 2 (observed 1)",
            note="the user fixed the spec; the old Stalled no longer counts",
        )
    )
    deleting = endpoint("deleting", deletion=True, status=build_status("Running"))
    cases.append(
        Case(
            "deletionTimestamp",
            deleting,
            "Terminating",
            "Progressing",
            argo_message="Pending deletion",
        )
    )
    return cases


CASES: list[Case] = _build_cases()
CASES_BY_ID: dict[str, Case] = {c.id: c for c in CASES}
assert len(CASES_BY_ID) == len(CASES), "duplicate case ids"


def all_objects() -> list[dict[str, Any]]:
    return [c.fresh_obj() for c in CASES]
