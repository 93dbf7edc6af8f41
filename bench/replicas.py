"""Several operator processes in one case (issue 23): started with the same arguments, they
share the endpoints through their Leases; each one's share of the steady window, and what is
left of them once stopped."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.observe import metric_sum
from bench.processes import OperatorProc


def start(
    kubeconfig: str, workdir: Path, tag: str, args: Sequence[str], count: int
) -> list[OperatorProc]:
    """`count` operators, one log each (`operator-<tag>.log` alone, `-<i>` with several)."""
    ops: list[OperatorProc] = []
    try:
        for i in range(count):
            suffix = f"-{i}" if count > 1 else ""
            ops.append(OperatorProc(kubeconfig, workdir / f"operator-{tag}{suffix}.log", args))
    except BaseException:
        for op in ops:
            op.stop()
        raise
    return ops


def running(ops: list[OperatorProc]) -> list[OperatorProc]:
    if not ops:
        raise RuntimeError("the operator is not started")
    return ops


def summed_delta(
    before: Sequence[dict[str, float]], after: Sequence[dict[str, float]], name: str, **labels: str
) -> float:
    """A metric's growth between two snapshots of every replica's metrics, summed."""
    return sum(
        metric_sum(a, name, **labels) - metric_sum(b, name, **labels)
        for b, a in zip(before, after, strict=True)
    )


def steady_by_replica(
    metrics_before: Sequence[dict[str, float]],
    metrics_after: Sequence[dict[str, float]],
    cpu_before: Sequence[float],
    cpu_after: Sequence[float],
    rss: Sequence[int],
    cycles: float,
) -> list[dict[str, Any]]:
    """Each replica's polls, CPU and RSS over the steady window, and what it owns."""
    out = []
    for before, after, c0, c1, one_rss in zip(
        metrics_before, metrics_after, cpu_before, cpu_after, rss, strict=True
    ):
        polls = metric_sum(after, "inferenceops_polls_total") - metric_sum(
            before, "inferenceops_polls_total"
        )
        cpu = c1 - c0
        out.append(
            {
                "polls_per_cycle": round(polls / cycles, 1),
                "cpu_s": round(cpu, 3),
                "cpu_per_1k_polls": round(cpu / polls * 1000, 4) if polls else None,
                "rss_mb": round(one_rss / 2**20, 1),
                "endpoints_owned": metric_sum(after, "inferenceops_endpoints_owned") or None,
                "members_seen": metric_sum(after, "inferenceops_members") or None,
            }
        )
    return out


def stop(ops: Sequence[OperatorProc]) -> dict[str, Any]:
    """Stops them; the largest peak RSS and its timeline, each one's peak, the exit codes (one
    replica: as before issue 23, a single peak and exit code)."""
    largest = max(ops, key=lambda o: o.peak_rss)
    step = max(1, len(largest.rss_timeline) // 120)  # at most ~120 points in the JSON
    out: dict[str, Any] = {
        "peak_rss_mb": round(largest.peak_rss / 2**20, 1),
        "rss_timeline_mb": largest.rss_timeline[::step],
    }
    if len(ops) > 1:
        out["peak_rss_mb_by_replica"] = [round(o.peak_rss / 2**20, 1) for o in ops]
    for op in ops:
        op.stop()
    exits = [op.proc.returncode for op in ops]
    out["operator_exit"] = exits[0] if len(exits) == 1 else exits
    return out
