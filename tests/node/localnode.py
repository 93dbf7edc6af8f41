"""A single-node Kubernetes cluster for e2e tests: a real kubelet with containerd and runc.

Standalone on purpose, like tests/controlplane/localcp.py (which it uses): stdlib + PyYAML.

    from localnode import LocalNode
    with LocalNode() as node:
        node.import_image("app.tar", "app:1")   # an OCI archive; pods use image: app:1
        node.kubectl("apply", "-f", "deploy.yaml")

start() sets up, with every file under one temp dir (/tmp/inferenceops-node-*):
  - a Linux bridge `ioe2e0` with a private /24 (10.217.0.0/24 unless that is taken); its first
    address (``host_ip``) is the node's address: kube-apiserver binds there, pods reach it;
  - iptables chains INFERENCEOPS-E2E-FWD (from FORWARD: nothing crosses between the bridge and
    another interface, so pods reach this machine only) and INFERENCEOPS-E2E-DNAT (from nat
    PREROUTING: the `kubernetes` Service 10.0.0.1:443 -> the API server; there is no kube-proxy);
  - a LocalControlPlane (etcd + kube-apiserver with its audit log) with ServiceAccount admission;
  - containerd with its own config, root, state and socket; its sandbox image is a pause image
    packed from Debian's static catatonit (cached in ~/.cache/inferenceops/node/); CNI bridge +
    host-local + portmap, no masquerading;
  - kubelet (cgroupfs driver, cgroup v1 allowed, its own cgroup root /inferenceops-e2e),
    kube-controller-manager and kube-scheduler (no leader election, no serving ports).
stop() deletes the pods, stops every process (containerd's shims too), unmounts, removes the
cgroups, bridge and iptables chains, restores the sysctls the kubelet and the bridge plugin set,
and removes the temp dir. What a run killed by SIGKILL left behind is undone by the next start()
(or `python tests/node/localnode.py clean`). One node per machine at a time.

Needs root, the Debian packages tests/node/install.sh installs, and kubelet,
kube-controller-manager and kube-scheduler (TEST_ASSET_KUBELET, TEST_ASSET_KUBE_CONTROLLER_MANAGER,
TEST_ASSET_KUBE_SCHEDULER, $KUBEBUILDER_ASSETS or the control-plane cache; built by
`tests/controlplane/build.sh --node` when missing).

CLI:
    python tests/node/localnode.py up --kubeconfig PATH   # prints "ready"; Ctrl-C stops
    python tests/node/localnode.py clean                  # undo what a killed run left
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import hashlib
import io
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "controlplane") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "controlplane"))
import localcp  # noqa: E402  (a sibling namespace dir, imported as localcp's own fixtures do)

BRIDGE = "ioe2e0"
OUR_CHAINS = "INFERENCEOPS-E2E-"
FWD_CHAIN = OUR_CHAINS + "FWD"
DNAT_CHAIN = OUR_CHAINS + "DNAT"
# The CNI portmap plugin's chains (hostPort); shared by every CNI user on the machine, so removed
# only when none existed before start().
PORTMAP_CHAINS = ("CNI-HOSTPORT-", "CNI-DN-")
CGROUP_ROOT = "inferenceops-e2e"
NODE_NAME = "inferenceops-e2e"
CNI_NETWORK = "inferenceops-e2e"
TMP_PREFIX = "inferenceops-node-"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service: first address of localcp's 10.0.0.0/24
SUBNETS = ("10.217.0.0/24", "10.217.1.0/24", "10.218.0.0/24", "172.30.217.0/24")
PAUSE_IMAGE = "localhost/inferenceops/pause:catatonit"
DEFAULT_START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
CNI_BIN_DIR = "/usr/lib/cni"
INSTALL_HINT = "run `bash tests/node/install.sh` as root"
NODE_BINARIES = {
    "kubelet": "TEST_ASSET_KUBELET",
    "kube-controller-manager": "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
    "kube-scheduler": "TEST_ASSET_KUBE_SCHEDULER",
}
# Host paths a node's components create and fill outside the temp dir (the kubelet's container log
# symlinks, libcni's result cache, containerd-shim sockets). Emptied of our entries by stop() and
# removed when they did not exist before start().
HOST_DIRS = ("/var/log/containers", "/var/lib/cni", "/run/containerd")
# Set by the kubelet (unless protectKernelDefaults) and, net.*, by the CNI bridge plugin.
# ip_forward first: writing it resets every net.ipv4.conf.*.forwarding and all.accept_redirects,
# which are restored after it.
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv4.conf.all.accept_redirects",
    "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.default.forwarding",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)


class NodeError(RuntimeError):
    """The node could not be prepared, started or stopped cleanly."""


def _log(msg: str) -> None:
    print(f"[localnode] {msg}", file=sys.stderr, flush=True)


def _run(
    *argv: str, check: bool = True, timeout: float = 30, input: str | None = None
) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise NodeError(f"`{' '.join(argv)}` did not finish in {timeout:.0f} s") from e
    if check and proc.returncode != 0:
        raise NodeError(f"`{' '.join(argv)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def _deadline_loop(what: str, timeout: float, every: float = 0.25) -> Iterator[None]:
    """Yields until the caller breaks; raises NodeError after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        yield
        if time.monotonic() > end:
            raise NodeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --------------------------------------------------------------------------------------------
# Host state: sysctls, cgroups, mounts, processes, iptables
# --------------------------------------------------------------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _read_sysctls() -> dict[str, str]:
    names = list(SYSCTLS)
    # Per-interface forwarding too: the bridge plugin turns ip_forward on, which flips them all.
    for iface in sorted(os.listdir("/sys/class/net")):
        if "." not in iface and iface != BRIDGE and not iface.startswith("veth"):
            names.append(f"net.ipv4.conf.{iface}.forwarding")
    out = {}
    for name in names:
        with contextlib.suppress(OSError):
            out[name] = _sysctl_path(name).read_text().strip()
    return out


