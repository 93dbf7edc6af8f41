"""Three (then four) `inferenceops run` copies with the same arguments share the endpoints through
Leases (issue 23), against the real API server and the emulator. Each replica reaches the
emulator through its own HTTP proxy (below), which records which replica polled which endpoint
and when; one replica reaches the API server through a TCP forwarder the test can cut.

The tests run in file order on one set of replicas: balance, a join, fencing, SIGTERM, SIGKILL.
Their group is their own namespace's name: the session operator of the other files (group
`inferenceops`) may poll the same endpoints too, but not through these proxies.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import EmulatorClient, OperatorProcess, free_port, wait_until

COUNT = 30
INTERVAL = 5.0
LEASE = 15.0
_ID = re.compile(r"/takeoff/(rp-\d+)")


@dataclass
class Poll:
    replica: str
    endpoint: str
    start: float
    end: float


@dataclass
class Trace:
    polls: list[Poll] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def since(self, t: float) -> list[Poll]:
        with self.lock:
            return [p for p in self.polls if p.start >= t]

    def owners(self, t0: float, t1: float) -> dict[str, set[str]]:
        """Which replicas polled each endpoint in [t0, t1]."""
        out: dict[str, set[str]] = {}
        for p in self.since(t0):
            if p.start <= t1:
                out.setdefault(p.endpoint, set()).add(p.replica)
        return out

    def first_poll_by_other(self, endpoint: str, than: str, after: float) -> float | None:
        times = [p.start for p in self.since(after) if p.endpoint == endpoint and p.replica != than]
        return min(times, default=None)


class TracingProxy:
    """A plain-HTTP forward proxy on 127.0.0.1 that records each request's endpoint and times."""

    def __init__(self, replica: str, trace: Trace) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.replica, self.trace = replica, trace
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        start = time.time()
        target = httpx.URL(handler.path)
        conn = http.client.HTTPConnection(target.host, target.port, timeout=10)
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "proxy-connection"}
        conn.request("GET", target.raw_path.decode(), headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        handler.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
        if m := _ID.search(target.path):
            with self.trace.lock:
                self.trace.polls.append(Poll(self.replica, m.group(1), start, time.time()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Forwarder:
    """A TCP forwarder to the API server that the test can cut (every connection closed, new
    ones refused) and restore on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        self._conns = []


@dataclass
class Replicas:
    control_plane: Any
    emulator: EmulatorClient
    ns: str
    group: str
    tmp: Path
    trace: Trace = field(default_factory=Trace)
    running: dict[str, OperatorProcess] = field(default_factory=dict)
    proxies: list[TracingProxy] = field(default_factory=list)
    forwarder: Forwarder | None = None

    def start(self, name: str, kubeconfig: str | None = None) -> OperatorProcess:
        proxy = TracingProxy(name, self.trace)
        self.proxies.append(proxy)
        env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url, "NO_PROXY": "", "no_proxy": ""}
        # The same arguments for every replica: only the environment (its proxy) differs.
        args = ["--group", self.group, f"--namespace={self.ns}"]
        op = OperatorProcess(
            kubeconfig or self.control_plane.kubeconfig, self.tmp / f"{name}.log", args, env=env
        )
        self.running[name] = op
        return op

    def endpoints(self) -> list[dict[str, Any]]:
        out = self.control_plane.kubectl("get", "ie", "-n", self.ns, "-o", "json")
        return list(json.loads(out.stdout)["items"])

    def all_ready(self) -> bool:
        items = self.endpoints()
        return len(items) == COUNT and all(_ready(i) == ("True", "Running") for i in items)

    def owners_now(self, seconds: float = 2 * INTERVAL + 1) -> dict[str, set[str]]:
        t0 = time.time()
        time.sleep(seconds)
        return self.trace.owners(t0, time.time())

    def share_of(self, replica: str) -> list[str]:
        """The endpoints `replica` alone polls now."""
        owners = self.owners_now(INTERVAL + 1)
        return [e for e, o in owners.items() if o == {replica}]

    def taken_over(self, endpoints: list[str], than: str, since: float, timeout: float) -> float:
        """Seconds from `since` until every endpoint was polled by a replica other than `than`."""
        times = []
        for e in endpoints:

            def polled(e: str = e) -> bool:
                return self.trace.first_poll_by_other(e, than, since) is not None

            wait_until(f"{e} polled by a replica other than {than}", polled, timeout)
            times.append(self.trace.first_poll_by_other(e, than, since) or since)
        return max(times) - since

    def polls_by(self, replica: str, since: float) -> list[Poll]:
        return [p for p in self.trace.since(since) if p.replica == replica]


def _ready(item: dict[str, Any]) -> tuple[str, str]:
    for c in (item.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c["status"], c.get("reason", "")
    return "", ""


def _reasons(item: dict[str, Any]) -> set[str]:
    return {c.get("reason", "") for c in (item.get("status") or {}).get("conditions") or []}


@pytest.fixture(scope="module")
def replicas(
    control_plane: Any,
    crds: None,
    emulator: EmulatorClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    ns = f"it-replicas-{int(time.time()) % 100000}"
    control_plane.kubectl("create", "namespace", ns)
    r = Replicas(control_plane, emulator, ns, ns, tmp_path_factory.mktemp("replicas"))
    for i in range(COUNT):
        emulator.put("takeoff", f"rp-{i}", live=["llama"])
    docs = [
        {
            "apiVersion": "inferenceops.io/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": f"rp-{i}", "namespace": ns},
            "spec": {
                "pollInterval": "5s",
                "takeoff": {"url": f"{emulator.base_url}/takeoff/rp-{i}"},
            },
        }
        for i in range(COUNT)
    ]
    manifest = r.tmp / "endpoints.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    control_plane.kubectl("apply", "-f", str(manifest))
    try:
        yield r
    finally:
        for op in r.running.values():
            op.stop()
        for proxy in r.proxies:
            proxy.close()
        if r.forwarder is not None:
            r.forwarder.stop()
        control_plane.kubectl("delete", "ie", "--all", "-n", ns, "--wait=false", check=False)
        group = f"inferenceops.io/group={ns}"
        control_plane.kubectl("delete", "leases", "-n", "default", "-l", group, check=False)
        for name, op in r.running.items():
            # The cut replica's failing /healthz is logged by kopf with a traceback.
            if name != "r3":
                assert "Traceback" not in op.log.read_text(), op.tail(80)


def test_each_endpoint_polled_by_exactly_one_replica(replicas: Replicas) -> None:
    for name in ("r0", "r1", "r2"):
        replicas.start(name)
    wait_until("every endpoint Ready", replicas.all_ready, 90)
    owners = replicas.owners_now(3 * INTERVAL)
    assert len(owners) == COUNT, sorted(owners)
    twice = {e: o for e, o in owners.items() if len(o) > 1}
    assert not twice, f"polled by more than one replica: {twice}"
    share = {n: sum(1 for o in owners.values() if n in o) for n in replicas.running}
    print(f"\nbalance of {COUNT} endpoints on 3 replicas: {share}")
    assert all(count >= 4 for count in share.values()), share


def _overlaps(trace: Trace, after: float) -> list[tuple[Poll, Poll]]:
    by_endpoint: dict[str, list[Poll]] = {}
    for p in trace.since(after):
        by_endpoint.setdefault(p.endpoint, []).append(p)
    found = []
    for polls in by_endpoint.values():
        polls.sort(key=lambda p: p.start)
        for a, b in itertools.pairwise(polls):
            if a.replica != b.replica and b.start < a.end:
                found.append((a, b))
    return found


def _forwarded_kubeconfig(replicas: Replicas) -> str:
    """A kubeconfig for the API server through a forwarder the test can cut."""
    config = yaml.safe_load(Path(replicas.control_plane.kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    api = httpx.URL(cluster["server"])
    replicas.forwarder = Forwarder((api.host, api.port or 443))
    cluster["server"] = f"https://{api.host}:{replicas.forwarder.port}"
    path = replicas.tmp / "forwarded.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_a_fourth_joins_and_takes_its_share(replicas: Replicas) -> None:
    kubeconfig = _forwarded_kubeconfig(replicas)
    started = time.time()
    replicas.start("r3", kubeconfig)
    wait_until("the fourth polls", lambda: bool(replicas.polls_by("r3", started)), 60)
    time.sleep(LEASE)
    owners = replicas.owners_now(2 * INTERVAL + 1)
    mine = [e for e, o in owners.items() if o == {"r3"}]
    assert mine, owners
    polls = replicas.polls_by("r3", started)
    join = max(min(p.start for p in polls if p.endpoint == e) for e in mine) - started
    print(f"\njoin: the fourth polled all {len(mine)} of its endpoints {join:.1f} s after start")
    assert join <= LEASE + 5
    assert not [e for e, o in owners.items() if len(o) > 1], owners
    assert not _overlaps(replicas.trace, started), _overlaps(replicas.trace, started)[:3]


def test_fencing_when_a_replica_loses_the_api_server(replicas: Replicas) -> None:
    assert replicas.forwarder is not None
    op = replicas.running["r3"]
    mine = replicas.share_of("r3")
    assert mine
    cut = time.time()
    replicas.forwarder.stop()

    def unhealthy() -> bool:
        return httpx.get(f"http://127.0.0.1:{op.health}/healthz", timeout=5).status_code != 200

    # kopf keeps a probe's answer for 10 s.
    wait_until("/healthz fails", unhealthy, LEASE + 10 + 5)
    healthz_failed = time.time() - cut
    takeover = replicas.taken_over(mine, "r3", cut, LEASE + 2 * INTERVAL + 10)
    stopped = max((p.end for p in replicas.polls_by("r3", cut)), default=cut) - cut
    print(
        f"\nfencing: the cut replica polled its last {stopped:.1f} s after the cut; /healthz "
        f"failed after {healthz_failed:.1f} s; the others polled its {len(mine)} endpoints "
        f"after {takeover:.1f} s"
    )
    assert stopped <= LEASE * 2 / 3 + 1
    assert healthz_failed <= LEASE + 10 + 2
    restored = time.time()
    replicas.forwarder.start()
    wait_until("the cut replica polls again", lambda: bool(replicas.polls_by("r3", restored)), 60)
    print(f"fencing: polling again {time.time() - restored:.1f} s after the API server came back")
    assert not _overlaps(replicas.trace, cut)


def test_sigterm_hands_over_within_two_intervals(replicas: Replicas) -> None:
    mine = replicas.share_of("r1")
    assert mine
    stopped = time.time()
    op = replicas.running.pop("r1")
    assert op.stop() in (0, -signal.SIGTERM)
    taken = replicas.taken_over(mine, "r1", stopped, 4 * INTERVAL)
    print(
        f"\nSIGTERM hand-over: all {len(mine)} endpoints polled by the others after {taken:.1f} s"
    )
    assert taken <= 2 * INTERVAL
    items = replicas.endpoints()
    assert not [i["metadata"]["name"] for i in items if "ObservationStale" in _reasons(i)]
    assert "Traceback" not in op.log.read_text(), op.tail(80)


def test_sigkill_is_covered_within_lease_plus_interval(replicas: Replicas) -> None:
    mine = replicas.share_of("r0")
    assert mine
    killed = time.time()
    op = replicas.running.pop("r0")
    op.proc.kill()
    op.proc.wait()
    taken = replicas.taken_over(mine, "r0", killed, LEASE + 2 * INTERVAL + 10)
    print(
        f"\nSIGKILL failover (15 s lease, 5 s interval): all {len(mine)} endpoints polled again "
        f"after {taken:.1f} s"
    )
    assert taken <= 30
    assert replicas.all_ready()
