"""README's condition table says what the code does: the `Stalled` row names exactly the phases
and reasons that make an endpoint Stalled, the `Synced` row exactly the reasons of Synced=False.

The code is the truth: the reasons are every `ErrorReason` and every reason constant of
status.py (where the reasons outside providers/ are kept), and which of them stall is found by
running status.py, so a reason added to the code and not to README fails here.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

from inferenceops import status as st
from inferenceops.providers import ErrorReason, Observation, Phase

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "inferenceops"
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
RES = st.Resource(1, "nsModelServer", "ep", 30.0, T0, last_success=T0)

#: A status.py constant naming a reason: UPPER_CASE bound to a CamelCase word.
_REASON_VALUE = re.compile(r"[A-Z][A-Za-z]+")


def synced_false_reasons() -> set[str]:
    constants = {
        value
        for name, value in vars(st).items()
        if name.isupper() and isinstance(value, str) and _REASON_VALUE.fullmatch(value)
    }
    return constants | {reason.value for reason in ErrorReason}


def stalled_by_a_failure() -> set[str]:
    running = st.after_observation(None, Observation(Phase.RUNNING, "RUNNING"), RES)
    out: set[str] = set()
    for reason in synced_false_reasons():
        status = st.after_failure(running, st.Failure(reason, "why"), RES)
        stalled = st.condition(status, "Stalled")
        if stalled is not None:
            assert stalled["reason"] == reason
            out.add(reason)
    return out


def stalled_phases() -> set[str]:
    out: set[str] = set()
    for phase in Phase:
        status = st.after_observation(None, Observation(phase, phase.value.upper()), RES)
        stalled = st.condition(status, "Stalled")
        if stalled is not None:
            assert stalled["reason"] == phase.value
            out.add(phase.value)
    return out


def readme_row(condition: str) -> set[str]:
    """The words of the README condition table's row for `condition`."""
    rows = [
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith(f"| `{condition}` |")
    ]
    assert len(rows) == 1, f"README.md has {len(rows)} condition rows for {condition}"
    return set(re.findall(r"[A-Za-z]+", rows[0].split("|")[2]))


def vocabulary() -> set[str]:
    return synced_false_reasons() | {phase.value for phase in Phase}


def test_the_stalled_row_names_exactly_what_stalls() -> None:
    code = stalled_by_a_failure() | stalled_phases()
    # Guard the probe itself: these are known to stall; if they vanish, the probe is broken.
    assert {"Failed", "Terminated", "Unauthorized", "InsecureURL"} <= code
    said = readme_row("Stalled") & vocabulary()
    assert not code - said, f"README's Stalled row does not name {sorted(code - said)}"
    assert not said - code, f"README's Stalled row names what does not stall: {sorted(said - code)}"


def test_the_synced_row_names_every_reason_of_a_failed_poll() -> None:
    code = synced_false_reasons()
    assert {"SecretMissing", "InternalError", "ProviderMissing", "Timeout"} <= code
    said = readme_row("Synced") & vocabulary()
    assert not code - said, f"README's Synced row does not name {sorted(code - said)}"
    assert not said - code, f"README's Synced row names no such reason: {sorted(said - code)}"


def test_every_failure_reason_is_a_status_constant_or_an_error_reason() -> None:
    """What the rows are checked against is complete: no Failure or Unresolved in the package
    spells its reason inline, where the scan above would not see it."""
    inline: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if called not in ("Failure", "Unresolved"):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if isinstance(first, ast.Constant):
                inline.append(where)
            # A constant by name (INVALID_SPEC, st.INVALID_SPEC) must be status.py's.
            name = first.id if isinstance(first, ast.Name) else None
            if isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name):
                name = first.attr if first.value.id == "st" else None
            if name is not None and name.isupper():
                assert getattr(st, name, None) in synced_false_reasons(), f"{where}: {name}"
    assert not inline, f"reasons spelt inline (make them status.py constants): {inline}"