def _restore_sysctls(saved: dict[str, str]) -> list[str]:
    errors = []
    for name, value in saved.items():  # dict order: ip_forward before the per-interface values
        path = _sysctl_path(name)
        try:
            if path.exists() and path.read_text().strip() != value:
                path.write_text(value)
        except OSError as e:
            errors.append(f"sysctl {name}={value}: {e}")
    return errors


def _cgroup_mounts() -> list[Path]:
    """Every cgroup (v1) and cgroup2 mount point: the node's cgroups live in all of them."""
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[2] in ("cgroup", "cgroup2"):
            out.append(Path(fields[1]))
    return out


def _cgroup_dirs() -> list[Path]:
    return [m / CGROUP_ROOT for m in _cgroup_mounts() if (m / CGROUP_ROOT).is_dir()]


def _create_cgroup_root() -> None:
    """The kubelet refuses a cgroupRoot that does not exist in every hierarchy it uses."""
    for mount in _cgroup_mounts():
        d = mount / CGROUP_ROOT
        d.mkdir(exist_ok=True)
        # A new v1 cpuset cgroup has no CPUs or memory nodes; nothing can join it until set.
        for f in ("cpuset.cpus", "cpuset.mems"):
            if (mount / f).exists() and not (d / f).read_text().strip():
                (d / f).write_text((mount / f).read_text())


def _cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for root in _cgroup_dirs():
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
    return pids


