"""The processes the benchmark measures or runs beside the operator: the operator with its RSS
sampled every second, its CPU, py-spy profiles of it, and the floor (bench/floor.py)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.processes import OperatorProcess

from bench import ROOT
from bench.report import log

VENV_BIN = Path(sys.executable).parent


class OperatorProc(OperatorProcess):
    """The shared operator harness, sampling its RSS every second."""

    def __init__(self, kubeconfig: str, logfile: Path, extra: Sequence[str] = ()) -> None:
        import psutil

        super().__init__(kubeconfig, logfile, extra, wait=False)
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        #: (seconds since start, RSS MB) every second: shows when memory grows.
        self.rss_timeline: list[tuple[float, float]] = []
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._sampling.wait(1.0):
            with contextlib.suppress(Exception):
                rss = self.ps.memory_info().rss
                self.peak_rss = max(self.peak_rss, rss)
                self.rss_timeline.append(
                    (round(time.time() - self.started, 1), round(rss / 2**20, 1))
                )

    def cpu(self) -> float:
        return cpu_of(self.ps)

    def rss(self) -> int:
        rss = int(self.ps.memory_info().rss)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def stop(self) -> int:
        self._sampling.set()
        return super().stop()


def measure_empty_operator(kubeconfig: str, workdir: Path, extra: Sequence[str]) -> dict[str, Any]:
    """The operator with no InferenceEndpoints: RSS and idle CPU, subtracted per resource later."""
    op = OperatorProc(kubeconfig, workdir / "operator-empty.log", extra)
    try:
        ready = op.wait_healthy()
        time.sleep(10)
        cpu0, t0 = op.cpu(), time.monotonic()
        time.sleep(10)
        return {
            "rss_mb": round(op.rss() / 2**20, 1),
            "idle_cpu_per_s": round((op.cpu() - cpu0) / (time.monotonic() - t0), 5),
            "healthy_after_s": round(ready, 2),
        }
    finally:
        op.stop()


def run_floor(plan_file: Path, cycles: int, pace: float, interval: float) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "floor.py"),
            "--plan",
            str(plan_file),
            "--cycles",
            str(cycles),
            "--interval",
            str(pace),
        ],
        capture_output=True,
        text=True,
        timeout=cycles * (interval + 120) + 60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"floor failed: {out.stderr[-2000:]}")
    fl: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    fl.pop("per_cycle", None)
    return fl


def run_floors(
    case: dict[str, Any], plan_file: Path, cycles: int, pace_mode: str, interval: float, tag: str
) -> None:
    """The floor at each pace `pace_mode` names, into `case` with its ratio to the operator."""
    pace_of = {"burst": [0.0], "interval": [interval], "both": [0.0, interval]}
    paces = pace_of[pace_mode]
    for pace in paces:
        fl = run_floor(plan_file, cycles, pace, interval)
        # The verdict's floor is the first (burst when measured: the stricter bound); a
        # paced floor spaces its cycles over the interval as the operator must.
        prefix = "floor" if pace == paces[0] else "floor_paced"
        case[prefix] = fl
        case[f"{prefix}_cpu_per_1k_polls"] = fl["cpu_per_1k_polls"]
        ratio_key = "cpu_ratio" if prefix == "floor" else "cpu_ratio_paced"
        if fl["cpu_per_1k_polls"] and case["cpu_per_1k_polls"]:
            case[ratio_key] = round(case["cpu_per_1k_polls"] / fl["cpu_per_1k_polls"], 2)
        log(
            f"{tag}: {prefix} (pace {pace:g} s) {fl['cpu_per_1k_polls']} CPU s/1k "
            f"polls, {fl['requests_per_cycle']} req/cycle"
        )


def cpu_of(ps: Any) -> float:
    t = ps.cpu_times()
    return float(t.user + t.system)


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[Any] | None:
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        log("py-spy is not installed in .venv: no profile (pip install py-spy)")
        return None
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",  # ~4,000 samples over a steady window at 10,000: enough to rank frames
            "--format",
            "raw",
            "--output",
            str(out) + ".txt",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(out.parent / (out.name + ".log")).open("w"),
    )


def finish_profile(proc: subprocess.Popen[Any], out: Path) -> dict[str, Any]:
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return top_frames(Path(str(out) + ".txt"))


def top_frames(path: Path, limit: int = 25) -> dict[str, Any]:
    """Inclusive and self sample shares per frame from py-spy's collapsed-stack output."""
    if not path.exists():
        return {"error": "no profile written"}
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def top(d: Mapping[str, int]) -> list[tuple[str, float]]:
        return [(f, round(c / total, 4)) for f, c in sorted(d.items(), key=lambda x: -x[1])[:limit]]

    return {"file": str(path), "samples": total, "self": top(own), "inclusive": top(inclusive)}
