"""The operator's wheel (what the image and the Dockerfile install) carries no emulator: the
emulator is a dev tool in its own package (emulator/), and the operator never imports it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_operator_wheel_has_no_emulator(tmp_path: Path) -> None:
    # The same sources image/build.sh and the Dockerfile build the wheel from.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "operator", src / "operator", ignore=shutil.ignore_patterns("*.egg-info")
    )
    built = subprocess.run(
        # -v: pip shows the build backend's warnings only when verbose.
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path), str(src)],
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    # The packaging metadata is current: no setuptools deprecation (the licence table) on build.
    assert "Deprecat" not in built.stdout + built.stderr, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("inferenceops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = {n: archive.read(n).decode() for n in names if n.endswith(".py")}
    assert any(n.startswith("inferenceops/providers/") for n in names)  # the wheel is the operator
    # Subpackages too: the providers that are packages of modules.
    assert {
        "inferenceops/providers/runpod/adapter.py",
        "inferenceops/providers/dataarts/adapter.py",
    } <= set(names)
    assert [n for n in names if "emulator" in n.lower()] == []
    assert [n for n, text in sources.items() if "inferenceops_emulator" in text] == []
