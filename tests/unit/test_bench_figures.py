"""bench/figures.py: the benchmark's PNGs (CPU per poll against the floor, freshness distribution,
start-up curve) drawn from a results document, and written next to the results file on save."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import figures, report  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _case(**extra: Any) -> dict[str, Any]:
    return {
        "n": 500,
        "interval": "30s",
        "interval_s": 30.0,
        "repeat": 0,
        "startup_timeline": [[1.2, 0], [2.3, 40], [3.4, 310], [4.5, 500]],
        "with_status": 500,
        "all_status_s": 4.6,
        "cpu_per_1k_polls": 0.42,
        "floor_cpu_per_1k_polls": 0.3,
        **extra,
    }


def _doc(*cases: dict[str, Any]) -> dict[str, Any]:
    return report.results_document({"timestamp": "20260101T000000Z", "git": "abc"}, None, cases, [])


def test_every_figure_is_a_png_next_to_the_results(tmp_path: Path) -> None:
    doc = _doc(_case(freshness_s=[0.8, 2.5, 7.1, 15.0, 29.9]), _case(n=1000, repeat=0))
    written = figures.draw(doc, tmp_path, "stamp")
    assert [p.name for p in written] == [
        "stamp-cpu-per-poll.png",
        "stamp-freshness.png",
        "stamp-startup.png",
    ]
    for path in written:
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 10_000


def test_a_figure_without_its_data_is_left_out(tmp_path: Path, capsys: Any) -> None:
    """A --startup-only run keeps no steady window (CPU) and no changes (freshness)."""
    startup_only = _case(cpu_per_1k_polls=None, floor_cpu_per_1k_polls=None)
    written = figures.draw(_doc(startup_only), tmp_path, "s")
    assert [p.name for p in written] == ["s-startup.png"]
    err = capsys.readouterr().err
    assert "cpu-per-poll" in err and "freshness" in err


def test_saving_a_run_draws_its_figures(tmp_path: Path) -> None:
    report.save(_doc(_case(freshness_s=[1.0, 2.0])), tmp_path, "20260101T000000Z")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "20260101T000000Z-cpu-per-poll.png",
        "20260101T000000Z-freshness.png",
        "20260101T000000Z-startup.png",
        "20260101T000000Z.json",
    ]


def test_the_command_line_draws_from_a_results_file(tmp_path: Path) -> None:
    results = tmp_path / "20260101T000000Z.json"
    report.save(_doc(_case()), tmp_path, results.stem)
    out = tmp_path / "docs"
    assert figures.main([str(results), "--out", str(out), "--stamp", "latest"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "latest-cpu-per-poll.png",
        "latest-startup.png",
    ]


def test_a_several_replica_case_is_labelled_with_its_replicas() -> None:
    """`--replicas 1,3` draws two bars of the same N and interval: the label tells them apart."""
    one = {"n": 10000, "interval": "30s"}
    assert figures._label(one) == "N=10000 @ 30s"
    assert figures._label({**one, "replicas": 3}) == "N=10000 @ 30s, 3 replicas"
