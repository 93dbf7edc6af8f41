"""docs/argocd/health.lua, run the way Argo CD runs it (Lua 5.1 semantics: gopher-lua), over
every fixture; and the argocd-cm snippet embedding the very same Lua."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferenceops import status as st
from inferenceops.providers import Observation, Phase

from . import fixtures
from .fixtures import CASES

lupa = pytest.importorskip("lupa")
from lupa import lua51  # noqa: E402  (Lua 5.1, like Argo CD's gopher-lua)

ROOT = Path(__file__).resolve().parents[2]
LUA_FILE = ROOT / "docs" / "argocd" / "health.lua"
CM_FILE = ROOT / "docs" / "argocd" / "argocd-cm.yaml"
CM_KEY = "resource.customizations.health.inferenceops.io_InferenceEndpoint"
ARGO_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def to_lua(lua: Any, value: Any) -> Any:
    """Python -> Lua, recursively, as Argo CD hands `obj` to the script (arrays 1-based)."""
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def run_health(obj: dict[str, Any]) -> dict[str, Any]:
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    assert lua.eval("_VERSION") == "Lua 5.1"
    lua.globals().obj = to_lua(lua, copy.deepcopy(obj))
    # Argo CD runs the script as a chunk with `obj` as a global and reads the returned table.
    hs = lua.execute(LUA_FILE.read_text())
    assert hs is not None, "health.lua returned nothing"
    return {k: hs[k] for k in ("status", "message")}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_health(case: fixtures.Case) -> None:
    hs = run_health(case.obj)
    assert hs["status"] == case.argo, f"{case.id}: {hs}"
    assert isinstance(hs["message"], str) and hs["message"], hs
    if case.argo_message is not None:
        assert hs["message"] == case.argo_message
    for part in case.argo_message_contains:
        assert part in hs["message"], hs["message"]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id)
        for c in CASES
        if len((c.obj.get("status") or {}).get("conditions") or []) > 1
    ],
)
def test_health_does_not_depend_on_condition_order(case: fixtures.Case) -> None:
    obj = copy.deepcopy(case.obj)
    obj["status"]["conditions"].reverse()
    assert run_health(obj) == run_health(case.obj)


def test_stalled_wins_over_reconciling_in_argo() -> None:
    """Unlike kstatus, the Lua looks for Stalled first: SecretMissing on a new endpoint is
    Degraded whatever the operator's condition order."""
    obj = fixtures.endpoint(
        "s", status=fixtures.build_status("Pending", first_poll=True, sync_failure="SecretMissing")
    )
    assert run_health(obj) == {
        "status": "Degraded",
        "message": fixtures.sync_failure_message("SecretMissing"),
    }


def test_float_generations_from_gopher_lua() -> None:
    """gopher-lua has only float64 numbers: 2.0 must equal 2 and print as in the message."""
    obj = fixtures.endpoint(
        "f", generation=3, status=fixtures.build_status("Running", generation=2)
    )
    obj["metadata"]["generation"] = 3.0
    obj["status"]["observedGeneration"] = 2.0
    hs = run_health(obj)
    assert hs["status"] == "Progressing"
    assert re.search(r"generation 3(\.0)? \(observed 2(\.0)?\)", hs["message"])
    obj["metadata"]["generation"] = 2.0
    assert run_health(obj)["status"] == "Healthy"


def test_lua_is_lua51() -> None:
    """gopher-lua is Lua 5.1: no goto/labels, no integer division, no bitwise operators."""
    src = LUA_FILE.read_text()
    code = "\n".join(line.split("--", 1)[0] for line in src.splitlines())
    assert not re.search(r"\bgoto\b|::\w+::", code)
    assert "//" not in code
    assert not re.search(r"[^~=<>]~[^=]|<<|>>|&|\|", code)
    lua51.LuaRuntime().execute(f"return function() {src} end")  # compiles under 5.1


def test_every_status_is_an_argo_health_code() -> None:
    assert {c.argo for c in CASES} <= ARGO_HEALTH


def test_snippet_embeds_the_same_lua() -> None:
    cm = yaml.safe_load(CM_FILE.read_text())
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "argocd-cm"
    provider_keys = [
        f"resource.customizations.health.inferenceops.io_{kind}"
        for kind in ("InferenceProvider", "ClusterInferenceProvider")
    ]
    assert list(cm["data"]) == [CM_KEY, *provider_keys]
    assert cm["data"][CM_KEY] == LUA_FILE.read_text()
    provider_lua = (ROOT / "docs" / "argocd" / "provider-health.lua").read_text()
    assert all(cm["data"][key] == provider_lua for key in provider_keys)
    # the key as written in the file, not just as parsed
    assert re.search(rf"^  {re.escape(CM_KEY)}: \|$", CM_FILE.read_text(), re.M)


# ---- the operator's own status after a temporary poll failure, through the Lua ------------------

TRANSIENT_FAILURES = ("Unreachable", "Timeout", "RateLimited", "BadResponse")
#: Where the Lua does not append "(last poll failed: …)": the message is the failure's own.
OWN_MESSAGE = {
    "Failed": "OOM: no GPU memory",
    "Terminated": "the provider has terminated the endpoint",
}


def _after_temporary_failure(phase: str, reason: str) -> dict[str, Any]:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)

    def res(now: datetime) -> st.Resource:
        return st.Resource(
            generation=1,
            provider="runpod",
            endpoint="ep",
            poll_interval=30.0,
            now=now,
            last_success=t0,
        )

    failure = {"error_code": "OOM", "error_message": "no GPU memory"} if phase == "Failed" else {}
    seen = st.after_observation(None, Observation(Phase(phase), phase.upper(), **failure), res(t0))
    later = res(t0 + timedelta(seconds=30))
    return st.after_failure(seen, st.Failure(reason, "connection refused"), later)


@pytest.mark.parametrize("reason", TRANSIENT_FAILURES)
@pytest.mark.parametrize("phase", fixtures.PHASES)
def test_temporary_poll_failure_message(phase: str, reason: str) -> None:
    """docs/gitops.md: the message ends "(last poll failed: …)", except for Failed and
    Terminated, whose message stays the failure's own; the verdict is the phase's."""
    hs = run_health(fixtures.endpoint("op", status=_after_temporary_failure(phase, reason)))
    assert hs["status"] == fixtures.PHASE_VERDICTS[phase][1]
    if phase in OWN_MESSAGE:
        assert hs["message"] == OWN_MESSAGE[phase]
    else:
        assert hs["message"].endswith(f" (last poll failed: {reason}: connection refused)")
