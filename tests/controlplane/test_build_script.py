"""tests/controlplane/build.sh says how long a first build takes before it starts, and shows
progress while it runs. Run with a stand-in `go` that only writes its output file, so this takes
a second, not twenty minutes."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("build.sh")

FAKE_GO = """#!/usr/bin/env bash
# `go build ... -o OUT ...` writes OUT after a short while; everything else succeeds at once.
out=""
while (( $# )); do
  if [[ "$1" == "-o" ]]; then out="$2"; shift; fi
  shift
done
if [[ -n "$out" ]]; then sleep "${FAKE_GO_SECONDS:-0}"; printf 'bin' > "$out"; chmod +x "$out"; fi
"""


def run_build(tmp_path: Path, *args: str, seconds: str = "0") -> subprocess.CompletedProcess[str]:
    bindir = tmp_path / "fakebin"
    bindir.mkdir(exist_ok=True)
    go = bindir / "go"
    go.write_text(FAKE_GO)
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEST_ASSET_", "KUBEBUILDER"))},
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "INFERENCEOPS_CACHE": str(tmp_path / "cache"),
        "FAKE_GO_SECONDS": seconds,
        "BUILD_HEARTBEAT_SECONDS": "0.2",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_first_build_says_how_long_it_takes_and_shows_progress(tmp_path: Path) -> None:
    result = run_build(tmp_path, seconds="0.5")
    log = result.stderr
    assert "building 4 binaries from Go modules" in log and "about 18 minutes on 2 cores" in log
    assert log.index("about 18 minutes") < log.index("[1/4] building kube-apiserver")
    for step, name in enumerate(("kube-apiserver", "kubectl", "etcd", "helm"), start=1):
        assert f"[{step}/4] building {name} ..." in log
        assert f"[{step}/4] {name} built in" in log
    assert "still building kube-apiserver" in log, "a line while Go works, so it does not look hung"
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    assert bin_dir.parent == tmp_path / "cache" / "controlplane" and (bin_dir / "helm").is_file()


def test_a_warm_cache_builds_nothing_and_says_nothing_about_minutes(tmp_path: Path) -> None:
    run_build(tmp_path)
    again = run_build(tmp_path)
    assert "minutes" not in again.stderr and "building" not in again.stderr
    node = run_build(tmp_path, "--node")
    assert "building 3 binaries" in node.stderr and "about 12 minutes" in node.stderr


def test_the_same_step_builds_prometheus_and_promtool_once(tmp_path: Path) -> None:
    first = run_build(tmp_path)
    log = first.stderr
    assert "[monitoring/build.sh] building 2 binaries from Go modules" in log
    assert "about 7 minutes" in log
    for name in ("prometheus", "promtool"):
        assert f"{name} built in" in log
        assert (tmp_path / "cache" / "prometheus" / "v3.16.0" / name).is_file()
    assert "kube-state-metrics" not in log, "kube-state-metrics only with BUILD_KSM=1"
    assert first.stdout.strip().splitlines()[-1].endswith("/controlplane/v1.37.2")
    again = run_build(tmp_path)
    assert "building" not in again.stderr
