"""Prometheus, promtool and kube-state-metrics for the tests: from the cache that
tests/monitoring/build.sh fills (run here when one is missing: never a skip), or from the
PROMETHEUS / PROMTOOL / KUBE_STATE_METRICS environment variables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

HERE = Path(__file__).parent
BUILD_SH = HERE / "build.sh"
RULES = HERE.parent.parent / "charts" / "inferenceops" / "rules" / "inferenceops.rules.yaml"
DASHBOARDS = HERE.parent.parent / "charts" / "inferenceops" / "dashboards"


def _built() -> Path:
    """build.sh builds what is missing (nothing, once built) and prints Prometheus' bin dir."""
    proc = subprocess.run(
        ["bash", str(BUILD_SH)], stdout=subprocess.PIPE, text=True, check=True, timeout=3600
    )
    return Path(proc.stdout.strip().splitlines()[-1])


def prometheus_binaries() -> tuple[str, str]:
    """(prometheus, promtool)."""
    given = os.environ.get("PROMETHEUS"), os.environ.get("PROMTOOL")
    if given[0] and given[1]:
        return given[0], given[1]
    bin_dir = _built()
    return given[0] or str(bin_dir / "prometheus"), given[1] or str(bin_dir / "promtool")
