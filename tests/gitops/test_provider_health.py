"""InferenceProvider / ClusterInferenceProvider health: docs/argocd/provider-health.lua (as Argo
CD runs it) and kstatus (as Flux computes it), over statuses provider_status.py really writes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from inferenceops.provider_status import CallOutcome, provider_status

from .kstatus import kstatus_verdicts
from .test_argocd_health import to_lua

lupa = pytest.importorskip("lupa")
from lupa import lua51  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LUA_FILE = ROOT / "docs" / "argocd" / "provider-health.lua"
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
READY = {"conditions": [{"type": "Ready", "status": "True"}]}


def provider_object(
    outcome: CallOutcome | None, *, generation: int = 1, observed: int | None = None
) -> dict[str, Any]:
    status = provider_status(
        None,
        provider="friendli",
        generation=generation if observed is None else observed,
        users=[READY, {}],
        outcome=outcome,
        last_success=NOW if outcome and outcome.reason is None else None,
        now=NOW,
        success_refresh=timedelta(minutes=5),
    )
    return {
        "apiVersion": "inferenceops.io/v1alpha1",
        "kind": "InferenceProvider",
        "metadata": {"name": "acct", "namespace": "ml", "generation": generation},
        "spec": {"friendli": {"credentialsSecretRef": {"name": "c", "key": "t"}}},
        "status": status,
    }


def run_health(obj: dict[str, Any]) -> dict[str, Any]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, copy.deepcopy(obj))
    hs = lua.execute(LUA_FILE.read_text())
    return {k: hs[k] for k in ("status", "message")}


UNTIL = NOW + timedelta(minutes=2)
CASES = {
    # id: (object, Argo CD health, kstatus verdict)
    "authorized": (provider_object(CallOutcome(None, "", NOW)), "Healthy", "Current"),
    # kstatus reads Ready: not True is InProgress, until an endpoint has used the account.
    "unused": (provider_object(None), "Healthy", "InProgress"),
    "unauthorized": (
        provider_object(CallOutcome("Unauthorized", "HTTP 401: invalid key", NOW)),
        "Degraded",
        "Failed",
    ),
    "secret-missing": (
        provider_object(CallOutcome("SecretMissing", "Secret vault/c not found", NOW)),
        "Degraded",
        "Failed",
    ),
    "unreachable": (
        provider_object(CallOutcome("Unreachable", "cannot reach api", NOW)),
        "Degraded",
        "InProgress",
    ),
    "rate-limited": (
        provider_object(CallOutcome("RateLimited", "Retry-After", NOW, UNTIL)),
        "Progressing",
        "InProgress",
    ),
    "generation-lag": (
        provider_object(CallOutcome(None, "", NOW), generation=2, observed=1),
        "Progressing",
        "InProgress",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_argo_health(case: str) -> None:
    obj, argo, _ = CASES[case]
    hs = run_health(obj)
    assert hs["status"] == argo, hs
    assert "1/2 endpoints Ready" in hs["message"] or argo == "Progressing", hs


def test_messages_say_why() -> None:
    assert run_health(CASES["unauthorized"][0])["message"].startswith("HTTP 401: invalid key")
    assert "(until 2026-12-01T15:02:00Z)" in run_health(CASES["rate-limited"][0])["message"]
    assert run_health(CASES["unreachable"][0])["message"].startswith("Unreachable: cannot reach")


def test_kstatus() -> None:
    verdicts = kstatus_verdicts([obj for obj, _, _ in CASES.values()])
    got = {case: v.status for case, v in zip(CASES, verdicts, strict=True)}
    assert got == {case: kstatus for case, (_, _, kstatus) in CASES.items()}


def test_a_new_object_is_in_progress_for_kstatus() -> None:
    """The CRD's status default (observedGeneration 0) makes kstatus wait for the operator."""
    obj = provider_object(None)
    obj["status"] = {"observedGeneration": 0}
    assert kstatus_verdicts([obj])[0].status == "InProgress"
    assert run_health(obj)["status"] == "Progressing"
