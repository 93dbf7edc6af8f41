"""A local Kubernetes control plane (etcd + kube-apiserver) for tests and demos.

Standalone on purpose: stdlib + ``cryptography`` + ``PyYAML``; it does not import inferenceops.

    from localcp import LocalControlPlane
    with LocalControlPlane() as cp:
        cp.kubectl("get", "ns")

Binaries come from (first match wins, per binary):
  TEST_ASSET_KUBE_APISERVER / TEST_ASSET_ETCD / TEST_ASSET_KUBECTL / TEST_ASSET_HELM,
  $KUBEBUILDER_ASSETS/<name>,
  ${INFERENCEOPS_CACHE:-~/.cache/inferenceops}/controlplane/<k8s-version>/<name>,
and build.sh (beside this file) is run to build whatever is missing from the cache.

There is no kube-controller-manager or scheduler: no Deployments -> Pods, no garbage collection,
no ServiceAccount tokens, and deleted namespaces stay Terminating. CRDs, CEL validation, RBAC,
admission webhooks, status subresources, server-side apply and watches all work.
tests/node/localnode.py adds them (and a kubelet) around one of these, bound to a bridge address.

CLI:
    python tests/controlplane/localcp.py build
    python tests/controlplane/localcp.py up --kubeconfig PATH   # prints "ready"; Ctrl-C stops
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "build.sh"
CONTEXT_NAME = "inferenceops-local"
DEFAULT_START_TIMEOUT = 60.0
LOG_TAIL_LINES = 30
TMP_PREFIX = "inferenceops-cp-"


class ControlPlaneError(RuntimeError):
    """The control plane could not be built, started or reached."""


class CommandError(subprocess.CalledProcessError):
    """A kubectl/helm call failed; str() includes stderr so test failures are readable."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstdout:\n{self.stdout or ''}\nstderr:\n{self.stderr or ''}"


# --------------------------------------------------------------------------------------------
# Binaries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: str
    etcd: str
    kubectl: str
    helm: str | None


def pinned_k8s_version() -> str:
    """The k8s.io/kubernetes version pinned in tests/controlplane/go.mod (or $K8S_VERSION)."""
    if os.environ.get("K8S_VERSION"):
        return os.environ["K8S_VERSION"]
    m = re.search(
        r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", (HERE / "go.mod").read_text(), re.M
    )
    if not m:
        raise ControlPlaneError(f"no k8s.io/kubernetes version in {HERE / 'go.mod'}")
    return m.group(1)


def cache_dir() -> Path:
    root = os.environ.get("INFERENCEOPS_CACHE") or os.path.join(
        Path.home(), ".cache", "inferenceops"
    )
    return Path(root) / "controlplane" / pinned_k8s_version()


_ENV_FOR = {
    "kube-apiserver": "TEST_ASSET_KUBE_APISERVER",
    "etcd": "TEST_ASSET_ETCD",
    "kubectl": "TEST_ASSET_KUBECTL",
    "helm": "TEST_ASSET_HELM",
}


def _locate(name: str) -> str | None:
    env = os.environ.get(_ENV_FOR[name])
    if env:
        return env
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and os.access(os.path.join(assets, name), os.X_OK):
        return os.path.join(assets, name)
    cached = cache_dir() / name
    if os.access(cached, os.X_OK):
        return str(cached)
    return None


