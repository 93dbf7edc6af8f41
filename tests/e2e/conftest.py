"""The e2e suite's parts: a real single-node cluster (tests/node), the operator image built with
`make image` and imported into the node's containerd, and the provider emulator on the node's
bridge address so that pods reach it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from image.contract import check_archive

from inferenceops_emulator import EmulatorClient
from inferenceops_emulator.process import emulator_process
from tests.integration.conftest import TOKEN
from tests.node.fixtures import local_node  # noqa: F401  (the fixture, used by `node`)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "inferenceops"
VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
#: A second tag of the same image, for the step that upgrades the release to a new tag.
NEXT_TAG = f"{VERSION}-next"


@pytest.fixture(scope="session")
def node(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The local node (tests/node/localnode.py); with INFERENCEOPS_E2E_KIND=<cluster>, that kind
    cluster instead (`make e2e-kind`, tests/node/kindnode.py)."""
    cluster = os.environ.get("INFERENCEOPS_E2E_KIND")
    if not cluster:
        yield request.getfixturevalue("local_node")
        return
    from tests.node.kindnode import KindNode

    kind = KindNode(cluster)
    yield kind
    kind.stop()


@pytest.fixture(scope="session")
def image(node: Any) -> None:
    """The operator image on the node under the chart's default reference and under NEXT_TAG:
    `make image`'s recipe (image/build.sh; cached, so a warm run takes seconds) imported into the
    local node, or on kind `docker build` and `kind load`."""
    names = [f"inferenceops:{VERSION}", f"inferenceops:{NEXT_TAG}"]
    cluster = os.environ.get("INFERENCEOPS_E2E_KIND")
    if cluster:
        subprocess.run(["docker", "build", "-t", names[0], str(REPO)], check=True)
        subprocess.run(["docker", "tag", names[0], names[1]], check=True)
        subprocess.run(["kind", "load", "docker-image", *names, "--name", cluster], check=True)
        return
    built = subprocess.run(
        ["bash", str(REPO / "image" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        timeout=1800,
        check=True,
    )
    archive = built.stdout.strip().splitlines()[-1]
    assert check_archive(archive) == [], "the archive breaks the Dockerfile's contract"
    for name in names:
        node.import_image(archive, name)


@pytest.fixture(scope="session")
def emulator(node: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorClient]:
    with emulator_process(
        tmp_path_factory.mktemp("emulator") / "emulator.log",
        host=node.host_ip,
        token=TOKEN,
        seed=Path(__file__).with_name("seed.yaml"),
    ) as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed step shows the operator pods' last log lines and the node's components'."""
    report = yield
    node = getattr(item, "funcargs", {}).get("node")
    if report.failed and call.when == "call" and node is not None:
        logs = node.kubectl(
            "logs",
            "-n",
            "inferenceops",
            "-l",
            "app.kubernetes.io/component=operator",
            "--tail=60",
            "--prefix",
            check=False,
        )
        report.sections.append(("operator pods", logs.stdout + logs.stderr))
        report.sections.append(("node", node.logs_tail(15)))
    return report
