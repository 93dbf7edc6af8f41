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