def build(node: bool = False) -> Path:
    """Run build.sh (builds only what is missing); returns the bin dir. Prints the time it took.

    ``node=True`` also builds kubelet, kube-controller-manager and kube-scheduler (tests/node)."""
    t0 = time.monotonic()
    what = "control-plane and node" if node else "control-plane"
    print(
        f"[localcp] building {what} binaries with {BUILD_SH} (first time: many minutes)",
        file=sys.stderr,
        flush=True,
    )
    argv = ["bash", str(BUILD_SH), *(["--node"] if node else [])]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ControlPlaneError(
            f"{BUILD_SH} failed with exit code {proc.returncode} (its output is above)"
        )
    print(f"[localcp] build.sh took {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    lines = proc.stdout.strip().splitlines()
    return Path(lines[-1]) if lines else cache_dir()


def find_binaries(build_missing: bool = True, need_helm: bool = True) -> Binaries:
    """Locate kube-apiserver, etcd, kubectl and helm; run build.sh for missing ones."""
    names = ["kube-apiserver", "etcd", "kubectl"] + (["helm"] if need_helm else [])
    found = {n: _locate(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing and build_missing:
        build()
        found = {n: _locate(n) for n in names}
        missing = [n for n, p in found.items() if p is None]
    if missing:
        raise ControlPlaneError(
            f"control-plane binaries not found: {', '.join(missing)} (looked in {cache_dir()}; "
            f"run `python {HERE / 'localcp.py'} build` or set KUBEBUILDER_ASSETS)"
        )
    for n, p in found.items():
        if not os.access(p, os.X_OK):
            raise ControlPlaneError(f"{n} binary {p} is not executable")
    return Binaries(found["kube-apiserver"], found["etcd"], found["kubectl"], found.get("helm"))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _parse_duration(value: str) -> float:
    """Seconds from '60', '60s', '1m30s', '500ms' (Go duration syntax, as envtest reads it)."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
    if not parts or "".join(a + b for a, b in parts) != value:
        raise ValueError(f"bad duration {value!r}")
    return sum(float(a) * units[b] for a, b in parts)


def _free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tail(path: Path, n: int = LOG_TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(lines[-n:])


def _pdeathsig_fn():
    """A preexec_fn making the child get SIGKILL when this process dies, even by SIGKILL (Linux).

    SIGKILL, not SIGTERM: both children would get it at once, etcd exits at once, and
    kube-apiserver's graceful shutdown then hangs retrying the vanished etcd."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, in the parent
    except Exception:
        return None

    def _set() -> None:  # runs in the child between fork and exec
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG

    return _set


def _remove_stale_tmpdirs() -> None:
    """Remove temp dirs left by a control plane whose owning Python process was SIGKILLed."""
    for d in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
        try:
            pid = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours, or being created right now
        try:
            os.kill(pid, 0)
            continue  # owner alive
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            continue


# --------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------


class _Certs:
    """A CA, a serving cert for 127.0.0.1/localhost (+ ``extra_sans``), an admin client cert, a
    client cert for the API server's calls to kubelets, and an SA key pair."""

    def __init__(self, directory: Path, extra_sans: Sequence[str] = ()):
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        now = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)
        until = now + _dt.timedelta(days=7)

        def pem_key(key) -> bytes:
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        def name(cn: str, org: str | None = None) -> x509.Name:
            attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
            if org:
                attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
            return x509.Name(attrs)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = name("inferenceops-local-ca")
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )

        def leaf(subject: x509.Name, usage, sans=None):
            key = ec.generate_private_key(ec.SECP256R1())
            b = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(until)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            )
            if sans:
                b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            return b.sign(ca_key, hashes.SHA256()), key

        def san(value: str) -> x509.GeneralName:
            try:
                return x509.IPAddress(ipaddress.ip_address(value))
            except ValueError:
                return x509.DNSName(value)

        serving, serving_key = leaf(
            name("kube-apiserver"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("kubernetes"),
                x509.DNSName("kubernetes.default"),
                x509.DNSName("kubernetes.default.svc"),
                x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                *(san(s) for s in extra_sans),
            ],
        )
        admin, admin_key = leaf(name("admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)
        # What the API server presents to kubelets (logs, exec, port-forward).
        kubelet_client, kubelet_client_key = leaf(
            name("kube-apiserver-kubelet-client", "system:masters"),
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        pem = serialization.Encoding.PEM
        self.ca_pem = ca.public_bytes(pem)
        self.admin_cert_pem = admin.public_bytes(pem)
        self.admin_key_pem = pem_key(admin_key)
        files = {
            "ca.crt": self.ca_pem,
            "apiserver.crt": serving.public_bytes(pem),
            "apiserver.key": pem_key(serving_key),
            "admin.crt": self.admin_cert_pem,
            "admin.key": self.admin_key_pem,
            "kubelet-client.crt": kubelet_client.public_bytes(pem),
            "kubelet-client.key": pem_key(kubelet_client_key),
            "sa-signer.key": pem_key(sa_key),
            "sa-signer.pub": sa_key.public_key().public_bytes(
                pem, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for fname, data in files.items():
            p = directory / fname
            p.write_bytes(data)
            if fname.endswith(".key"):
                p.chmod(0o600)

    def path(self, fname: str) -> str:
        return str(self.dir / fname)


# --------------------------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------------------------


class _ClusterBase:
    kubeconfig: str
    server: str
    audit_log: str | None
    _kubectl_bin: str | None = None
    _helm_bin: str | None = None
    _helm_env: dict | None = None

    def _run(
        self,
        binary: str | None,
        what: str,
        args: Sequence[str],
        check: bool,
        input: str | None,
        env: dict | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess:
        if not binary:
            raise ControlPlaneError(f"no {what} binary available")
        cmd = [binary, "--kubeconfig", self.kubeconfig, *map(str, args)]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, cmd, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self, *args, check: bool = True, input: str | None = None, timeout: float | None = 120
    ) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster; stdout/stderr captured as text."""
        return self._run(self._kubectl_bin, "kubectl", args, check, input, timeout=timeout)

    def helm(
        self, *args, check: bool = True, input: str | None = None, timeout: float | None = 300
    ) -> subprocess.CompletedProcess:
        """Run helm against this cluster; stdout/stderr captured as text."""
        return self._run(
            self._helm_bin, "helm", args, check, input, env=self._helm_env, timeout=timeout
        )

    def stop(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ExistingCluster(_ClusterBase):
    """USE_EXISTING_CLUSTER=1: the cluster of the current kubeconfig; no processes are started."""

    def __init__(self, kubeconfig: str | None = None):
        if kubeconfig is None:
            candidates = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
            candidates.append(os.path.join(Path.home(), ".kube", "config"))
            kubeconfig = next((p for p in candidates if os.path.isfile(p)), None)
        if not kubeconfig or not os.path.isfile(kubeconfig):
            raise ControlPlaneError(
                "USE_EXISTING_CLUSTER is set but no kubeconfig was found"
                " (KUBECONFIG or ~/.kube/config)"
            )
        self.kubeconfig = str(kubeconfig)
        self.audit_log = None
        cfg = yaml.safe_load(Path(kubeconfig).read_text()) or {}
        ctx = next(
            (
                c["context"]
                for c in cfg.get("contexts", [])
                if c.get("name") == cfg.get("current-context")
            ),
            {},
        )
        cluster = next(
            (c["cluster"] for c in cfg.get("clusters", []) if c.get("name") == ctx.get("cluster")),
            {},
        )
        self.server = cluster.get("server", "")
        self._kubectl_bin = _locate("kubectl") or shutil.which("kubectl")
        self._helm_bin = _locate("helm") or shutil.which("helm")
        self._helm_env = None

    def stop(self) -> None:
        pass


_LIVE: set[LocalControlPlane] = set()


@atexit.register
def _stop_all() -> None:
    for cp in list(_LIVE):
        try:
            cp.stop()
        except Exception as e:
            print(f"[localcp] stopping the control plane at exit failed: {e!r}", file=sys.stderr)


class LocalControlPlane(_ClusterBase):
    """etcd + kube-apiserver on free 127.0.0.1 ports, in a temp dir, with an audit log.

    The audit policy logs every request at level Metadata, once (stage ResponseComplete; the
    RequestReceived stage is omitted), so a status write is one line with
    ``verb`` in (patch, update) and ``objectRef.subresource == "status"``; see ``audit_events()``.

    For a real node (tests/node): ``address`` is where kube-apiserver binds and what it
    advertises (etcd stays on 127.0.0.1), ``extra_sans`` are added to its serving cert, and
    ``service_account_admission=True`` turns the ServiceAccount admission plugin back on (it
    needs kube-controller-manager to create each namespace's `default` ServiceAccount).
    """

    def __init__(
        self,
        binaries: Binaries | None = None,
        start_timeout: float | None = None,
        extra_apiserver_args: Sequence[str] = (),
        verbose: bool = True,
        address: str = "127.0.0.1",
        extra_sans: Sequence[str] = (),
        service_account_admission: bool = False,
    ):
        self._binaries = binaries
        if start_timeout is None:
            env = os.environ.get("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT")
            start_timeout = _parse_duration(env) if env else DEFAULT_START_TIMEOUT
        self.start_timeout = start_timeout
        self.extra_apiserver_args = list(extra_apiserver_args)
        self.verbose = verbose
        self.address = address
        self.extra_sans = list(extra_sans)
        self.service_account_admission = service_account_admission
        self.tmpdir: Path | None = None
        self.kubeconfig = ""
        self.server = ""
        self.audit_log = None
        self.etcd_url = ""
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}
        self._logfiles: list = []

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalControlPlane:
        if not self._procs:
            self.start()
        return self

    def start(self) -> LocalControlPlane:
        if self._procs:
            raise ControlPlaneError("already started")
        bins = self._binaries or find_binaries(need_helm=False)  # may build (timed separately)
        t0 = time.monotonic()
        self._binaries = bins
        self._kubectl_bin = bins.kubectl
        self._helm_bin = bins.helm or _locate("helm")
        _LIVE.add(self)
        try:
            self._start(bins, t0)
        except BaseException:
            self.stop()
            raise
        if self.verbose:
            print(
                f"[localcp] control plane ready at {self.server} in {time.monotonic() - t0:.1f} s "
                f"(kubeconfig {self.kubeconfig})",
                file=sys.stderr,
                flush=True,
            )
        return self

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        log_path = self.tmpdir / f"{name}.log"
        f = open(log_path, "wb")  # noqa: SIM115  (closed in stop())
        self._logfiles.append(f)
        self._logs[name] = log_path
        # PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
        pdeath = _pdeathsig_fn() if threading.current_thread() is threading.main_thread() else None
        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=self.tmpdir,
            start_new_session=True,
            preexec_fn=pdeath,
        )
        self._procs[name] = p
        return p

    def _fail(self, msg: str) -> ControlPlaneError:
        parts = [msg]
        for name, p in self._procs.items():
            rc = p.poll()
            state = "running" if rc is None else f"exited with code {rc}"
            parts.append(
                f"--- {name} (pid {p.pid}, {state}); "
                f"last {LOG_TAIL_LINES} lines of {self._logs[name]}:"
            )
            parts.append(_tail(self._logs[name]))
        return ControlPlaneError("\n".join(parts))

    def _check_alive(self) -> None:
        for name, p in self._procs.items():
            if p.poll() is not None:
                raise self._fail(f"{name} exited early with code {p.returncode}")

    def _start(self, bins: Binaries, t0: float) -> None:
        _remove_stale_tmpdirs()
        self.tmpdir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        (self.tmpdir / "owner.pid").write_text(str(os.getpid()))
        deadline = t0 + self.start_timeout
        certs = _Certs(self.tmpdir / "certs", [self.address, *self.extra_sans])
        etcd_port, peer_port = _free_ports(2)
        (api_port,) = _free_ports(1, self.address)
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"

        # etcd
        self._spawn(
            "etcd",
            [
                bins.etcd,
                f"--data-dir={self.tmpdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
            ],
        )
        self._wait_for("etcd /health", deadline, self._etcd_healthy)

        # kube-apiserver
        policy = self.tmpdir / "audit-policy.yaml"
        policy.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived"],
                    "rules": [{"level": "Metadata"}],
                }
            )
        )
        self.audit_log = str(self.tmpdir / "audit.log")
        self.server = f"https://{self.address}:{api_port}"
        loopback = self.address.startswith("127.")
        self._apiserver_argv = [
            bins.kube_apiserver,
            f"--etcd-servers={self.etcd_url}",
            f"--cert-dir={certs.dir}",
            f"--tls-cert-file={certs.path('apiserver.crt')}",
            f"--tls-private-key-file={certs.path('apiserver.key')}",
            f"--secure-port={api_port}",
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            # v1.37 refuses a loopback advertise address with the default (lease) endpoint
            # reconciler ("may not be in the loopback range"); nothing here needs the endpoints
            # of the `kubernetes` Service, so turn the reconciler off. Any other address keeps
            # the default, so the Service has the endpoints a real cluster's has.
            *(["--endpoint-reconciler-type=none"] if loopback else []),
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            *(
                []
                if self.service_account_admission
                else ["--disable-admission-plugins=ServiceAccount"]
            ),
            "--authorization-mode=RBAC",
            # `kubectl logs/exec` through a kubelet; nodes are reached by their InternalIP
            # (a test node's name does not resolve).
            f"--kubelet-client-certificate={certs.path('kubelet-client.crt')}",
            f"--kubelet-client-key={certs.path('kubelet-client.key')}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--client-ca-file={certs.path('ca.crt')}",
            f"--service-account-issuer={self.server}/",
            f"--service-account-key-file={certs.path('sa-signer.pub')}",
            f"--service-account-signing-key-file={certs.path('sa-signer.key')}",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-maxbackup=0",
            *self.extra_apiserver_args,
        ]
        self._spawn("kube-apiserver", self._apiserver_argv)
        self._ssl = ssl.create_default_context(cafile=certs.path("ca.crt"))
        self._ssl.load_cert_chain(certs.path("admin.crt"), certs.path("admin.key"))
        self._wait_for("kube-apiserver /readyz", deadline, lambda: self._get("/readyz") == 200)
        self._wait_for(
            "namespace default", deadline, lambda: self._get("/api/v1/namespaces/default") == 200
        )
        self._write_kubeconfig(certs)
        helm_home = self.tmpdir / "helm"
        self._helm_env = dict(
            os.environ,
            HELM_CACHE_HOME=str(helm_home / "cache"),
            HELM_CONFIG_HOME=str(helm_home / "config"),
            HELM_DATA_HOME=str(helm_home / "data"),
        )

    def _wait_for(self, what: str, deadline: float, probe) -> None:
        last_err: BaseException | None = None
        while True:
            self._check_alive()
            try:
                if probe():
                    return
            except Exception as e:  # connection refused etc. while starting
                last_err = e
            if time.monotonic() > deadline:
                raise self._fail(
                    f"timed out after {self.start_timeout:.0f} s waiting for {what}"
                    f" (last error: {last_err!r}; raise KUBEBUILDER_CONTROLPLANE_START_TIMEOUT"
                    " if the machine is slow)"
                )
            time.sleep(0.2)

    # -- outages, for tests of what clients do meanwhile ----------------------------------------

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (etcd keeps running); `start_apiserver()` brings it back."""
        p = self._procs.pop("kube-apiserver")
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def start_apiserver(self) -> None:
        """Start kube-apiserver again, on the same address and port, and wait until it is ready."""
        self._spawn("kube-apiserver", self._apiserver_argv)
        deadline = time.monotonic() + self.start_timeout
        self._wait_for("kube-apiserver /readyz", deadline, lambda: self._get("/readyz") == 200)

    @contextlib.contextmanager
    def other_apiserver(self) -> Iterator[str]:
        """A second kube-apiserver on the same etcd, on another port: changes made through it
        while the first one is stopped are what a client of the first one missed. Yields an
        admin kubeconfig for it."""
        (port,) = _free_ports(1, self.address)
        argv = [
            f"--secure-port={port}"
            if a.startswith("--secure-port=")
            else f"--audit-log-path={self.tmpdir / 'audit-2.log'}"
            if a.startswith("--audit-log-path=")
            else a
            for a in self._apiserver_argv
        ]
        self._spawn("kube-apiserver-2", argv)
        server = f"https://{self.address}:{port}"
        kubeconfig = self.tmpdir / "kubeconfig-2"
        kubeconfig.write_text(Path(self.kubeconfig).read_text().replace(self.server, server))
        try:
            deadline = time.monotonic() + self.start_timeout
            self._wait_for(
                "the second kube-apiserver", deadline, lambda: self._get("/readyz", server) == 200
            )
            yield str(kubeconfig)
        finally:
            p = self._procs.pop("kube-apiserver-2")
            p.terminate()
            p.wait(timeout=20)

    def compact_etcd(self) -> int:
        """Compact etcd's history up to now; a watch from an older resourceVersion then gets
        410 Gone. Returns the revision."""

        def post(path: str, body: dict) -> dict:
            request = urllib.request.Request(
                self.etcd_url + path, data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as r:
                return json.loads(r.read())

        revision = int(
            post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
        )
        post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
            return r.status == 200 and json.loads(r.read() or b"{}").get("health") in ("true", True)

    def _get(self, path: str, server: str | None = None) -> int:
        try:
            url = (server or self.server) + path
            with urllib.request.urlopen(url, timeout=5, context=self._ssl) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def _write_kubeconfig(self, certs: _Certs, path: str | None = None) -> str:
        b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT_NAME,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(certs.ca_pem),
                    },
                }
            ],
            "users": [
                {
                    "name": f"{CONTEXT_NAME}-admin",
                    "user": {
                        "client-certificate-data": b64(certs.admin_cert_pem),
                        "client-key-data": b64(certs.admin_key_pem),
                    },
                }
            ],
            "contexts": [
                {
                    "name": CONTEXT_NAME,
                    "context": {
                        "cluster": CONTEXT_NAME,
                        "user": f"{CONTEXT_NAME}-admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": CONTEXT_NAME,
            "preferences": {},
        }
        target = Path(path) if path else self.tmpdir / "kubeconfig"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        if path is None:
            self.kubeconfig = str(target)
        return str(target)

    def write_kubeconfig(self, path: str) -> str:
        """Copy the admin kubeconfig to ``path`` (e.g. for `make demo`)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.kubeconfig, path)
        os.chmod(path, 0o600)
        return path

    def cert_path(self, fname: str) -> str:
        """A file of the cluster's PKI: ca.crt, admin.crt/.key, sa-signer.key/.pub, ..."""
        if self.tmpdir is None:
            raise ControlPlaneError("not started")
        return str(self.tmpdir / "certs" / fname)

    def logs_tail(self, n: int = LOG_TAIL_LINES) -> str:
        """The last ``n`` lines of each process's log, for failure messages."""
        return "\n".join(
            f"--- {name} ({path}):\n{_tail(path, n)}" for name, path in self._logs.items()
        )

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items()}

    def stop(self) -> None:
        """SIGTERM kube-apiserver then etcd, SIGKILL after 10 s, reap them, remove the temp dir."""
        for name in ("kube-apiserver", "etcd"):
            p = self._procs.get(name)
            if p is None or p.poll() is not None:
                continue
            try:
                p.terminate()
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            except ProcessLookupError:
                pass
        for p in self._procs.values():  # reap anything left
            if p.poll() is None:
                p.kill()
                p.wait()
        self._procs.clear()
        for f in self._logfiles:
            f.close()
        self._logfiles.clear()
        if self.tmpdir is not None and not os.environ.get("LOCALCP_KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        _LIVE.discard(self)

    # -- audit log -------------------------------------------------------------------------

    def audit_events(self, **match) -> list[dict]:
        """Parsed audit events, filtered by keyword: ``objectRef__subresource="status"``.

        A double underscore stands for a dot in the event's path (``objectRef.subresource``).
        A tuple/list/set value means "one of": ``verb=("patch", "update")``.
        """
        if not self.audit_log or not os.path.exists(self.audit_log):
            return []
        out = []
        with open(self.audit_log) as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if all(_matches(_dig(ev, k.replace("__", ".")), v) for k, v in match.items()):
                    out.append(ev)
        return out


def _dig(d, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


def _matches(actual, wanted) -> bool:
    if isinstance(wanted, (tuple, list, set, frozenset)):
        return actual in wanted
    return actual == wanted


def use_existing_cluster() -> bool:
    return os.environ.get("USE_EXISTING_CLUSTER", "").lower() in ("1", "true", "yes", "on")


def connect_or_start(**kwargs) -> _ClusterBase:
    """USE_EXISTING_CLUSTER=1: ExistingCluster (current kubeconfig); else a started
    LocalControlPlane."""
    if use_existing_cluster():
        return ExistingCluster()
    return LocalControlPlane(**kwargs).start()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="localcp", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser(
        "build", help="build the binaries into the cache (nothing that exists is rebuilt)"
    )
    up = sub.add_parser("up", help="start a control plane and run until SIGINT/SIGTERM")
    up.add_argument("--kubeconfig", required=True, help="where to write the admin kubeconfig")
    args = ap.parse_args(argv)

    if args.cmd == "build":
        print(find_binaries())
        return 0

    class _Stop(Exception):
        pass

    def _on_signal(signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM):  # a second signal must not interrupt the cleanup
            signal.signal(s, signal.SIG_IGN)
        raise _Stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    cp = LocalControlPlane()
    try:
        cp.start()
        cp.write_kubeconfig(args.kubeconfig)
        print(
            f"server {cp.server}\nkubeconfig {os.path.abspath(args.kubeconfig)}\n"
            f"audit log {cp.audit_log}"
        )
        print("ready", flush=True)
        while True:
            time.sleep(1.0)
            for name, p in cp._procs.items():
                if p.poll() is not None:
                    print(
                        f"[localcp] {name} exited with code {p.returncode}:\n"
                        + _tail(cp._logs[name]),
                        file=sys.stderr,
                    )
                    return 1
    except _Stop:
        return 0
    finally:
        cp.stop()
        print("[localcp] stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
