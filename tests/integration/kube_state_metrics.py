"""kube-state-metrics with the chart's InferenceEndpoint config, as a subprocess on 127.0.0.1, for
the tests that need the per-endpoint series (test_kube_state_metrics.py; a Prometheus scraping the
fleet can scrape it too).

The binary is built from its Go module by `BUILD_KSM=1 bash tests/monitoring/build.sh` into
${INFERENCEOPS_CACHE:-~/.cache/inferenceops}/kube-state-metrics/<VERSION>/, like the control
plane; $KUBE_STATE_METRICS names a binary of your own. `binary()` skips the calling test, saying
why, when there is neither.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from inferenceops_emulator.process import free_port

ROOT = Path(__file__).resolve().parents[2]
VERSION = "v2.20.0"
CONFIG = ROOT / "charts" / "inferenceops" / "kube-state-metrics" / "inferenceops-endpoints.yaml"


def binary() -> str:
    """The binary tests/monitoring/build.sh builds with BUILD_KSM=1 (not by default: about 8
    more minutes on a fresh machine would take CI's cold run past its 45 minutes), or
    $KUBE_STATE_METRICS. Without either the calling test is skipped, saying so (README, Tests)."""
    if os.environ.get("KUBE_STATE_METRICS"):
        return os.environ["KUBE_STATE_METRICS"]
    cache = Path(os.environ.get("INFERENCEOPS_CACHE", Path.home() / ".cache" / "inferenceops"))
    built = cache / "kube-state-metrics" / VERSION / "kube-state-metrics"
    if not built.is_file():
        pytest.skip(
            "kube-state-metrics is not built: BUILD_KSM=1 bash tests/monitoring/build.sh "
            "(or set KUBE_STATE_METRICS)"
        )
    return str(built)


@contextlib.contextmanager
def kube_state_metrics(
    kubeconfig: str, log: Path, namespaces: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run it for InferenceEndpoints only (in `namespaces`, default all); yields its metrics URL.
    Stopped on exit."""
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
                *([f"--namespaces={','.join(namespaces)}"] if namespaces else []),
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
