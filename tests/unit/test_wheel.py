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
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("inferenceops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        sources = {n: archive.read(n).decode() for n in names if n.endswith(".py")}
    assert any(n.startswith("inferenceops/providers/") for n in names)  # the wheel is the operator
    assert [n for n in names if "emulator" in n.lower()] == []
    assert [n for n, text in sources.items() if "inferenceops_emulator" in text] == []
