"""The scale benchmark (issue 6): the real operator against a local kube-apiserver + etcd and the
provider emulator, at N = 100, 1,000, 10,000 InferenceEndpoints.

    .venv/bin/python bench/run.py [--sizes 100,1000,10000] [--intervals 30s[,60s]] [--repeats N]
                                  [--replicas 1[,3]] [--baseline bench/results/<one replica>.json]
                                  [--mix dataarts=30,friendli=25,runpod-v1=20,runpod-v2=5,...]

Per case (one N, one interval, one repeat) it starts a fresh control plane, resets the emulator,
creates the resources, starts the operator and measures: time to every resource having a status,
provider requests / API writes / CPU per steady cycle, RSS, freshness after K real changes and
writes per change; then stops the operator and runs the floor (bench/floor.py) over the same
requests. With `--replicas N` it starts N operator processes with the same arguments (they
share the endpoints through their Leases) and reports each one's CPU, polls and RSS, their
totals, the Lease writes per second, and the ratios to one replica at the same N (the
one-replica row of this run, or of `--baseline`). Prints one table of medians and writes
bench/results/<timestamp>.json. Method and how to read the table: docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import endpoints  # noqa: E402
from bench.case import Options, run_case  # noqa: E402
from bench.kube import TOKEN  # noqa: E402
from bench.report import RESULTS, log, print_report, results_document, save  # noqa: E402
from inferenceops_emulator.process import emulator_process  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--intervals", default="30s")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="repeats per (N, interval); default 3 for N <= 1000 and 1 above",
    )
    p.add_argument(
        "--mix",
        default=endpoints.DEFAULT_MIX,
        help=f"kind=weight,... (default {endpoints.DEFAULT_MIX})",
    )
    p.add_argument("--workspaces", type=int, default=3, help="DataArts workspaces")
    p.add_argument("--teams", type=int, default=2, help="Friendli teams (one account each)")
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument("--steady-cycles", type=int, default=3)
    p.add_argument("--changes", type=int, default=50, help="K endpoints changed for freshness")
    p.add_argument("--create-concurrency", type=int, default=32)
    p.add_argument(
        "--floor-pace",
        choices=("burst", "interval", "both"),
        default="burst",
        help="floor cycles back to back, spaced by the interval, or both (op/paced column)",
    )
    p.add_argument(
        "--profile", action="store_true", help="py-spy the operator's start-up and steady windows"
    )
    p.add_argument(
        "--startup-only",
        action="store_true",
        help="end each case once every resource has a status (no steady window, changes, floor)",
    )
    p.add_argument("--profile-min-n", type=int, default=0, help="profile only N >= this")
    p.add_argument(
        "--provider-objects",
        action="store_true",
        help="endpoints share one ClusterInferenceProvider per kind (spec.providerRef)",
    )
    p.add_argument(
        "--inventory",
        default=None,
        metavar="INTERVAL",
        help="with --provider-objects: spec.inventory {interval: INTERVAL} on each (issue 25)",
    )
    p.add_argument(
        "--operator-arg", action="append", default=[], help="extra `inferenceops run` arg"
    )
    p.add_argument(
        "--replicas",
        default="1",
        help="operator processes per case, a list: 1,3 runs every size with 1 and with 3",
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="a results file whose one-replica rows the several-replica rows are compared with "
        "when this run has none",
    )
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--no-save", action="store_true")
    return p.parse_args(argv)


def git_rev() -> str | None:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip() + (
            "+dirty"
            if subprocess.run(
                ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
            ).stdout
            else ""
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    intervals = [s.strip() for s in args.intervals.split(",") if s.strip()]
    replica_counts = [int(s) for s in args.replicas.split(",") if s.strip()]
    if not replica_counts or min(replica_counts) < 1:
        raise SystemExit(f"--replicas {args.replicas!r}: a list of counts >= 1, e.g. 1,3")
    baseline: list[dict[str, Any]] = []
    if args.baseline:
        baseline = json.loads(Path(args.baseline).read_text())["rows"]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"inferenceops-bench-{stamp}-"))
    opts = Options(
        mix=endpoints.parse_mix(args.mix),
        workspaces=args.workspaces,
        teams=args.teams,
        namespaces=args.namespaces,
        steady_cycles=args.steady_cycles,
        changes=args.changes,
        create_concurrency=args.create_concurrency,
        floor_pace=args.floor_pace,
        operator_args=list(args.operator_arg),
        profile=args.profile,
        profile_min_n=args.profile_min_n,
        startup_only=args.startup_only,
        provider_objects=args.provider_objects,
        inventory=args.inventory,
        workdir=workdir,
    )
    import psutil

    meta = {
        "timestamp": stamp,
        "git": git_rev(),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_start": os.getloadavg(),
        "mix": opts.mix,
        "workspaces": opts.workspaces,
        "teams": opts.teams,
        "namespaces": opts.namespaces,
        "steady_cycles": opts.steady_cycles,
        "changes": opts.changes,
        "floor_pace": opts.floor_pace,
        "replicas": replica_counts,
        "baseline": args.baseline,
        "logs": str(workdir),
    }
    log(f"logs and plans in {workdir}")

    def on_term(signum: int, _frame: Any) -> None:
        signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt  # runs every finally: no process is left behind

    signal.signal(signal.SIGTERM, on_term)
    cases: list[dict[str, Any]] = []
    empty: dict[str, Any] | None = None
    failed: list[str] = []
    processes = contextlib.ExitStack()
    emu = processes.enter_context(
        emulator_process(workdir / "emulator.log", token=TOKEN, timeout=120)
    )
    try:
        for n in sizes:
            repeats = args.repeats if args.repeats is not None else (3 if n <= 1000 else 1)
            for interval, replicas, r in itertools.product(
                intervals, replica_counts, range(repeats)
            ):
                name = f"N={n} {interval} r{r}" + (f" x{replicas}" if replicas > 1 else "")
                log(f"case {name} (repeat {r + 1}/{repeats}, {replicas} replica(s))")
                t0 = time.monotonic()
                try:
                    case_opts = dataclasses.replace(opts, replicas=replicas)
                    case, empty = run_case(emu, n, interval, r, case_opts, empty)
                except Exception as err:  # one failed case must not lose the others
                    import traceback

                    traceback.print_exc()
                    log(f"case {name} failed: {str(err)[-3000:]}")
                    failed.append(f"{name}: {str(err)[-500:]}")
                    continue
                case["case_wall_s"] = round(time.monotonic() - t0, 1)
                cases.append(case)
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured")
    finally:
        processes.close()
    meta["loadavg_end"] = os.getloadavg()
    doc = results_document(meta, empty, cases, failed, baseline)
    print_report(doc)
    if not args.no_save:
        save(doc, results, stamp)
    return 1 if failed and not cases else 0


if __name__ == "__main__":
    sys.exit(main())
