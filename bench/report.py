"""What the benchmark tells: progress lines, the table of medians over the repeats, the verdicts
against the issue's targets, and the results file (bench/results/<timestamp>.json)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import ROOT
from inferenceops.api import parse_duration

RESULTS = ROOT / "bench" / "results"

#: Targets at N = 10,000, pollInterval 30 s (issue 6).
TARGETS = {
    "steady_writes_per_cycle": 0,
    "writes_per_change": 1,
    "list_requests_ratio": 0.05,
    "cpu_ratio": 1.5,
    "rss_mb": 250,
    "freshness_p99_extra_s": 2.0,
    "first_status_intervals": 2.0,
}

#: Several replicas against one at the same N and interval (issue 23): each member's RSS and
#: the members' total CPU per poll, as a share of one replica's.
REPLICA_TARGETS = {"member_rss_ratio": 0.6, "total_cpu_per_poll_ratio": 1.2}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


COLUMNS: list[tuple[str, str, str]] = [
    # (header, key in the row, format)
    ("N", "n", "d"),
    ("interval", "interval", "s"),
    ("reps", "repeats", "d"),
    ("create s", "create_s", ".1f"),
    ("all status s", "all_status_s", ".1f"),
    ("req/cycle", "requests_per_cycle", ".0f"),
    ("req/N", "requests_per_n", ".3f"),
    ("list req/N", "list_requests_per_n", ".4f"),
    ("writes/cycle", "steady_writes_per_cycle", ".1f"),
    ("writes/change", "writes_per_change", ".2f"),
    ("CPU s/1k polls", "cpu_per_1k_polls", ".3f"),
    ("floor s/1k", "floor_cpu_per_1k_polls", ".3f"),
    ("op/floor", "cpu_ratio", ".2f"),
    ("op/paced", "cpu_ratio_paced", ".2f"),
    ("RSS MB", "rss_mb", ".0f"),
    ("KB/res", "rss_per_resource_kb", ".1f"),
    ("fresh p50 s", "freshness_p50_s", ".1f"),
    ("fresh p99 s", "freshness_p99_s", ".1f"),
]

#: Shown only when a row ran several replicas; then RSS MB is the largest member's and CPU s/1k
#: polls the members' total CPU over their total polls.
REPLICA_COLUMNS: list[tuple[str, str, str]] = [
    ("replicas", "replicas", "d"),
    ("RSS MB sum", "rss_mb_total", ".0f"),
    ("Lease writes/s", "lease_writes_per_s", ".2f"),
]


def _replicas(row: Mapping[str, Any]) -> int:
    """Results from before issue 23 have no `replicas`: one operator."""
    return int(row.get("replicas") or 1)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    if any(_replicas(r) > 1 for r in rows):
        return COLUMNS + REPLICA_COLUMNS
    return COLUMNS


def summarize(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N, interval, replicas): the median of every numeric column over the
    repeats."""
    groups: dict[tuple[int, str, int], list[Mapping[str, Any]]] = {}
    for case in cases:
        groups.setdefault((int(case["n"]), str(case["interval"]), _replicas(case)), []).append(case)
    rows = []
    for (n, interval, replicas), group in sorted(
        groups.items(), key=lambda x: (x[0][0], parse_duration(x[0][1]), x[0][2])
    ):
        row: dict[str, Any] = {
            "n": n,
            "interval": interval,
            "replicas": replicas,
            "repeats": len(group),
        }
        for _, key, _fmt in COLUMNS + REPLICA_COLUMNS:
            if key in row:
                continue
            values = [c.get(key) for c in group]
            row[key] = median([v for v in values if isinstance(v, int | float)])
        rows.append(row)
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], markdown: bool = False) -> str:
    def cell(value: Any, fmt: str) -> str:
        if value is None:
            return "-"
        if fmt == "d":
            return str(int(value))
        if fmt == "s":
            return str(value)
        return format(float(value), fmt)

    columns = _columns(rows)
    header = [h for h, _, _ in columns]
    body = [[cell(r.get(k), f) for _, k, f in columns] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def verdicts(row: Mapping[str, Any]) -> dict[str, tuple[bool | None, str]]:
    """The issue's targets for one row: (met?, what was measured)."""
    interval = parse_duration(str(row["interval"]))

    def check(key: str, ok: Callable[[float], bool], show: str) -> tuple[bool | None, str]:
        value = row.get(key)
        if value is None:
            return None, f"{show}: not measured"
        return ok(float(value)), f"{show}: {value}"

    return {
        "zero steady writes": check("steady_writes_per_cycle", lambda v: v == 0, "writes/cycle"),
        "1 write per change": check("writes_per_change", lambda v: v == 1, "writes/change"),
        "list req <= 5% of N": check("list_requests_per_n", lambda v: v <= 0.05, "list req/N"),
        "CPU <= 1.5x floor": check("cpu_ratio", lambda v: v <= 1.5, "op/floor"),
        "RSS <= 250 MB": check("rss_mb", lambda v: v <= 250, "RSS MB"),
        "freshness p99 <= interval+2s": check(
            "freshness_p99_s", lambda v: v <= interval + 2, "p99 s"
        ),
        "all status <= 2x interval": check(
            "all_status_s", lambda v: v <= 2 * interval, "all status s"
        ),
    }


def row_name(row: Mapping[str, Any]) -> str:
    replicas = _replicas(row)
    return f"{row['n']}@{row['interval']}" + (f"x{replicas}" if replicas > 1 else "")


def replica_comparisons(
    rows: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]] = ()
) -> dict[str, dict[str, Any]]:
    """Each several-replica row against the one-replica row of the same N and interval (from
    this run, else from `baseline`, an earlier results file's rows): the largest member's RSS
    and the members' total CPU per 1k polls as ratios of one replica's, with their verdicts."""
    single = {
        (r["n"], r["interval"]): r for r in [*baseline, *rows] if _replicas(r) == 1
    }  # this run's rows last: they win over the baseline's
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        if _replicas(row) == 1:
            continue
        one = single.get((row["n"], row["interval"]))
        if one is None:
            out[row_name(row)] = {"error": "no one-replica row (run --replicas 1,N or --baseline)"}
            continue

        rss = _ratio(row, one, "rss_mb")
        cpu = _ratio(row, one, "cpu_per_1k_polls")
        out[row_name(row)] = {
            "one_replica": {k: one.get(k) for k in ("rss_mb", "cpu_per_1k_polls")},
            "member_rss_ratio": rss,
            "total_cpu_per_poll_ratio": cpu,
            "member_rss_ok": None if rss is None else rss <= REPLICA_TARGETS["member_rss_ratio"],
            "total_cpu_ok": (
                None if cpu is None else cpu <= REPLICA_TARGETS["total_cpu_per_poll_ratio"]
            ),
        }
    return out


