"""The emulator as a subprocess: the one harness tests, the benchmark and the demo use."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .client import EmulatorClient


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Exited(RuntimeError):
    """A process a harness waits for has exited: waiting longer is pointless."""


def wait_until(
    what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.25
) -> Any:
    """Call `check` until it returns something true; an exception counts as "not yet", but for
    Exited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exited:
            raise
        except Exception as err:
            last = err
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20) -> int:
    """SIGTERM, then SIGKILL after `timeout`; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@contextlib.contextmanager
def emulator_process(
    log: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    token: str = "emulator-token",
    seed: Path | None = None,
    timeout: float = 30.0,
) -> Iterator[EmulatorClient]:
    """`inferenceops-emulator` on host:port (a free port by default), its output in `log`;
    yields a client once it answers and stops it on exit."""
    port = free_port(host) if port is None else port
    command = [sys.executable, "-m", "inferenceops_emulator", "--host", host, "--port", str(port)]
    command += ["--token", token, *(["--seed", str(seed)] if seed else [])]
    with log.open("w") as out:
        # Its own session: a Ctrl-C meant for the caller reaches it through stop_process only.
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    client = EmulatorClient(f"http://{host}:{port}", timeout=timeout, pid=proc.pid)
    try:

        def answers() -> bool:
            if proc.poll() is not None:
                raise Exited(f"the emulator exited with {proc.returncode}: see {log}")
            return bool(client.info())

        # Asked often: it answers within a second, and the unit tests sleep no longer than 50 ms.
        wait_until("the emulator", answers, timeout, every=0.05)
        yield client
    finally:
        client.close()
        stop_process(proc, 10)