def _remove_cgroups(timeout: float = 10.0) -> list[str]:
    """Kill what is left in the node's cgroups, then remove them leaf first, in every hierarchy."""
    end = time.monotonic() + timeout
    while True:
        pids = _cgroup_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        left = []
        for root in _cgroup_dirs():
            for d, _, _ in sorted(os.walk(root), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(d)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        left.append(f"{d}: {e.strerror}")
        if not left:
            return []
        if time.monotonic() > end:  # EBUSY while killed processes are still being reaped
            return [f"cgroup {x}" for x in left]
        time.sleep(0.1)


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains ``text`` (the shims name containerd's socket)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            out.append(int(entry))
    return out


def _kill_and_wait(pids: list[int], timeout: float = 5.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)


def _mounts_under(prefix: str) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].encode().decode("unicode_escape")  # \040 etc.
        if target == prefix or target.startswith(prefix + "/"):
            out.append(target)
    return out


def _unmount_all(prefix: str) -> list[str]:
    """Unmount everything under ``prefix``, deepest and newest first (kubelet tmpfs volumes,
    overlay rootfs, shm, network namespaces, the kubelet's rshared bind mount of its root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    for _ in range(20):  # a mount can be stacked several times (propagation)
        targets = _mounts_under(prefix)
        if not targets:
            return []
        for target in reversed(targets):
            if libc.umount2(target.encode(), mnt_detach) != 0:
                e = ctypes.get_errno()
                if e not in (errno.EINVAL, errno.ENOENT):
                    return [f"umount {target}: {os.strerror(e)}"]
    return [f"still mounted: {t}" for t in _mounts_under(prefix)]


def _iptables_commands(families: tuple[str, ...] = ("iptables",)) -> list[str]:
    """The system's `iptables` (nft or legacy, as the alternatives say) first, then the others."""
    variants = ("", "-nft", "-legacy")
    return [f + v for f in families for v in variants if shutil.which(f + v)]


def _iptables_save(cmd: str) -> str:
    """Rules of the tables that exist. Unlike `iptables -S`, the -save tools never instantiate a
    legacy table (which would then stay, empty, until reboot)."""
    return _run(cmd + "-save", check=False).stdout if shutil.which(cmd + "-save") else ""


def _chains(save: str, prefixes: tuple[str, ...]) -> list[str]:
    return [
        line[1:].split()[0]
        for line in save.splitlines()
        if line.startswith(":") and line[1:].startswith(prefixes)
    ]


def _has_our_chains(cmd: str) -> bool:
    return bool(_chains(_iptables_save(cmd), (OUR_CHAINS,)))


def _portmap_chains_exist() -> bool:
    return any(
        _chains(_iptables_save(c), PORTMAP_CHAINS)
        for c in _iptables_commands(("iptables", "ip6tables"))
    )


def _remove_chains(prefixes: tuple[str, ...]) -> list[str]:
    """Delete the chains named ``prefixes*``, and every jump to them, in every iptables variant
    and family that has them (one `-restore --noflush` per variant: atomic with nft)."""
    errors = []
    for cmd in _iptables_commands(("iptables", "ip6tables")):
        script = []
        for block in _iptables_save(cmd).split("COMMIT"):
            table = next((ln for ln in block.splitlines() if ln.startswith("*")), None)
            mine = _chains(block, prefixes)
            if table is None or not mine:
                continue
            script.append(table)
            for line in block.splitlines():
                if line.startswith("-A ") and " -j " in line:
                    chain, target = line.split()[1], line.split(" -j ", 1)[1].split()[0]
                    if target in mine and chain not in mine:
                        script.append("-D " + line[3:])
            script += [f"-F {c}" for c in mine] + [f"-X {c}" for c in mine] + ["COMMIT"]
        if not script:
            continue
        restore = [cmd + "-restore", "-w", "5", "--noflush"]
        p = _run(*restore, input="\n".join(script) + "\n", check=False)
        if p.returncode != 0:
            errors.append(f"{cmd}-restore removing chains {prefixes}: {p.stderr.strip()}")
    return errors


def _nft_tables() -> list[str]:
    """nftables tables (`ip filter`, ...): iptables-nft creates them for our rules and portmap's."""
    if not shutil.which("nft"):
        return []
    out = _run("nft", "list", "tables", check=False).stdout
    return [line.removeprefix("table ").strip() for line in out.splitlines() if line.strip()]


def _remove_new_nft_tables(before: list[str]) -> None:
    """Delete the iptables-nft tables that did not exist before start() and are empty now."""
    for table in set(_nft_tables()) - set(before):
        family, name = table.split()
        if family in ("ip", "ip6") and name in ("filter", "nat", "mangle", "raw"):
            listing = _run("nft", "-j", "list", "table", family, name, check=False).stdout
            if '"rule"' not in listing:  # nothing but empty base chains
                _run("nft", "delete", "table", family, name, check=False)


def _remove_links() -> list[str]:
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        return []
    errors = []
    for port in os.listdir(f"/sys/class/net/{BRIDGE}/brif"):  # veths a dead pod left attached
        p = _run("ip", "link", "del", port, check=False)
        if p.returncode != 0 and Path(f"/sys/class/net/{port}").exists():
            errors.append(f"ip link del {port}: {p.stderr.strip()}")
    p = _run("ip", "link", "del", BRIDGE, check=False)
    if p.returncode != 0:
        errors.append(f"ip link del {BRIDGE}: {p.stderr.strip()}")
    return errors


def host_state() -> dict[str, Any]:
    """What a node may change on this machine; equal before start() and after stop()."""
    iptables = {
        cmd: sorted(
            line.split(" [")[0] if line.startswith(":") else line
            for line in _iptables_save(cmd).splitlines()
            if not line.startswith("#")
        )
        for cmd in _iptables_commands(("iptables", "ip6tables"))
    }
    return {
        "sysctls": _read_sysctls(),
        "links": sorted(os.listdir("/sys/class/net")),
        "iptables": iptables,
        "nft_tables": _nft_tables(),
        "mounts": [
            t
            for t in _mounts_under("/")
            if t.startswith((tempfile.gettempdir() + "/" + TMP_PREFIX, "/run/netns"))
        ],
        "cgroups": [str(d) for d in _cgroup_dirs()],
        "processes": sorted(_pids_mentioning(tempfile.gettempdir() + "/" + TMP_PREFIX)),
        "host_dirs": {d: os.path.exists(d) for d in HOST_DIRS},
    }


# --------------------------------------------------------------------------------------------
# Teardown of one node's host state; used by stop() and by the stale-state cleaner
# --------------------------------------------------------------------------------------------


def _state_file(tmpdir: Path) -> Path:
    return tmpdir / "state.json"


def _shim_sockets(tmpdir: Path) -> list[str]:
    """containerd 1.6 puts its shims' sockets in /run/containerd/s whatever its state dir is;
    each task's bundle records its shim's address."""
    out = []
    for f in (tmpdir / "containerd" / "state").glob("io.containerd.runtime.v2.task/*/*/address"):
        with contextlib.suppress(OSError):
            out.append(f.read_text().strip().removeprefix("unix://"))
    return out


def _clean_host_dirs(tmpdir: Path, created: list[str]) -> list[str]:
    for link in Path("/var/log/containers").glob("*.log"):
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(str(tmpdir) + "/"):
                link.unlink()
    # libcni's result cache: <network>-<sandbox id>-<ifname>, ours and the loopback plugin's.
    ctd = tmpdir / "containerd"
    sandboxes = {p.name for p in ctd.glob("root/io.containerd.grpc.v1.cri/sandboxes/*")}
    for f in Path("/var/lib/cni").glob("*/*"):
        if f.name.startswith(CNI_NETWORK + "-") or any(i in f.name for i in sandboxes):
            with contextlib.suppress(OSError):
                f.unlink()
    for sock in _shim_sockets(tmpdir):
        with contextlib.suppress(OSError):
            os.unlink(sock)
    errors = []
    for top in created:  # only the dirs this node created, and only when nothing else is in them
        if not os.path.isdir(top):
            continue
        for d, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if os.path.exists(top):
            errors.append(f"{top} is not empty: left in place")
    return errors


def _teardown_host(tmpdir: Path, state: dict[str, Any]) -> list[str]:
    """Undo everything start() did to the host, in an order that cannot leave busy resources:
    processes, mounts, cgroups, links, iptables, sysctls, host dirs, the temp dir."""
    errors: list[str] = []
    # Container processes, then every process still naming our temp dir: containerd, its shims
    # (they outlive containerd), and anything the owner of a stale dir left running.
    _kill_and_wait(list(_cgroup_pids()))
    _kill_and_wait(_pids_mentioning(str(tmpdir) + "/"))
    errors += _unmount_all(str(tmpdir))
    errors += _remove_cgroups()
    errors += _remove_links()
    mine = (OUR_CHAINS,) + (() if state.get("portmap_chains_before", True) else PORTMAP_CHAINS)
    errors += _remove_chains(mine)
    if "nft_tables" in state:
        _remove_new_nft_tables(state["nft_tables"])
    errors += _restore_sysctls(state.get("sysctls", {}))
    errors += _clean_host_dirs(tmpdir, state.get("created_host_dirs", []))
    if _mounts_under(str(tmpdir)):
        errors.append(f"{tmpdir} still has mounts: left in place")
    elif not os.environ.get("LOCALNODE_KEEP_TMP"):
        shutil.rmtree(tmpdir, ignore_errors=True)
    return errors


def _owner_alive(tmpdir: Path) -> int | None:
    try:
        pid = int((tmpdir / "owner.pid").read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def clean_stale() -> list[str]:
    """Undo what nodes whose owning process died (SIGKILL, power cut of the test run) left:
    their processes, mounts, cgroups, bridge, iptables chains, sysctls and temp dirs.

    Returns what was cleaned. A node whose owner is alive is left alone."""
    localcp._remove_stale_tmpdirs()  # the dead run's control plane (its processes died with it)
    cleaned = []
    live = False
    for d in sorted(Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*")):
        just_made = not (d / "owner.pid").exists() and time.time() - d.stat().st_mtime < 60
        if just_made or _owner_alive(d) is not None:
            live = True
            continue
        try:
            state = json.loads(_state_file(d).read_text())
        except (OSError, ValueError):
            state = {}
        errors = _teardown_host(d, state)
        cleaned.append(f"{d}" + (f" (incomplete: {'; '.join(errors)})" if errors else ""))
    if not live:  # names that only a node uses, left by a run whose temp dir is gone
        leftovers = (
            _cgroup_dirs()
            or Path(f"/sys/class/net/{BRIDGE}").exists()
            or any(map(_has_our_chains, _iptables_commands()))
        )
        if leftovers:
            errors = _remove_cgroups() + _remove_links() + _remove_chains((OUR_CHAINS,))
            cleaned.append("orphaned bridge/chains/cgroups" + (f": {errors}" if errors else ""))
    for what in cleaned:
        _log(f"cleaned up after a dead run: {what}")
    return cleaned


# --------------------------------------------------------------------------------------------
# Preflight, binaries, pause image
# --------------------------------------------------------------------------------------------


def _locate(name: str) -> str | None:
    env = os.environ.get(NODE_BINARIES[name])
    if env:
        return env
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and os.access(os.path.join(assets, name), os.X_OK):
        return os.path.join(assets, name)
    cached = localcp.cache_dir() / name
    return str(cached) if os.access(cached, os.X_OK) else None


def find_node_binaries(build_missing: bool = True) -> dict[str, str]:
    """kubelet, kube-controller-manager, kube-scheduler; runs `build.sh --node` for missing ones."""
    found = {n: _locate(n) for n in NODE_BINARIES}
    if None in found.values() and build_missing:
        localcp.build(node=True)
        found = {n: _locate(n) for n in NODE_BINARIES}
    for name, path in found.items():
        if path is not None and not os.access(path, os.X_OK):
            raise NodeError(f"{name} binary {path} ({NODE_BINARIES[name]}?) is not executable")
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise NodeError(
            f"node binaries not found: {', '.join(missing)} (looked in {localcp.cache_dir()}); "
            "run `bash tests/controlplane/build.sh --node`"
        )
    return {n: str(p) for n, p in found.items()}


def preflight() -> None:
    """One NodeError line per missing prerequisite, naming the fix; nothing here can hang."""
    problems = []
    if sys.platform != "linux":
        raise NodeError("a LocalNode needs Linux")
    if os.geteuid() != 0:
        raise NodeError(
            "a LocalNode needs root (bridge, iptables, mounts, cgroups): run the tests as root"
        )
    tools = {
        "containerd": "containerd",
        "containerd-shim-runc-v2": "containerd",
        "ctr": "containerd",
        "runc": "runc",
        "catatonit": "catatonit",
        "umoci": "umoci",
        "skopeo": "skopeo",
        "ip": "iproute2",
        "nsenter": "util-linux",
    }
    missing = sorted({pkg for tool, pkg in tools.items() if not shutil.which(tool)})
    plugins = ("bridge", "host-local", "portmap", "loopback")
    if not all(os.access(f"{CNI_BIN_DIR}/{p}", os.X_OK) for p in plugins):
        missing.append("containernetworking-plugins")
    if not _iptables_commands():
        missing.append("iptables")
    if not shutil.which("nft"):
        missing.append("nftables")
    if missing:
        problems.append(f"missing Debian packages {' '.join(missing)}: {INSTALL_HINT}")
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("the kernel has no overlay filesystem (containerd's overlayfs snapshotter)")
    v1 = {m.name for m in _cgroup_mounts() if m.parent == Path("/sys/fs/cgroup")}
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    v2_controllers = set(v2.read_text().split()) if v2.exists() else set()
    needed = {"cpu", "cpuacct", "cpuset", "memory", "pids"}
    if not needed <= v1 and not {"cpu", "cpuset", "memory", "pids"} <= v2_controllers:
        problems.append(
            f"cgroup controllers {' '.join(sorted(needed - v1))} are not mounted under "
            "/sys/fs/cgroup (mount the cgroup v1 hierarchies, or boot with cgroup v2)"
        )
    if not Path("/proc/sys/net/ipv4/ip_forward").exists():
        problems.append("no IPv4 networking sysctls (/proc/sys/net/ipv4): a network namespace?")
    if problems:
        raise NodeError("; ".join(problems))


def _pick_subnet() -> ipaddress.IPv4Network:
    """The first candidate /24 that overlaps no address or route of this machine."""
    used = []
    for line in _run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        used.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        dst = line.split()[0]
        if dst in ("default", "broadcast", "local", "unreachable", "blackhole", "prohibit"):
            dst = line.split()[1] if dst != "default" else ""
        with contextlib.suppress(ValueError):
            if dst and dst != "0.0.0.0/0":
                used.append(ipaddress.ip_network(dst, strict=False))
    service = ipaddress.ip_network("10.0.0.0/24")
    for cand in map(ipaddress.IPv4Network, SUBNETS):
        if not cand.overlaps(service) and not any(cand.overlaps(u) for u in used):
            return cand
    raise NodeError(f"every candidate pod subnet {', '.join(SUBNETS)} is in use on this machine")


def pause_archive() -> Path:
    """The pause image: Debian's static catatonit run as `catatonit -P`, packed as an OCI archive
    (cached; keyed by the catatonit binary's hash, so it is built once per catatonit version)."""
    catatonit = shutil.which("catatonit") or "/usr/bin/catatonit"
    binary = Path(catatonit).read_bytes()
    if b".interp\x00" in binary:  # a dynamic executable names its loader there
        raise NodeError(f"{catatonit} is not statically linked; the pause image has nothing else")
    digest = hashlib.sha256(binary).hexdigest()[:12]
    cache = Path(localcp.cache_dir()).parent.parent / "node"
    archive = cache / f"pause-catatonit-{digest}.tar"
    if archive.exists():
        return archive
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="inferenceops-pause-") as work:
        w = Path(work)
        layer = w / "layer.tar"
        with tarfile.open(layer, "w") as tar:
            info = tar.gettarinfo(catatonit, arcname="catatonit")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            with open(catatonit, "rb") as f:
                tar.addfile(info, f)
        oci = f"{w}/oci:pause"
        _run("umoci", "init", "--layout", f"{w}/oci")
        _run("umoci", "new", "--image", oci)
        _run("umoci", "raw", "add-layer", "--image", oci, str(layer))
        _run(
            "umoci", "config", "--image", oci,
            "--config.entrypoint", "/catatonit", "--config.entrypoint", "-P",
        )  # fmt: skip
        tmp = archive.with_suffix(f".{os.getpid()}.tmp")  # renamed into place: atomic
        _run("skopeo", "copy", "-q", f"oci:{oci}", f"oci-archive:{tmp}:{PAUSE_IMAGE}", timeout=60)
        tmp.rename(archive)
    return archive


def normalize_image(name: str) -> str:
    """The name containerd's CRI looks up for a pod's ``image:`` (docker.io/library/... rules)."""
    last = name.rsplit("/", 1)[-1]
    if "@" not in name and ":" not in last:
        name += ":latest"
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"docker.io/{name}"


def _copy_archive_naming(archive_path: str, ref: str, out: IO[bytes]) -> None:
    """Stream an OCI archive to ``out`` with its (single) image named ``ref`` in index.json."""
    with tarfile.open(archive_path) as src, tarfile.open(fileobj=out, mode="w|") as dst:
        for member in src:
            data = src.extractfile(member) if member.isfile() else None
            if member.name.removeprefix("./") == "index.json" and data is not None:
                index = json.load(data)
                if len(index.get("manifests", [])) != 1:
                    raise NodeError(f"{archive_path}: expected one image in its index.json")
                annotations = index["manifests"][0].setdefault("annotations", {})
                annotations["org.opencontainers.image.ref.name"] = ref
                raw = json.dumps(index).encode()
                member.size, data = len(raw), io.BytesIO(raw)
            dst.addfile(member, data)


# --------------------------------------------------------------------------------------------
# The node
# --------------------------------------------------------------------------------------------

_LIVE: set[LocalNode] = set()


@atexit.register
def _stop_all() -> None:
    for node in list(_LIVE):
        try:
            node.stop()
        except Exception as e:
            _log(f"stopping the node at exit failed: {e!r}")


class LocalNode:
    """A control plane plus one real node on this machine; see the module docstring.

    Attributes after start(): ``kubeconfig`` (admin), ``control_plane`` (the LocalControlPlane:
    ``audit_events()``, ``audit_log``, ``server``), ``host_ip`` (the bridge address: bind
    servers that pods must reach there), ``subnet`` (the pods' /24), ``tmpdir``, ``ca_file``,
    ``timings`` (seconds per phase).
    """

    def __init__(self, start_timeout: float | None = None, verbose: bool = True):
        env = os.environ.get("INFERENCEOPS_NODE_START_TIMEOUT")
        self.start_timeout = start_timeout or (float(env) if env else DEFAULT_START_TIMEOUT)
        self.verbose = verbose
        self.tmpdir: Path | None = None
        self.control_plane: localcp.LocalControlPlane | None = None
        self.kubeconfig = ""
        self.host_ip = ""
        self.subnet: ipaddress.IPv4Network | None = None
        self.ca_file = ""
        self.timings: dict[str, float] = {}
        self._state: dict[str, Any] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Path] = {}
        self._logfiles: list = []
        self.iptables = "iptables"
        self._stopped = True

    # -- paths ---------------------------------------------------------------------------------

    def _p(self, *parts: str) -> Path:
        assert self.tmpdir is not None, "not started"
        return self.tmpdir.joinpath(*parts)

    @property
    def containerd_socket(self) -> str:
        return str(self._p("containerd", "containerd.sock"))

    @property
    def kubelet_root(self) -> Path:
        return self._p("kubelet")

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> LocalNode:
        if self._stopped:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalNode:
        if not self._stopped:
            raise NodeError("already started")
        preflight()
        bins = find_node_binaries()  # may build for many minutes: not part of the start time
        cp_bins = localcp.find_binaries()  # helm too: the e2e tests install a chart
        t0 = time.monotonic()
        clean_stale()
        for d in Path(tempfile.gettempdir()).glob(TMP_PREFIX + "*"):
            pid = _owner_alive(d)
            if pid is not None:
                raise NodeError(
                    f"another LocalNode (pid {pid}, {d}) runs on this machine; one at a time"
                )
        self._stopped = False
        _LIVE.add(self)
        try:
            self._start(bins, cp_bins, t0)
        except BaseException as e:
            tail = self.logs_tail(20) if isinstance(e, NodeError) else ""
            with contextlib.suppress(Exception):
                self.stop()
            if tail:
                raise NodeError(f"{e}\n{tail}") from e
            raise
        self.timings["start"] = time.monotonic() - t0
        if self.verbose:
            _log(
                f"node {NODE_NAME} Ready in {self.timings['start']:.1f} s "
                f"({', '.join(f'{k} {v:.1f} s' for k, v in self.timings.items() if k != 'start')})"
                f"; API server {self.control_plane.server if self.control_plane else ''}"
            )
        return self

    def _phase(self, name: str, t: float) -> float:
        now = time.monotonic()
        self.timings[name] = now - t
        return now

    def _save_state(self) -> None:
        _state_file(self._p()).write_text(json.dumps(self._state, indent=1))

    def _start(self, bins: dict[str, str], cp_bins: localcp.Binaries, t0: float) -> None:
        deadline = t0 + self.start_timeout
        self.tmpdir = Path(tempfile.mkdtemp(prefix=TMP_PREFIX))
        self._p("owner.pid").write_text(str(os.getpid()))
        # Recorded before anything changes, so that a later run can undo a killed one.
        self._state = {
            "sysctls": _read_sysctls(),
            "created_host_dirs": [d for d in HOST_DIRS if not os.path.exists(d)],
            "nft_tables": _nft_tables(),
            "portmap_chains_before": _portmap_chains_exist(),
        }
        self._save_state()

        t = time.monotonic()
        self.subnet = _pick_subnet()
        self.host_ip = str(self.subnet.network_address + 1)
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{self.host_ip}/{self.subnet.prefixlen}", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # The system's iptables, else another variant the kernel takes (nft or legacy).
        if any(map(_has_our_chains, _iptables_commands())):
            raise NodeError(f"iptables chain {FWD_CHAIN} exists already: run localnode.py clean")
        for cmd in _iptables_commands():
            if _run(cmd, "-w", "5", "-N", FWD_CHAIN, check=False).returncode == 0:
                self.iptables = cmd
                break
        else:
            raise NodeError(f"no iptables variant works here ({_iptables_commands()})")
        ipt = [self.iptables, "-w", "5"]
        _run(*ipt, "-A", FWD_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
        _run(*ipt, "-A", FWD_CHAIN, "!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP")
        _run(*ipt, "-I", "FORWARD", "1", "-j", FWD_CHAIN)
        _run(*ipt, "-t", "nat", "-N", DNAT_CHAIN)
        _run(*ipt, "-t", "nat", "-I", "PREROUTING", "1", "-j", DNAT_CHAIN)
        _create_cgroup_root()
        t = self._phase("network", t)

        self.control_plane = localcp.LocalControlPlane(
            binaries=cp_bins,
            start_timeout=max(10.0, deadline - time.monotonic()),
            address=self.host_ip,
            service_account_admission=True,
            verbose=False,
        )
        self.control_plane.start()
        cp = self.control_plane
        self.kubeconfig = cp.kubeconfig
        self.ca_file = cp.cert_path("ca.crt")
        api_port = cp.server.rsplit(":", 1)[1]
        # In-cluster clients dial the `kubernetes` Service; without kube-proxy, this rule is it.
        _run(
            *ipt, "-t", "nat", "-A", DNAT_CHAIN, "-i", BRIDGE, "-d", f"{SERVICE_IP}/32",
            "-p", "tcp", "--dport", "443", "-j", "DNAT",
            "--to-destination", f"{self.host_ip}:{api_port}",
        )  # fmt: skip
        # The node's components get their own copy, so their command lines name our temp dir
        # (the stale-state cleaner finds them by it).
        kubeconfig = self._p("admin.kubeconfig")
        shutil.copyfile(cp.kubeconfig, kubeconfig)
        t = self._phase("control plane", t)

        pause = pause_archive()
        t = self._phase("pause image", t)
        self._start_containerd()
        self._ctr("images", "import", str(pause), timeout=60)
        t = self._phase("containerd", t)

        self._start_kubelet(bins["kubelet"], kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                bins["kube-controller-manager"],
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--root-ca-file={self.ca_file}",
                f"--service-account-private-key-file={cp.cert_path('sa-signer.key')}",
                f"--cluster-name={NODE_NAME}",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                bins["kube-scheduler"],
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
        )
        self._wait("node Ready", deadline, self._node_ready)
        # ServiceAccount admission rejects pods until kube-controller-manager made the account.
        self._wait(
            "ServiceAccount default/default",
            deadline,
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
        )
        self._phase("kubelet to Ready", t)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log_path = self._p(f"{name}.log")
        f = open(log_path, "wb")  # noqa: SIM115  (closed in stop())
        self._logfiles.append(f)
        self._logs[name] = log_path
        # Killed with us if this process dies (PDEATHSIG follows the forking thread: main only).
        main = threading.current_thread() is threading.main_thread()
        self._procs[name] = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=self._p(),
            start_new_session=True,
            preexec_fn=localcp._pdeathsig_fn() if main else None,
        )

    def _check_alive(self) -> None:
        for name, p in self._procs.items():
            if p.poll() is not None:
                raise NodeError(f"{name} exited early with code {p.returncode}")

    def _wait(self, what: str, deadline: float, probe: Callable[[], bool]) -> None:
        for _ in _deadline_loop(what, max(1.0, deadline - time.monotonic())):
            self._check_alive()
            with contextlib.suppress(Exception):
                if probe():
                    return

    def _start_containerd(self) -> None:
        d = self._p("containerd")
        for sub in ("root", "state", "tmp", "opt", "runc"):
            (d / sub).mkdir(parents=True)
        cni = self._p("cni")
        (cni / "net.d").mkdir(parents=True)
        (cni / "net.d" / "10-inferenceops-e2e.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": CNI_NETWORK,
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "isDefaultGateway": True,  # so pods route 10.0.0.1 via us
                            "ipMasq": False,  # pods must not reach beyond this machine
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": str(self.subnet), "gateway": self.host_ip}]],
                                "dataDir": str(cni / "ipam"),
                            },
                        },
                        # hostPorts; snat false: no MASQUERADE rule for hairpin traffic.
                        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
                    ],
                },
                indent=1,
            )
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""\
version = 2
root = "{d}/root"
state = "{d}/state"
temp = "{d}/tmp"
# Plugins that would look for host devices or write under /var or /opt.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # The VM lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc.
  restrict_oom_score_adj = true
  disable_apparmor = true
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
  # Network namespaces under the state dir, not /run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni}/net.d"
