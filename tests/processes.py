"""`inferenceops run` as a subprocess: the one operator harness the integration tests, the
benchmark (bench/run.py) and the demo (examples/demo/demo.py) use. The emulator's harness is
`inferenceops_emulator.process`; this one is about the operator under test, so it lives with the
tests, which bench and demo already import from."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from inferenceops_emulator.process import Exited, free_port, stop_process, wait_until


class OperatorProcess:
    """The operator on free health and metrics ports, against `kubeconfig`, its output appended
    to `log`. `wait=False` returns at once (the benchmark times start-up with wait_healthy);
    `allow_insecure_http=False` runs it as shipped, refusing credentials over plain http."""

    def __init__(
        self,
        kubeconfig: str,
        log: Path,
        extra: Sequence[str] = (),
        *,
        wait: bool = True,
        allow_insecure_http: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        self._kubeconfig = kubeconfig
        #: Added to the environment (a replica's own HTTP proxy in tests/integration).
        self._env = dict(env or {})
        self._extra = tuple(extra)
        self._allow_insecure_http = allow_insecure_http
        self.log = log
        self._start(wait)

    def _start(self, wait: bool) -> None:
        self.health = free_port()
        self.metrics_port = free_port()
        self.started = time.time()
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "inferenceops",
                    "run",
                    "--health-port",
                    str(self.health),
                    "--metrics-port",
                    str(self.metrics_port),
                    # The emulator is plain http on 127.0.0.1 and its endpoints carry tokens.
                    *(["--allow-insecure-http"] if self._allow_insecure_http else []),
                    *self._extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self._env, "KUBECONFIG": self._kubeconfig},
                # Its own session: the caller's Ctrl-C reaches it through stop() only.
                start_new_session=True,
            )
        if wait:
            try:
                self.wait_healthy()
            except BaseException:
                # The caller gets no object to stop(): an operator that never became healthy
                # must not outlive the test or benchmark that started it.
                self.stop()
                raise

    def restart(self) -> None:
        """Stopped (if it runs) and started again with the same arguments and log: a session
        fixture's operator restarted by a test must come back as the other tests expect it."""
        self.stop()
        self._start(wait=True)

    def _alive(self) -> bool:
        if self.proc.poll() is not None:
            raise Exited(f"operator exited with {self.proc.returncode}:\n{self.tail()}")
        return httpx.get(f"http://127.0.0.1:{self.health}/healthz", timeout=2).status_code == 200

    def wait_healthy(self, timeout: float = 120) -> float:
        """Seconds from start until /healthz answered."""
        wait_until("the operator's liveness endpoint", self._alive, timeout)
        return time.time() - self.started

    def metrics(self) -> dict[str, float]:
        """Every sample on /metrics, keyed by `name{labels}`."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        samples = (line.rpartition(" ") for line in text.splitlines() if not line.startswith("#"))
        return {name: float(value) for name, _, value in samples if name}

    def metric(self, name: str) -> float:
        """The sum of every sample whose name starts with `name`."""
        return sum(v for k, v in self.metrics().items() if k.startswith(name))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text().splitlines()[-lines:])

    def stop(self) -> int:
        return stop_process(self.proc)
