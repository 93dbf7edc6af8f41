"""The first hour of a new user (issue 14): the examples against the emulator in one command,
and the kubectl `make run` picks."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import yaml
from examples.demo.demo import pointed_at_emulator

from inferenceops_emulator.process import emulator_process

from .conftest import OperatorProcess, get_ie, wait_until

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "examples" / "emulator"
LOCAL_EMULATOR = "http://127.0.0.1:8400"


def rendered_overlay(control_plane: Any) -> list[dict[str, Any]]:
    out = control_plane.kubectl("kustomize", str(OVERLAY)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_name(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_emulator_overlay_is_what_the_demo_applies(control_plane: Any) -> None:
    """examples/emulator (kustomize) and the demo's pointed_at_emulator() are two spellings of
    one thing: the five examples against the emulator, with their Secrets."""
    overlay = by_name(rendered_overlay(control_plane))
    demo = by_name(pointed_at_emulator(LOCAL_EMULATOR, "x", "emulator-token"))
    assert overlay.keys() == demo.keys()
    for key, want in demo.items():
        got = overlay[key]
        if key[0] == "Secret":
            decoded = {k: base64.b64decode(v).decode() for k, v in got["data"].items()}
            assert decoded == want["stringData"], key
        else:
            assert got["spec"] == want["spec"], key


def test_the_examples_go_live_against_the_emulator_without_editing_a_file(
    control_plane: Any, operator: OperatorProcess, ns: str, tmp_path: Path
) -> None:
    """README: `make emulator`, `make run`, `kubectl apply -k examples/emulator` → live status.
    (The emulator runs on a free port here instead of 8400, so a developer's own can stay up.)"""
    seed = ROOT / "examples" / "emulator" / "seed.yaml"
    with emulator_process(tmp_path / "emulator.log", seed=seed) as emulator:
        text = control_plane.kubectl("kustomize", str(OVERLAY)).stdout
        text = text.replace(LOCAL_EMULATOR, emulator.base_url)
        control_plane.kubectl("apply", "-n", ns, "-f", "-", input=text)
        expected = {
            "llama-friendli": "Running",
            "sdxl-runpod": "Running",
            "mistral-takeoff": "Provisioning",
            "classifier-ns": "Failed",
            "qwen-dataarts": "Running",
        }
        for name, phase in expected.items():
            wait_until(
                f"{name} {phase}",
                lambda n=name, p=phase: (
                    (get_ie(control_plane, ns, n).get("status") or {}).get("phase") == p
                ),
                40,
            )


FAKE_KUBECTL = """#!/usr/bin/env bash
[[ "$1 $2" == "version --client" ]] && echo '{"clientVersion": {"major": "1", "minor": "%s"}}'
"""


def test_make_run_uses_your_kubectl_unless_it_is_missing_or_too_old(
    control_plane: Any, tmp_path: Path
) -> None:
    """The control plane fixture has built the project's own kubectl, so nothing builds here."""
    script = ROOT / "tests" / "controlplane" / "kubectl.sh"

    def pick(minor: str | None) -> str:
        bindir = tmp_path / f"bin-{minor}"
        bindir.mkdir()
        if minor is not None:
            fake = bindir / "kubectl"
            fake.write_text(FAKE_KUBECTL % minor)
            fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
        env = {**os.environ, "PATH": f"{bindir}:/usr/bin:/bin"}
        out = subprocess.run(
            ["bash", str(script)], env=env, capture_output=True, text=True, check=True, timeout=120
        )
        return out.stdout.strip()

    assert pick("33") == str(tmp_path / "bin-33" / "kubectl")
    for too_old_or_missing in ("25", None):
        chosen = pick(too_old_or_missing)
        assert chosen.endswith("/kubectl") and "bin-" not in chosen, chosen
        assert os.access(chosen, os.X_OK)