"""
        (d / "config.toml").write_text(config)
        self._spawn("containerd", ["containerd", "--config", str(d / "config.toml")])
        self._wait(
            "containerd's socket",
            time.monotonic() + 15,
            lambda: self._ctr("version", check=False, timeout=5).returncode == 0,
        )

    def _ctr(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return _run(
            "ctr", "--address", self.containerd_socket, "-n", "k8s.io", *args,
            check=check, timeout=timeout,
        )  # fmt: skip

    def _start_kubelet(self, kubelet: str, kubeconfig: Path) -> None:
        root = self.kubelet_root
        root.mkdir()
        resolv = self._p("resolv.conf")
        # Pods have no DNS here; a resolver on the pod's own loopback fails at once.
        resolv.write_text("# inferenceops e2e node: no DNS\nnameserver 127.0.0.1\n")
        (port,) = localcp._free_ports(1, self.host_ip)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.host_ip,
            "port": port,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "x509": {"clientCAFile": self.ca_file},  # the API server's kubelet client cert
                "webhook": {"enabled": False},
                "anonymous": {"enabled": False},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{CGROUP_ROOT}",  # teardown removes exactly this tree
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "podLogsDir": str(self._p("pod-logs")),
            "volumePluginDir": str(self._p("volume-plugins")),
            "resolvConf": str(resolv),
            "clusterDomain": "cluster.local",
            "makeIPTablesUtilChains": False,  # no KUBE-* chains: our teardown stays exact
            "protectKernelDefaults": False,  # it sets kernel.panic & co.; stop() restores them
            # Imported images are unused until a pod runs them: never garbage-collect them, and do
            # not evict pods or taint the node because the CI machine's disk is fairly full.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "50Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "shutdownGracePeriod": "0s",
            # The e2e suite rotates a pod's projected token by writing the file itself (waiting
            # for the kubelet takes an hour); a periodic pod sync would write the kubelet's own
            # cached token back over it within a minute. Pods still sync on every change.
            "syncFrequency": "10m",
            "serializeImagePulls": False,
        }
        (root / "config.yaml").write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            [
                kubelet,
                f"--config={root / 'config.yaml'}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={root}",
                f"--cert-dir={self._p('kubelet-pki')}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.host_ip}",
            ],
        )

    def _node_ready(self) -> bool:
        p = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False, timeout=10)
        if p.returncode != 0:
            return False
        conditions = json.loads(p.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def stop(self) -> None:
        """Stop everything and leave the machine as start() found it. Idempotent; safe after a
        partial start. Raises NodeError listing what could not be undone (after trying it all)."""
        if self._stopped:
            return
        t0 = time.monotonic()
        errors: list[str] = []
        for name in ("kube-controller-manager", "kube-scheduler"):  # nothing recreates pods now
            self._terminate(name)
        if self._alive("kubelet") and self._alive("containerd"):
            try:
                self._delete_pods()
            except Exception as e:  # the hard teardown below copes
                _log(f"the kubelet did not remove every pod ({e}); killing them")
        self._terminate("kubelet")
        self._terminate("containerd")  # its shims and containers die in _teardown_host
        if self.control_plane is not None:
            try:
                self.control_plane.stop()
            except Exception as e:
                errors.append(f"stopping the control plane: {e!r}")
        for f in self._logfiles:
            f.close()
        self._logfiles.clear()
        if self.tmpdir is not None:
            if os.environ.get("LOCALNODE_KEEP_TMP"):
                _log(f"keeping {self.tmpdir} (LOCALNODE_KEEP_TMP)")
            errors += _teardown_host(self.tmpdir, self._state)
        self._procs.clear()
        self._stopped = True
        _LIVE.discard(self)
        self.timings["stop"] = time.monotonic() - t0
        if self.verbose:
            _log(f"node stopped and host restored in {self.timings['stop']:.1f} s")
        if errors:
            raise NodeError("teardown incomplete: " + "; ".join(errors))

    def _alive(self, name: str) -> bool:
        p = self._procs.get(name)
        return p is not None and p.poll() is None

    def _terminate(self, name: str) -> None:
        p = self._procs.get(name)
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def _delete_pods(self, timeout: float = 30.0) -> None:
        """Let the kubelet stop every pod (CNI DEL, volume unmounts) while it still can."""
        if not self.kubectl("get", "pods", "-A", "-o", "name", check=False).stdout.strip():
            return
        self.kubectl("delete", "pods", "--all", "-A", "--grace-period=1", "--wait=false")
        for _ in _deadline_loop("the kubelet to remove every pod", timeout, every=0.5):
            if not self.kubectl("get", "pods", "-A", "-o", "name").stdout.strip():
                return

    # -- helpers for tests ----------------------------------------------------------------------

    def kubectl(self, *args: Any, **kw: Any) -> subprocess.CompletedProcess:
        """``LocalControlPlane.kubectl``: check=True, input=None, timeout=120."""
        if self.control_plane is None:
            raise NodeError("not started")
        return self.control_plane.kubectl(*args, **kw)

    def helm(self, *args: Any, **kw: Any) -> subprocess.CompletedProcess:
        if self.control_plane is None:
            raise NodeError("not started")
        return self.control_plane.helm(*args, **kw)

    def import_image(self, archive_path: str, name: str) -> str:
        """Import an OCI archive into containerd's k8s.io namespace as ``name`` (normalised as the
        kubelet will ask for it: ``app:1`` -> ``docker.io/library/app:1``); returns that name.
        Pods find it with imagePullPolicy IfNotPresent or Never."""
        ref = normalize_image(name)
        # The archive is streamed to `ctr import` with its index.json naming ``ref``: whatever
        # names the archive has (a bare tag, none) would become extra refs that containerd 1.6's
        # CRI image cache stores normalised and then fails to forget when they are removed.
        argv = ["ctr", "--address", self.containerd_socket, "-n", "k8s.io", "images", "import", "-"]
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log, stderr=log)
            assert proc.stdin is not None
            try:
                _copy_archive_naming(archive_path, ref, proc.stdin)
            except BrokenPipeError:
                pass  # ctr failed; its output says why
            finally:
                proc.stdin.close()
                proc.wait(timeout=600)
            log.seek(0)
            out = log.read().decode(errors="replace")
        if proc.returncode != 0 or ref not in out:
            raise NodeError(f"importing {archive_path} as {ref} failed: {out.strip()}")
        return ref

    def _pod(self, namespace: str, pod: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "pod", pod, "-n", namespace, "-o", "json").stdout)

    def container_pid(self, namespace: str, pod: str, container: str) -> int:
        """Host pid of a running container's main process."""
        status = self._pod(namespace, pod).get("status", {})
        statuses = [
            *status.get("initContainerStatuses", []),
            *status.get("containerStatuses", []),
            *status.get("ephemeralContainerStatuses", []),
        ]
        st = next((s for s in statuses if s["name"] == container), None)
        if st is None or "running" not in st.get("state", {}) or not st.get("containerID"):
            raise NodeError(f"container {container} of {namespace}/{pod} is not running: {st}")
        cid = st["containerID"].split("://", 1)[1]
        # The runc shim keeps the task's pid in its bundle.
        pidfile = self._p(
            "containerd", "state", "io.containerd.runtime.v2.task", "k8s.io", cid, "init.pid"
        )
        return int(pidfile.read_text())

    def pod_dir(self, namespace: str, pod: str) -> Path:
        """The kubelet's directory of a pod (volumes/, containers/, etc-hosts)."""
        return self.kubelet_root / "pods" / self._pod(namespace, pod)["metadata"]["uid"]

    def pod_token_file(self, namespace: str, pod: str) -> str:
        """The projected service-account token the kubelet wrote for a pod (its real file)."""
        volumes = self.pod_dir(namespace, pod) / "volumes" / "kubernetes.io~projected"
        (token,) = volumes.glob("kube-api-access-*/token")
        return str(token.resolve())

    def read_text(self, path: str) -> str:
        """A file of the node (here: of this machine; kindnode.KindNode reads its container's)."""
        return Path(path).read_text()

    def replace_file(self, path: str, text: str) -> None:
        """Replace a file atomically, keeping its owner and mode (the kubelet's token files are
        0600 and owned by the pod's runAsUser)."""
        target = Path(path).resolve()
        owner = os.stat(target)
        scratch = target.with_name(f".{target.name}.replacing")
        scratch.write_text(text)
        os.chown(scratch, owner.st_uid, owner.st_gid)
        os.chmod(scratch, owner.st_mode & 0o7777)
        os.replace(scratch, target)

    def audit_events(self, **match: Any) -> list[dict[str, Any]]:
        """``LocalControlPlane.audit_events``: the API server's audit log, filtered."""
        if self.control_plane is None:
            raise NodeError("not started")
        return self.control_plane.audit_events(**match)

    def run_in_container(
        self, pid: int, argv: list[str], timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` as root in the namespaces (mount, uts, ipc, net, pid) of host pid ``pid``:
        the container's filesystem, without its user, capabilities or seccomp restrictions."""
        cmd = ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)

    def run_in_netns(
        self, pid: int, argv: list[str], timeout: float = 30, **kw: Any
    ) -> subprocess.CompletedProcess:
        """Run a host program (e.g. the host's python3) in the network namespace of ``pid``."""
        cmd = ["nsenter", "-t", str(pid), "-n", "--", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)

    def logs_tail(self, n: int = 30) -> str:
        """The last ``n`` lines of each component's log (control plane too), for failures."""
        # Components that exited first: theirs is the log that explains a failure.
        names = sorted(self._logs, key=lambda name: self._alive(name))
        parts = [
            f"--- {name} ({self._logs[name]}):\n{localcp._tail(self._logs[name], n)}"
            for name in names
        ]
        if self.control_plane is not None and self.control_plane.tmpdir is not None:
            parts.append(self.control_plane.logs_tail(n))
        return "\n".join(parts)

    def restored_sysctls(self) -> dict[str, tuple[str, str]]:
        """{sysctl: (value before start(), value now)} for every sysctl the node may change;
        after stop() the two are equal."""
        now = _read_sysctls()
        return {k: (v, now.get(k, "")) for k, v in self._state.get("sysctls", {}).items()}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="localnode", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a node and run until SIGINT/SIGTERM")
    up.add_argument("--kubeconfig", required=True, help="where to write the admin kubeconfig")
    sub.add_parser("clean", help="undo what a killed run left behind")
    args = ap.parse_args(argv)
    if args.cmd == "clean":
        clean_stale()
        return 0

    class _Stop(Exception):
        pass

    def _on_signal(signum: int, frame: object) -> None:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        raise _Stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    node = LocalNode()
    try:
        node.start()
        assert node.control_plane is not None
        node.control_plane.write_kubeconfig(args.kubeconfig)
        print(f"server {node.control_plane.server}\nhost_ip {node.host_ip}\nready", flush=True)
        while True:
            time.sleep(1.0)
            node._check_alive()
    except _Stop:
        return 0
    except NodeError as e:
        print(f"[localnode] {e}", file=sys.stderr)
        return 1
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