def _ratio(row: Mapping[str, Any], one: Mapping[str, Any], key: str) -> float | None:
    mine, theirs = row.get(key), one.get(key)
    return round(mine / theirs, 3) if mine is not None and theirs else None


def results_document(
    meta: Mapping[str, Any],
    empty: Mapping[str, Any] | None,
    cases: Sequence[Mapping[str, Any]],
    failed: Sequence[str],
    baseline: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Everything measured, as the results file holds it."""
    rows = summarize(cases)
    return {
        "meta": meta,
        "empty_operator": empty,
        "rows": rows,
        "cases": cases,
        "failed": failed,
        "targets": TARGETS,
        "verdicts": {row_name(r): {k: v for k, v in verdicts(r).items()} for r in rows},
        "replica_targets": REPLICA_TARGETS,
        "replicas_vs_one": replica_comparisons(rows, baseline),
    }


def print_report(doc: Mapping[str, Any]) -> None:
    """The table, the empty operator, each row's verdict and the failed cases, on stdout."""
    rows, empty, failed = doc["rows"], doc["empty_operator"], doc["failed"]
    print(format_table(rows))
    if empty:
        print(f"\nempty operator: RSS {empty['rss_mb']} MB, idle CPU {empty['idle_cpu_per_s']} s/s")
    for r in rows:
        bad = [f"{k} ({v[1]})" for k, v in verdicts(r).items() if v[0] is False]
        replicas = f" x{_replicas(r)} replicas" if _replicas(r) > 1 else ""
        print(
            f"N={r['n']} {r['interval']}{replicas}: "
            + ("all targets met" if not bad else "missed: " + "; ".join(bad))
        )
    for case in doc["cases"]:
        for i, one in enumerate(case.get("by_replica") or []):
            print(
                f"  N={case['n']} {case['interval']} r{case['repeat']} replica {i}: "
                f"{one['polls_per_cycle']} polls/cycle, {one['cpu_per_1k_polls']} CPU s/1k polls, "
                f"RSS {one['rss_mb']} MB, owns {one['endpoints_owned']}"
            )
    for name, c in (doc.get("replicas_vs_one") or {}).items():
        if "error" in c:
            print(f"{name} vs one replica: {c['error']}")
            continue
        print(
            f"{name} vs one replica (RSS {c['one_replica']['rss_mb']} MB, "
            f"{c['one_replica']['cpu_per_1k_polls']} CPU s/1k polls): largest member's RSS "
            f"{c['member_rss_ratio']}x (target <= {REPLICA_TARGETS['member_rss_ratio']}: "
            f"{_met(c['member_rss_ok'])}), total CPU per poll {c['total_cpu_per_poll_ratio']}x "
            f"(target <= {REPLICA_TARGETS['total_cpu_per_poll_ratio']}: {_met(c['total_cpu_ok'])})"
        )
    if failed:
        print("failed cases:\n  " + "\n  ".join(failed))


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "MISSED")


def save(doc: Mapping[str, Any], results: Path, stamp: str) -> None:
    out = results / f"{stamp}.json"
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    # Imported here: matplotlib costs a second, and only a saved run draws.
    from bench import figures

    for png in figures.draw(json.loads(out.read_text()), results, stamp):
        print(f"wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
