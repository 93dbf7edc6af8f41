"""tests/processes.OperatorProcess: an operator that never becomes healthy is not left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import processes


def test_an_operator_that_never_gets_healthy_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[processes.OperatorProcess] = []

    def never(self: processes.OperatorProcess, timeout: float = 120) -> float:
        started.append(self)
        raise TimeoutError("the operator's liveness endpoint")

    monkeypatch.setattr(processes.OperatorProcess, "wait_healthy", never)
    with pytest.raises(TimeoutError):
        processes.OperatorProcess(str(tmp_path / "no-kubeconfig"), tmp_path / "operator.log")
    (op,) = started
    assert op.proc.poll() is not None, "stopped, not left running"


def test_a_restarted_operator_keeps_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A test restarting the session's operator once dropped its --cluster-secret-namespace
    # flags, and later tests in other modules failed for it.
    monkeypatch.setattr(processes.OperatorProcess, "wait_healthy", lambda self, timeout=120: 0.0)
    op = processes.OperatorProcess(
        str(tmp_path / "no-kubeconfig"),
        tmp_path / "operator.log",
        ["--cluster-secret-namespace=vault"],
        allow_insecure_http=False,
    )
    try:
        first = list(op.proc.args)  # type: ignore[arg-type]
        op.restart()
        again = list(op.proc.args)  # type: ignore[arg-type]
    finally:
        op.stop()
    assert "--cluster-secret-namespace=vault" in again
    assert "--allow-insecure-http" not in again
    # Only the free ports it was given differ.
    assert [a for a in first if not a.isdigit()] == [a for a in again if not a.isdigit()]
