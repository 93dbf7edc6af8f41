"""Ready never lies, against the real API server: a provider's unbounded Retry-After neither
freezes Ready nor swallows a reconcile request, and staleness shows on time (issue 14)."""

from __future__ import annotations

from typing import Any

from .conftest import EmulatorClient, OperatorProcess, condition, get_ie, wait_until
from .test_operator import apply_ie

RECONCILE = "inferenceops.io/reconcile-requested-at"


def test_an_unbounded_retry_after_does_not_freeze_ready(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    instance = f"ra-{ns}"
    emulator.put("nsModelServer", instance, stage="READY", progress=100)
    apply_ie(
        control_plane,
        ns,
        "ra",
        {"pollInterval": "5s", "nsModelServer": {"url": f"{emulator.base_url}/ns/{instance}"}},
    )
    wait_until(
        "Ready", lambda: condition(get_ie(control_plane, ns, "ra"), "Ready").get("status") == "True"
    )
    fault = emulator.fail("nsModelServer", 429, endpoint=instance, retry_after=1e9)
    try:
        synced = wait_until(
            "Synced RateLimited",
            lambda: (
                (c := condition(get_ie(control_plane, ns, "ra"), "Synced")).get("reason")
                == "RateLimited"
                and c
            ),
            20,
        )
        assert "retry after 300s" in synced["message"], synced
        # A reconcile request while the account is paused is answered at once, saying when
        # polling resumes, without a request to the provider.
        before = emulator.requests(provider="nsModelServer", endpoint=instance)
        control_plane.kubectl("annotate", "ie", "ra", "-n", ns, f"{RECONCILE}=r1", "--overwrite")
        obj = wait_until(
            "reconcile handled",
            lambda: (
                (o := get_ie(control_plane, ns, "ra"))["status"].get("lastHandledReconcileAt")
                == "r1"
                and o
            ),
            15,
        )
        assert "resumes at" in condition(obj, "Synced")["message"]
        assert emulator.requests(provider="nsModelServer", endpoint=instance) == before
        # Three intervals (15 s) after the last success Ready is Unknown, with the reason.
        ready = wait_until(
            "Ready Unknown",
            lambda: (
                (c := condition(get_ie(control_plane, ns, "ra"), "Ready")).get("status")
                == "Unknown"
                and c
            ),
            30,
        )
        assert ready["reason"] == "ObservationStale" and "RateLimited" in ready["message"], ready
    finally:
        emulator.remove_fault(fault)
