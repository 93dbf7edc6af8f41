"""kube-state-metrics with the chart's InferenceEndpoint config, as a subprocess on 127.0.0.1, for
the tests that need the per-endpoint series (test_kube_state_metrics.py; a Prometheus scraping the
fleet can scrape it too).

The binary is built once from its Go module (`go install k8s.io/kube-state-metrics/v2@VERSION`)
into ${INFERENCEOPS_CACHE:-~/.cache/inferenceops}/kube-state-metrics/<VERSION>/, like the control
plane; $KUBE_STATE_METRICS names a binary of your own. `binary()` skips the calling test, saying
why, when there is neither Go nor a binary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferenceops_emulator.process import free_port

ROOT = Path(__file__).resolve().parents[2]
VERSION = "v2.20.0"
CONFIG = ROOT / "charts" / "inferenceops" / "kube-state-metrics" / "inferenceops-endpoints.yaml"


def binary() -> str:
    if os.environ.get("KUBE_STATE_METRICS"):
        return os.environ["KUBE_STATE_METRICS"]
    cache = Path(os.environ.get("INFERENCEOPS_CACHE", Path.home() / ".cache" / "inferenceops"))
    target = cache / "kube-state-metrics" / VERSION
    built = target / "kube-state-metrics"
    if built.is_file():
        return str(built)
    go = shutil.which("go")
    if go is None:
        pytest.skip("no kube-state-metrics: install Go, or set KUBE_STATE_METRICS to a binary")
    target.mkdir(parents=True, exist_ok=True)
    print(f"building kube-state-metrics {VERSION} from its Go module (once, a few minutes)")
    subprocess.run(
        [go, "install", f"k8s.io/kube-state-metrics/v2@{VERSION}"],
        env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"},
        check=True,
        timeout=1800,
    )
    return str(built)


@contextlib.contextmanager
def kube_state_metrics(kubeconfig: str, log: Path) -> Iterator[str]:
    """Run it for InferenceEndpoints only; yields its metrics URL. Stopped on exit."""
    port, telemetry = free_port(), free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                binary(),
                f"--kubeconfig={kubeconfig}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--telemetry-host=127.0.0.1",
                f"--telemetry-port={telemetry}",
                "--custom-resource-state-only=true",
                f"--custom-resource-state-config-file={CONFIG}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield f"http://127.0.0.1:{port}/metrics"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.returncode not in (0, -15):
            raise AssertionError(f"kube-state-metrics exited {proc.returncode}: {log}")
