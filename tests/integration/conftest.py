"""The emulator and the operator as subprocesses, wired to the local control plane."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "emulator-token-integration"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Any, timeout: float = 30.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as err:
            last = err
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")


class EmulatorProcess:
    """`inferenceops emulator` on `host` (the e2e suite binds the node's bridge address, so
    that pods reach it), optionally seeded from a YAML file."""

    def __init__(self, log: Path, *, host: str = "127.0.0.1", seed: Path | None = None) -> None:
        self.port = free_port(host)
        self.base = f"http://{host}:{self.port}"
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inferenceops",
                "emulator",
                "--host",
                host,
                "--port",
                str(self.port),
                "--token",
                TOKEN,
                *(["--seed", str(seed)] if seed else []),
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"{self.base}/_emulator", timeout=10)
        wait_until("the emulator", lambda: self.http.get("/").status_code == 200, 20)

    def control(self, method: str, path: str, **body: Any) -> Any:
        response = self.http.request(method, path, json=body or None)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def requests(self, **params: str) -> int:
        return int(
            self.control("GET", "/requests?" + "&".join(f"{k}={v}" for k, v in params.items()))[
                "count"
            ]
        )

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path_factory.mktemp("emulator") / "emulator.log")
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def crds(control_plane: Any) -> None:
    for plural in ("inferenceendpoints", "inferenceproviders", "clusterinferenceproviders"):
        control_plane.kubectl(
            "apply", "--server-side", "-f", str(ROOT / "crds" / f"inferenceops.io_{plural}.yaml")
        )
        control_plane.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", f"crd/{plural}.inferenceops.io"
        )


class OperatorProcess:
    def __init__(self, kubeconfig: str, log: Path, *extra: str) -> None:
        self.health = free_port()
        self.metrics = free_port()
        self.log = log
        env = {**os.environ, "KUBECONFIG": kubeconfig}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inferenceops",
                "run",
                "--health-port",
                str(self.health),
                "--metrics-port",
                str(self.metrics),
                *extra,
            ],
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_until("the operator's liveness endpoint", self._alive, 60)

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.tail()}")
        return httpx.get(f"http://127.0.0.1:{self.health}/healthz", timeout=2).status_code == 200

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def operator(
    control_plane: Any, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(
        control_plane.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log"
    )
    yield op
    code = op.stop()
    assert "Traceback" not in op.log.read_text(), op.tail(80)
    assert code in (0, -signal.SIGTERM), f"operator exited with {code}"


def get_ie(control_plane: Any, namespace: str, name: str) -> dict[str, Any]:
    out = control_plane.kubectl("get", "ie", name, "-n", namespace, "-o", "json")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


_namespaces = iter(range(1, 10_000))


@pytest.fixture
def ns(control_plane: Any) -> Iterator[str]:
    """A namespace per test with the credentials Secret; its endpoints are deleted afterwards
    (the bare API server runs no namespace controller to do it)."""
    name = f"it-{next(_namespaces)}-{int(time.time()) % 100000}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.kubectl(
        "create", "secret", "generic", "creds", "-n", name, f"--from-literal=token={TOKEN}"
    )
    yield name
    control_plane.kubectl("delete", "ie", "--all", "-n", name, "--wait=false", check=False)
