"""`make demo`: a local control plane, the provider emulator, the operator and one endpoint per
provider, with the emulator walking each endpoint through a lifecycle. Prints what
`kubectl get ie -w` would show for a minute (or --seconds), then stops everything.

Needs no cloud account and no cluster: kube-apiserver and etcd are built from Go modules on
first use (tests/controlplane/build.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "controlplane"))

import localcp  # noqa: E402
from tests.processes import OperatorProcess  # noqa: E402

from inferenceops_emulator.process import emulator_process  # noqa: E402

TOKEN = "demo-token"
NAMESPACE = "demo"

#: (provider, key, its group in the emulator, [(seconds from start, new state)]): what each
#: endpoint goes through.
LIFECYCLES: list[tuple[str, str, dict[str, str], list[tuple[float, dict[str, Any]]]]] = [
    (
        "friendli",
        "abc123xyz",
        {},
        [
            (12, {"status": "RUNNING", "phase": None, "curr_replicas": 2}),
            (40, {"status": "UPDATING"}),
            (50, {"status": "RUNNING"}),
        ],
    ),
    (
        "runpod",
        "jpnw0v75y3qoql",
        {},
        [
            (10, {"workers": ["INITIALIZING"]}),
            (20, {"workers": ["RUNNING", "IDLE"]}),
            (45, {"workers": ["RUNNING", "UNHEALTHY"]}),
        ],
    ),
    ("takeoff", "mistral", {}, [(15, {"live": ["mistral-7b"], "loading": []})]),
    (
        "nsModelServer",
        "classifier",
        {},
        [
            (8, {"stage": "LOADING_MODEL", "progress": 40}),
            (
                25,
                {
                    "stage": "FAILED",
                    "progress": 100,
                    "errors": [{"errorType": "INVALID_MODEL", "cause": "weights do not match"}],
                },
            ),
        ],
    ),
    (
        "dataArtsFabric",
        "0b5633ba2b904511ad514346f4d00001",
        {"workspace": "8d1c5a3e-ws01"},
        [(18, {"status": "RUNNING"})],
    ),
]


#: The Secrets examples/providers/*.yaml name, and the key each of them reads.
CREDENTIALS = (
    ("friendli-credentials", "token"),
    ("runpod-credentials", "apiKey"),
    ("dataarts-credentials", "token"),
)


def pointed_at_emulator(
    base: str, namespace: str = NAMESPACE, token: str = TOKEN
) -> list[dict[str, Any]]:
    """examples/providers/*.yaml with their URLs replaced by the emulator's, polled every 5 s,
    and the Secrets they need (holding the emulator's token): one list to apply."""
    urls = {
        "friendli": f"{base}/friendli",
        "runpod": f"{base}/runpod/v2",
        "takeoff": f"{base}/takeoff/mistral",
        "nsModelServer": f"{base}/ns/classifier",
        "dataArtsFabric": f"{base}/dataarts",
    }
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {key: token},
        }
        for name, key in CREDENTIALS
    ]
    for path in sorted((ROOT / "examples" / "providers").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "InferenceEndpoint":
                continue
            doc["metadata"]["namespace"] = namespace
            doc["spec"]["pollInterval"] = "5s"
            for block, url in urls.items():
                if block in doc["spec"]:
                    doc["spec"][block]["url"] = url
            docs.append(doc)
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep everything running until Ctrl-C and print the KUBECONFIG to use (make run)",
    )
    args = parser.parse_args()
    # SIGTERM (a closed terminal, `kill`) stops as Ctrl-C does: through the ExitStack below,
    # so no kube-apiserver, etcd, emulator or operator is left behind.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _demo(args)
    except KeyboardInterrupt:
        print("\nstopped: the operator, the emulator and the local control plane are gone")
        return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _demo(args: argparse.Namespace) -> int:
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"inferenceops-demo-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        print("starting the local control plane (first run builds it from Go modules)…")
        plane = stack.enter_context(localcp.LocalControlPlane().start())
        emulator = stack.enter_context(
            emulator_process(
                work / "emulator.log", token=TOKEN, seed=Path(__file__).with_name("seed.yaml")
            )
        )
        plane.kubectl("apply", "-f", str(ROOT / "crds" / "inferenceops.io_inferenceendpoints.yaml"))
        plane.kubectl(
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/inferenceendpoints.inferenceops.io",
        )
        plane.kubectl("create", "namespace", NAMESPACE)
        plane.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": pointed_at_emulator(emulator.base_url),
                }
            ),
        )
        # The emulator is plain http on 127.0.0.1: the operator may send its tokens there.
        operator = OperatorProcess(
            plane.kubeconfig, work / "operator.log", wait=False, allow_insecure_http=True
        )
        stack.callback(operator.stop)
        for provider, key, group, steps in LIFECYCLES:
            emulator.lifecycle(provider, key, steps, **group)
        print(f"operator log: {work / 'operator.log'}   kubeconfig: {plane.kubeconfig}\n")
        if args.keep:
            _print_next_steps(plane.kubeconfig, emulator.base_url)
            while True:
                time.sleep(3600)
        deadline = time.monotonic() + args.seconds
        last = ""
        while time.monotonic() < deadline:
            out = plane.kubectl("get", "ie", "-n", NAMESPACE, check=False).stdout
            # Like `kubectl get -w`: print when something other than the AGE column changed.
            shown = "\n".join(line.rsplit(None, 1)[0] for line in out.splitlines() if line)
            if shown != last:
                print(time.strftime("%H:%M:%S"))
                print(out, flush=True)
                last = shown
            time.sleep(1)
    return 0


def _print_next_steps(kubeconfig: Path, emulator_url: str) -> None:
    # The kubectl built with this control plane: the same version, whatever is on PATH.
    kubectl = localcp.find_binaries(build_missing=False, need_helm=False).kubectl
    print(
        "Running: a local control plane, the provider emulator and the operator, with the five\n"
        f"examples in namespace {NAMESPACE}. In another terminal:\n\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  {kubectl} get ie -n {NAMESPACE} -w\n\n"
        f"The emulator's control API is {emulator_url}/_emulator (inferenceops-emulator --help).\n"
        "Ctrl-C stops everything.",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
