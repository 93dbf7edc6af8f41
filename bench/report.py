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


def summarize(cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (N, interval): the median of every numeric column over the repeats."""
    groups: dict[tuple[int, str], list[Mapping[str, Any]]] = {}
    for case in cases:
        groups.setdefault((int(case["n"]), str(case["interval"])), []).append(case)
    rows = []
    for (n, interval), group in sorted(
        groups.items(), key=lambda x: (x[0][0], parse_duration(x[0][1]))
    ):
        row: dict[str, Any] = {"n": n, "interval": interval, "repeats": len(group)}
        for _, key, _fmt in COLUMNS:
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

    header = [h for h, _, _ in COLUMNS]
    body = [[cell(r.get(k), f) for _, k, f in COLUMNS] for r in rows]
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


def results_document(
    meta: Mapping[str, Any],
    empty: Mapping[str, Any] | None,
    cases: Sequence[Mapping[str, Any]],
    failed: Sequence[str],
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
        "verdicts": {
            f"{r['n']}@{r['interval']}": {k: v for k, v in verdicts(r).items()} for r in rows
        },
    }


def print_report(doc: Mapping[str, Any]) -> None:
    """The table, the empty operator, each row's verdict and the failed cases, on stdout."""
    rows, empty, failed = doc["rows"], doc["empty_operator"], doc["failed"]
    print(format_table(rows))
    if empty:
        print(f"\nempty operator: RSS {empty['rss_mb']} MB, idle CPU {empty['idle_cpu_per_s']} s/s")
    for r in rows:
        bad = [f"{k} ({v[1]})" for k, v in verdicts(r).items() if v[0] is False]
        print(
            f"N={r['n']} {r['interval']}: "
            + ("all targets met" if not bad else "missed: " + "; ".join(bad))
        )
    if failed:
        print("failed cases:\n  " + "\n  ".join(failed))


def save(doc: Mapping[str, Any], results: Path, stamp: str) -> None:
    out = results / f"{stamp}.json"
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    # Imported here: matplotlib costs a second, and only a saved run draws.
    from bench import figures

    for png in figures.draw(json.loads(out.read_text()), results, stamp):
        print(f"wrote {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")
