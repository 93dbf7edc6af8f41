"""The benchmark's figures, drawn from a results file: CPU per poll against the floor, the freshness
(change to status write) distribution and the start-up curve (endpoints with a status over time).

`make bench` draws them next to its results (bench/results/<stamp>-<figure>.png); for an older
results file: `python bench/figures.py bench/results/<stamp>.json [--out DIR]`. A figure whose
data the run did not keep (a --startup-only run has no steady window) is left out and said so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

Case = Mapping[str, Any]
Doc = Mapping[str, Any]

#: Same look in every figure; the size fits a docs page without scaling.
SIZE = (7.0, 4.0)
DPI = 100
OPERATOR_COLOR = "#1f77b4"
FLOOR_COLOR = "#999999"


def _label(case: Case) -> str:
    replicas = int(case.get("replicas") or 1)
    return f"N={case['n']} @ {case['interval']}" + (
        f", {replicas} replicas" if replicas > 1 else ""
    )


def _stamp(doc: Doc) -> str:
    meta = doc.get("meta") or {}
    run, git, cpus = (meta.get(k, "?") for k in ("timestamp", "git", "cpus"))
    return f"run {run} (git {git}, {cpus} CPUs)"


def _new(title: str, doc: Doc) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI, layout="constrained")
    fig.suptitle(title, fontsize=11)
    ax.set_title(_stamp(doc), fontsize=7, color="#666666")
    ax.grid(True, alpha=0.3)
    return fig, ax


def cpu_per_poll(doc: Doc) -> Figure | None:
    """Operator CPU seconds per 1,000 polls next to the floor (the same requests made by a bare
    httpx loop), one pair of bars per case, with the ratio on top."""
    cases = [
        c
        for c in doc["cases"]
        if c.get("cpu_per_1k_polls") is not None and c.get("floor_cpu_per_1k_polls") is not None
    ]
    if not cases:
        return None
    fig, ax = _new("CPU per 1,000 polls: operator against the floor (ratio on top)", doc)
    xs = range(len(cases))
    width = 0.3
    op = [float(c["cpu_per_1k_polls"]) for c in cases]
    floor = [float(c["floor_cpu_per_1k_polls"]) for c in cases]
    limit = doc.get("targets", {}).get("cpu_ratio")
    ax.bar([x - width / 2 for x in xs], op, width, label="operator", color=OPERATOR_COLOR)
    ax.bar([x + width / 2 for x in xs], floor, width, label="floor", color=FLOOR_COLOR)
    for x, o, f in zip(xs, op, floor, strict=True):
        ax.annotate(f"{o / f:.2f}x", (x - width / 2, o), ha="center", va="bottom", fontsize=8)
        if limit:
            ax.hlines(f * limit, x - width, x, colors="#d62728", linestyles="--", linewidth=1.5)
    if limit:
        ax.plot([], [], color="#d62728", linestyle="--", label=f"target: {limit}x the floor")
    # One line per part: six cases' labels side by side would overlap.
    ticks = [f"{_label(c)}, repeat {c.get('repeat', 0) + 1}".replace(", ", "\n") for c in cases]
    ax.set_xticks(list(xs), ticks, fontsize=8)
    ax.set_xlim(-0.75, len(cases) - 0.25)
    ax.set_ylabel("CPU seconds per 1,000 polls")
    ax.set_ylim(0, max([*op, *(f * (limit or 1) for f in floor)]) * 1.2)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def freshness(doc: Doc) -> Figure | None:
    """Each changed endpoint's time from the provider change to its status write, as a cumulative
    distribution, with the interval (the longest a poll can take to notice) marked."""
    cases = [c for c in doc["cases"] if c.get("freshness_s")]
    if not cases:
        return None
    fig, ax = _new("Freshness: provider change to status write", doc)
    for case in cases:
        values = sorted(float(v) for v in case["freshness_s"])
        shares = [(i + 1) / len(values) for i in range(len(values))]
        ax.step(values, shares, where="post", label=f"{_label(case)} ({len(values)} changes)")
    for interval in sorted({float(c["interval_s"]) for c in cases}):
        ax.axvline(interval, color=FLOOR_COLOR, linestyle="--", linewidth=1)
        ax.axvline(interval + 2, color="#d62728", linestyle=":", linewidth=1)
        ax.annotate(
            f"interval {interval:g} s", (interval, 0.5), rotation=90, fontsize=8, ha="right"
        )
        ax.annotate(
            "p99 target: interval + 2 s", (interval + 2, 0.5), rotation=90, fontsize=8, ha="left"
        )
    ax.set_xlabel("seconds from the change to the status write")
    ax.set_ylabel("share of changes")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, max(float(c["interval_s"]) for c in cases) + 5)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def startup(doc: Doc) -> Figure | None:
    """Endpoints with a status against seconds since the operator started, one curve per case."""
    cases = [c for c in doc["cases"] if c.get("startup_timeline")]
    if not cases:
        return None
    fig, ax = _new("Start-up: endpoints with a status", doc)
    for case in cases:
        points = [(float(t), int(n)) for t, n in case["startup_timeline"]]
        if case.get("all_status_s") is not None and case.get("with_status") is not None:
            points.append((float(case["all_status_s"]), int(case["with_status"])))
        ts, ns = zip(*sorted(points), strict=True)
        line = ax.plot(ts, ns, marker=".", label=_label(case))[0]
        ax.axhline(int(case["n"]), color=line.get_color(), linestyle=":", linewidth=1)
    top = max(int(c["n"]) for c in cases)
    for interval in sorted({float(c["interval_s"]) for c in cases}):
        ax.axvline(2 * interval, color="#d62728", linestyle=":", linewidth=1)
        ax.annotate(
            f"target: every status within 2 x interval = {2 * interval:g} s",
            (2 * interval, top / 2),
            rotation=90,
            fontsize=8,
            ha="right",
            va="center",
        )
    ax.set_xlabel("seconds since the operator started")
    ax.set_ylabel("endpoints with a status")
    ax.set_xlim(left=0)
    ax.set_ylim(0, top * 1.05)
    ax.legend(fontsize=8, loc="upper left")
    return fig


FIGURES: dict[str, Callable[[Doc], Figure | None]] = {
    "cpu-per-poll": cpu_per_poll,
    "freshness": freshness,
    "startup": startup,
}


def draw(doc: Doc, out: Path, stamp: str) -> list[Path]:
    """Every figure the results hold data for, as out/<stamp>-<name>.png; the paths written."""
    written = []
    for name, make in FIGURES.items():
        fig = make(doc)
        if fig is None:
            print(f"figure {name}: the results hold no data for it", file=sys.stderr)
            continue
        path = out / f"{stamp}-{name}.png"
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/figures.py", description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path, help="a results file, bench/results/<stamp>.json")
    p.add_argument("--out", type=Path, help="directory for the PNGs (default: the file's)")
    p.add_argument("--stamp", help="file name prefix (default: the results file's name)")
    args = p.parse_args(argv)
    doc = json.loads(args.results.read_text())
    out = args.out or args.results.parent
    out.mkdir(parents=True, exist_ok=True)
    for path in draw(doc, out, args.stamp or args.results.stem):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
