"""kstatus verdicts (sigs.k8s.io/cli-utils status.Compute, as Flux uses it) for every fixture.

Each row of fixtures.CASES is one parametrized case carrying the verdict a user wants.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta

import pytest

from . import fixtures
from .fixtures import CASES, endpoint
from .kstatus import kstatus_verdict, kstatus_verdicts


@pytest.fixture(scope="module")
def verdicts():
    """All verdicts in one run of the checker (one process for the whole table)."""
    return dict(zip((c.id for c in CASES), kstatus_verdicts([c.obj for c in CASES]), strict=True))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_verdict(case: fixtures.Case, verdicts) -> None:
    v = verdicts[case.id]
    assert v.error is None, v.error
    assert v.status == case.kstatus, f"{case.id}: kstatus says {v.status} ({v.message})"


@pytest.mark.parametrize("reason", sorted(fixtures.STALLING_FAILURES))
def test_failed_message_is_the_stalled_message(reason: str) -> None:
    obj = endpoint("m", status=fixtures.build_status("Running", sync_failure=reason))
    v = kstatus_verdict(obj)
    assert (v.status, v.message) == ("Failed", fixtures.sync_failure_message(reason))


def test_single_object_and_array_input_agree() -> None:
    obj = fixtures.CASES_BY_ID["polled-Running"].obj
    assert kstatus_verdicts(obj) == kstatus_verdicts([obj, obj])[:1]


def test_no_status_is_current_in_kstatus() -> None:
    """Why the CRD needs a status default: without any status, kstatus can only say Current.

    status.Compute: no deletionTimestamp; checkGeneration skips a missing
    status.observedGeneration; no Reconciling/Stalled; not a built-in kind; no Ready
    condition -> "Resource is current".
    """
    for obj in (endpoint("bare"), endpoint("empty", status={})):
        v = kstatus_verdict(obj)
        assert (v.status, v.message) == ("Current", "Resource is current")


@pytest.mark.parametrize("default", [{"observedGeneration": 0}, {"observedGeneration": -1}])
def test_crd_status_default_makes_fresh_objects_in_progress(default) -> None:
    v = kstatus_verdict(endpoint("fresh", status=copy.deepcopy(default)))
    assert v.status == "InProgress"
    assert v.message == (
        f"InferenceEndpoint generation is 1, but latest observed generation is "
        f"{default['observedGeneration']}"
    )


def test_first_status_write_replaces_the_default() -> None:
    """The operator's first write sets observedGeneration = generation: the default is gone."""
    status = dict(fixtures.CRD_STATUS_DEFAULT)
    status.update(fixtures.build_status("Running"))
    assert kstatus_verdict(endpoint("x", status=status)).status == "Current"


@pytest.mark.parametrize("phase", sorted(fixtures.WANTED_WITH_FLUX_EXPRS))
def test_user_requested_steady_states_need_flux_exprs(phase: str) -> None:
    """Sleeping/Suspended: Ready=False, so raw kstatus says InProgress (Flux would wait for them
    until its timeout); docs/gitops.md's healthCheckExprs make them Current."""
    v = kstatus_verdict(endpoint("s", status=fixtures.build_status(phase)))
    assert v.status == "InProgress"
    assert fixtures.WANTED_WITH_FLUX_EXPRS[phase] == "Current"


def test_condition_order_decides_reconciling_vs_stalled() -> None:
    """kstatus scans conditions in order and returns on the first Reconciling=True or
    Stalled=True. Pinned here because it is why the operator never sets both."""
    status = fixtures.build_status("Provisioning", sync_failure="Unauthorized")
    conds = {c["type"]: c for c in status["conditions"]}
    conds["Reconciling"] = {**conds["Stalled"], "type": "Reconciling", "reason": "Provisioning"}
    both = [conds["Ready"], conds["Synced"], conds["Reconciling"], conds["Stalled"]]
    swapped = [conds["Ready"], conds["Synced"], conds["Stalled"], conds["Reconciling"]]
    without = [conds["Ready"], conds["Synced"], conds["Stalled"]]
    objs = [endpoint("o", status={**status, "conditions": c}) for c in (both, swapped, without)]
    assert [v.status for v in kstatus_verdicts(objs)] == ["InProgress", "Failed", "Failed"]


# ---- the operator's own status code, through kstatus ------------------------------------------

status_mod = pytest.importorskip("inferenceops.status")
providers = pytest.importorskip("inferenceops.providers")

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _res(now=T0, last_success=None, generation=1):
    return status_mod.Resource(
        generation=generation,
        provider="runpod",
        endpoint="ep",
        poll_interval=30.0,
        now=now,
        last_success=last_success,
    )


def _observed(phase: str, **kw):
    return status_mod.after_observation(
        None,
        providers.Observation(phase=providers.Phase(phase), provider_status=phase.upper(), **kw),
        _res(),
    )


_OP_CASES = (
    [
        pytest.param(
            lambda p=p: _observed(p), fixtures.PHASE_VERDICTS[p][0], id=f"operator-polled-{p}"
        )
        for p in fixtures.PHASES
    ]
    + [
        pytest.param(
            lambda r=r: status_mod.after_failure(
                _observed("Running"),
                status_mod.Failure(r, "x"),
                _res(T0 + timedelta(seconds=30), last_success=T0),
            ),
            "Failed" if r in fixtures.STALLING_FAILURES else "Current",
            id=f"operator-Running-then-{r}",
        )
        for r in fixtures.SYNC_FAILURES
    ]
    + [
        pytest.param(
            lambda r=r: status_mod.after_failure(None, status_mod.Failure(r, "x"), _res()),
            "Failed" if r in fixtures.STALLING_FAILURES else "InProgress",
            id=f"operator-first-poll-{r}",
        )
        for r in fixtures.SYNC_FAILURES
    ]
    + [
        pytest.param(
            lambda: status_mod.after_failure(
                _observed("Running"),
                status_mod.Failure("Unreachable", "x"),
                _res(T0 + timedelta(minutes=5), last_success=T0),
            ),
            "InProgress",
            id="operator-stale-Running",
        ),
        pytest.param(
            lambda: status_mod.after_failure(
                _observed("Terminating"),
                status_mod.Failure("NotFound", "gone"),
                _res(T0 + timedelta(seconds=30), last_success=T0),
            ),
            "Failed",
            id="operator-Terminating-then-NotFound",
        ),
    ]
)


@pytest.mark.parametrize("make_status,expected", _OP_CASES)
def test_operator_status_code(make_status, expected: str) -> None:
    """The same table, with status written by operator/inferenceops/status.py itself."""
    obj = endpoint("op", status=make_status())
    v = kstatus_verdict(obj)
    conds = obj["status"]["conditions"]
    assert v.status == expected, f"{v.status}: {v.message}; conditions={conds}"


@pytest.mark.parametrize("phase", fixtures.PHASES)
def test_docs_table_row(phase: str) -> None:
    """docs/gitops.md's phase table says what these tests check."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "gitops.md").read_text()
    rows = [r for r in doc.splitlines() if re.match(rf"\|\s*{phase}\s*\|", r)]
    assert len(rows) == 1, rows
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    ks, argo = fixtures.PHASE_VERDICTS[phase]
    assert cells[1].split()[0] == ks
    assert cells[2].split()[0].rstrip(",") == argo


def test_no_fixture_has_reconciling_and_stalled_together() -> None:
    for case in CASES:
        both = fixtures.condition(case.obj, "Reconciling") and fixtures.condition(
            case.obj, "Stalled"
        )
        assert not both, case.id
