"""`make run` without a kube context (issue 14): a local control plane, the emulator and the
operator that stay up, print the KUBECONFIG to use, and stop cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]


def test_local_mode_keeps_running_says_how_to_use_it_and_stops_on_ctrl_c(
    control_plane: Any, tmp_path: Path
) -> None:
    """(`control_plane` only makes sure the binaries are built.)"""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "demo" / "demo.py"), "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    kubeconfig = kubectl = None
    deadline = time.monotonic() + 120
    try:
        while kubectl is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.match(r"\s*export KUBECONFIG=(\S+)", line):
                kubeconfig = m.group(1)
            if kubeconfig and (m := re.match(r"\s*(\S+kubectl) get ie -n demo -w", line)):
                kubectl = m.group(1)
        assert kubeconfig and kubectl, "".join(lines)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert {"kube-apiserver", "etcd"} <= {c.name() for c in children}

        # What the printed lines promise: live endpoints, as long as it runs.
        def phases() -> dict[str, str]:
            out = subprocess.run(
                [kubectl, "get", "ie", "-n", "demo", "-o", "json"],
                env={**os.environ, "KUBECONFIG": kubeconfig},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            return {
                i["metadata"]["name"]: (i.get("status") or {}).get("phase", "")
                for i in json.loads(out)["items"]
            }

        while time.monotonic() < deadline and not all(phases().values()):
            time.sleep(1)
        assert len(phases()) == 5 and all(phases().values()), phases()
        time.sleep(2)
        assert proc.poll() is None, "it keeps running (no 60-second show)"

        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, rest
        assert "stopped" in rest
        gone = psutil.wait_procs(children, timeout=10)[1]
        assert gone == [], f"left running: {[c.name() for c in gone]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
