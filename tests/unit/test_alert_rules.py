"""The chart's alert rules through promtool (built from its Go module by tests/monitoring/build.sh,
never skipped): `promtool check rules`, then `promtool test rules` on tests/monitoring/*.test.yaml,
and every alert has a case where it fires and one where it does not."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.binaries import HERE, RULES, prometheus_binaries

TESTS = sorted(HERE.glob("*.test.yaml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    return prometheus_binaries()[1]


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_rules_are_valid(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


@pytest.mark.parametrize("tests", TESTS, ids=[p.name for p in TESTS])
def test_the_promtool_unit_tests_pass(promtool: str, tests: Path) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", tests.name],
        cwd=tests.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_somewhere() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test") or []:
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fires == set(), "alerts no test makes fire"
    assert names - quiet == set(), "alerts no test shows quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    docs = (RULES.parents[3] / "docs" / "monitoring.md").read_text()
    anchors = {
        line.lstrip("#").strip().lower().replace(" ", "-")
        for line in docs.splitlines()
        if line.startswith("### ")
    }
    for rule in _alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/monitoring.md#{rule['alert'].lower()}", url
        assert rule["alert"].lower() in anchors, f"docs/monitoring.md has no ### {rule['alert']}"
