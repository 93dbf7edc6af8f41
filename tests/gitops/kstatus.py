"""kstatus verdicts for Kubernetes objects, from the real sigs.k8s.io/cli-utils library.

    from tests.gitops.kstatus import kstatus_verdicts
    kstatus_verdicts([obj, ...])  # -> [Verdict(status="InProgress", message="..."), ...]

The verdicts come from a tiny Go program (kstatus/main.go) calling
sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute, the function Flux's kustomize-controller
(`wait: true` / `healthChecks`) and the cli-utils applier use. It is built once per machine by
kstatus/build.sh into ${INFERENCEOPS_CACHE:-~/.cache/inferenceops}/tools/kstatus-<version>;
set KSTATUS_BIN to use another build.

Run as a script to compute verdicts for objects in a JSON or YAML file (or stdin):
    python tests/gitops/kstatus.py obj.yaml
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "kstatus"
BUILD_SH = HERE / "build.sh"

STATUSES = ("InProgress", "Current", "Failed", "Terminating", "NotFound", "Unknown")


class KstatusError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Verdict:
    status: str  # one of STATUSES
    message: str
    error: str | None = None  # set when status.Compute returned an error (status is Unknown)


def cli_utils_version() -> str:
    m = re.search(
        r"^\s*(?:require\s+)?sigs\.k8s\.io/cli-utils\s+(v\S+)", (HERE / "go.mod").read_text(), re.M
    )
    if not m:
        raise KstatusError(f"no sigs.k8s.io/cli-utils version in {HERE / 'go.mod'}")
    return m.group(1)


def binary_path() -> Path:
    """Where build.sh puts (or has put) the checker; KSTATUS_BIN overrides it."""
    env = os.environ.get("KSTATUS_BIN")
    if env:
        return Path(env)
    root = os.environ.get("INFERENCEOPS_CACHE") or os.path.join(
        Path.home(), ".cache", "inferenceops"
    )
    return Path(root) / "tools" / f"kstatus-{cli_utils_version()}"


_lock = threading.Lock()
_binary: Path | None = None


def ensure_binary() -> Path:
    """The checker's path, building it with build.sh on first use (prints the time it took)."""
    global _binary
    with _lock:
        if _binary is not None and os.access(_binary, os.X_OK):
            return _binary
        path = binary_path()
        if not os.access(path, os.X_OK):
            if os.environ.get("KSTATUS_BIN"):
                raise KstatusError(f"KSTATUS_BIN={path} is not an executable file")
            t0 = time.monotonic()
            print(
                f"[kstatus] building {path.name} with {BUILD_SH} (first time: a minute or more)",
                file=sys.stderr,
                flush=True,
            )
            proc = subprocess.run(["bash", str(BUILD_SH)], capture_output=True, text=True)
            sys.stderr.write(proc.stderr)
            if proc.returncode != 0:
                raise KstatusError(
                    f"{BUILD_SH} failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}"
                )
            print(
                f"[kstatus] build took {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True
            )
            lines = proc.stdout.strip().splitlines()
            if lines:
                path = Path(lines[-1])
            if not os.access(path, os.X_OK):
                raise KstatusError(f"{BUILD_SH} succeeded but {path} is not executable")
        _binary = path
        return path


def kstatus_verdicts(objs: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> list[Verdict]:
    """kstatus' verdict for each object (a single object gives a one-item list)."""
    items = [objs] if isinstance(objs, Mapping) else list(objs)
    if not items:
        return []
    binary = ensure_binary()
    proc = subprocess.run(
        [str(binary)],
        input=json.dumps(items, default=str),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise KstatusError(f"{binary} exited {proc.returncode}: {proc.stderr.strip()}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    if len(lines) != len(items):
        raise KstatusError(
            f"{binary} printed {len(lines)} verdicts for {len(items)} objects:\n"
            f"{proc.stdout}{proc.stderr}"
        )
    out = []
    for ln in lines:
        d = json.loads(ln)
        out.append(
            Verdict(status=d["status"], message=d.get("message", ""), error=d.get("error") or None)
        )
    return out


def kstatus_verdict(obj: Mapping[str, Any]) -> Verdict:
    return kstatus_verdicts([obj])[0]


def _main(argv: list[str]) -> int:
    text = Path(argv[1]).read_text() if len(argv) > 1 and argv[1] != "-" else sys.stdin.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        data = [d for d in yaml.safe_load_all(text) if d]
    if isinstance(data, Mapping) and data.get("kind", "").endswith("List") and "items" in data:
        data = data["items"]
    objs = [data] if isinstance(data, Mapping) else data
    for obj, v in zip(objs, kstatus_verdicts(objs), strict=True):
        name = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        print(
            json.dumps(
                {
                    "object": name,
                    "status": v.status,
                    "message": v.message,
                    **({"error": v.error} if v.error else {}),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv))
