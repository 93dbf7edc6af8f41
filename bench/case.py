"""One case of the benchmark (one N, one interval, one repeat), step by step: a fresh control
plane, the emulator seeded, the resources created, then the operator's start-up, its steady
window, freshness after K real changes, and the floor over the same requests."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench import endpoints, floorplan, replicas
from bench.kube import TOKEN, Kube, start_control_plane
from bench.observe import (
    AuditTail,
    LeaseWatcher,
    Watcher,
    path_delta,
    requests_by_kind,
    startup_results,
)
from bench.processes import (
    OperatorProc,
    cpu_of,
    finish_profile,
    measure_empty_operator,
    run_floors,
    start_profile,
)
from bench.report import RESULTS, log, percentile
from bench.resources import change_of, manifest, pick_changes, provider_objects
from inferenceops.api import parse_duration
from inferenceops_emulator import EmulatorClient
from inferenceops_emulator.process import wait_until

T = TypeVar("T")


@dataclass
class Options:
    mix: dict[str, float]
    workspaces: int = 3
    teams: int = 2
    namespaces: int = 4
    steady_cycles: int = 3
    changes: int = 50
    create_concurrency: int = 32
    floor_pace: str = "burst"
    operator_args: list[str] = field(default_factory=list)
    profile: bool = False
    profile_min_n: int = 0
    #: Stop each case once every resource has a status (no steady window, changes or floor).
    startup_only: bool = False
    #: Endpoints use a few ClusterInferenceProviders (providerRef), not inline URLs/credentials.
    provider_objects: bool = False
    inventory: str | None = None  # with provider_objects: their spec.inventory interval
    replicas: int = 1  # operator processes with the same arguments, sharing via Leases
    workdir: Path = RESULTS


def run_case(
    emu: EmulatorClient,
    n: int,
    interval_text: str,
    repeat: int,
    opts: Options,
    empty: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The case's measurements, and the empty operator's (measured in the first case)."""
    case = Case(emu, n, interval_text, repeat, opts)
    try:
        case.start_control_plane()
        empty = case.prepare_cluster(empty)
        case.seed_and_create()
        case.start_operator()
        case.wait_for_statuses()
        if opts.startup_only:
            return case.result, empty
        case.measure_steady_state(empty)
        case.measure_freshness()
        case.stop_operator()
        case.measure_floor()
        return case.result, empty
    finally:
        case.close()


class Case:
    """The processes, clients and measurements one case's steps share; `result` is the case's
    row in the results file."""

    def __init__(
        self, emu: EmulatorClient, n: int, interval_text: str, repeat: int, opts: Options
    ) -> None:
        self.emu = emu
        self.n = n
        self.interval_text = interval_text
        self.interval = parse_duration(interval_text)
        self.opts = opts
        self.tag = f"n{n}-{interval_text}-r{repeat}" + (
            f"-x{opts.replicas}" if opts.replicas > 1 else ""
        )
        self.result: dict[str, Any] = {
            "n": n,
            "interval": interval_text,
            "interval_s": self.interval,
            "repeat": repeat,
            "replicas": opts.replicas,
        }
        self.layout = endpoints.make_layout(
            n, opts.mix, workspaces=opts.workspaces, teams=opts.teams, namespaces=opts.namespaces
        )
        self.result["by_kind"] = {
            k: sum(1 for e in self.layout if e.kind == k) for k in endpoints.KINDS
        }
        self.namespaces = sorted(
            {e.namespace for e in self.layout} | {f"bench-{i}" for i in range(opts.namespaces)}
        )
        self.cp: Any = None
        self.kube: Kube | None = None
        self.ops: list[OperatorProc] = []
        self.watcher: Watcher | None = None
        self.leases: LeaseWatcher | None = None
        self.audit: AuditTail | None = None
        #: The emulator's request summary before the operator starts.
        self.summary0: dict[str, Any] = {}
        #: Its summaries at the start and the end of the steady window, and the cycles between.
        self.steady: tuple[dict[str, Any], dict[str, Any], float] | None = None
        #: The control plane's and the emulator's processes, and their CPU seconds at start-up.
        self._others: dict[str, Any] = {}
        self._cpu0: dict[str, float] = {}

    # -- steps, in order -------------------------------------------------------------------

    def start_control_plane(self) -> None:
        t0 = time.monotonic()
        self.cp = start_control_plane()
        self.result["controlplane_start_s"] = round(time.monotonic() - t0, 2)
        self.kube = Kube(self.cp.kubeconfig)

    def prepare_cluster(self, empty: dict[str, Any] | None) -> dict[str, Any]:
        """The CRDs, the namespaces and their Secrets; the empty operator if not measured yet."""
        kube = _started(self.kube, "the control plane")
        kube.apply_crd()
        kube.namespaces_and_secrets(self.namespaces)
        if empty is None:
            log(f"{self.tag}: measuring the operator with 0 resources")
            empty = measure_empty_operator(
                self.cp.kubeconfig, self.opts.workdir, self.opts.operator_args
            )
            log(f"empty operator: {empty}")
        return empty

    def seed_and_create(self) -> None:
        """The endpoints in the emulator, then their resources in the API server."""
        emu, kube, opts = self.emu, _started(self.kube, "the control plane"), self.opts
        emu.reset()
        t0 = time.monotonic()
        for body in endpoints.bulk_bodies(self.layout):
            body = dict(body)
            emu.bulk(body.pop("provider"), body.pop("count"), **body)
        self.result["seed_s"] = round(time.monotonic() - t0, 2)

        objects = [
            manifest(ep, emu.base_url, self.interval_text, via_provider=opts.provider_objects)
            for ep in self.layout
        ]
        if opts.provider_objects:
            shared = provider_objects(emu.base_url, self.namespaces[0], opts.inventory)
            kube.create_all(shared, opts.create_concurrency)
            self.result["provider_objects"] = len(shared)
        self.result["create_s"] = round(kube.create_all(objects, opts.create_concurrency), 2)
        log(f"{self.tag}: created {self.n} resources in {self.result['create_s']} s")

        self.watcher = Watcher(kube, kube.list_rv())
        self.watcher.start()
        self.leases = LeaseWatcher(kube)
        self.leases.start()
        self.audit = AuditTail(self.cp.audit_log)
        self.audit.poll()
        self.summary0 = self.emu.request_summary()

    def start_operator(self) -> None:
        import psutil

        # Who spends the machine's two cores on start-up: a slow start can be the API server's.
        self._others = {name: psutil.Process(pid) for name, pid in self.cp.pids.items()}
        self._others["emulator"] = psutil.Process(self.emu.pid)
        self._cpu0 = {name: cpu_of(ps) for name, ps in self._others.items()}
        args = list(self.opts.operator_args)
        if self.opts.provider_objects:  # where the shared providers' Secret is
            args.append(f"--cluster-secret-namespace={self.namespaces[0]}")
        self.ops = replicas.start(
            self.cp.kubeconfig, self.opts.workdir, self.tag, args, self.opts.replicas
        )
        self.result["healthy_s"] = round(max(op.wait_healthy() for op in self.ops), 2)

    def wait_for_statuses(self) -> None:
        """Start-up: time to every resource having a status, and who spent the CPU on it."""
        ops, watcher = replicas.running(self.ops), _started(self.watcher, "the watch")
        op = ops[0]  # its start is the case's; the profile (if any) is of this one
        n, case = self.n, self.result
        limit = max(120.0, 6 * self.interval + n / 50)
        profile = self.opts.workdir / f"profile-startup-{self.tag}"
        profiler = start_profile(op.proc.pid, limit, profile) if self._profiling() else None
        timeline: list[tuple[float, int]] = []

        def all_have_status() -> bool:
            count = watcher.with_status()
            elapsed = round(time.time() - op.started, 1)
            # each second: bench/figures.py draws the start-up curve from these
            if not timeline or elapsed - timeline[-1][0] >= 1.0:
                timeline.append((elapsed, count))
            return count >= n

        try:
            wait_until(f"{n} statuses", all_have_status, limit, every=0.2)
        except AssertionError:
            log(f"{self.tag}: only {watcher.with_status()}/{n} have a status after {limit:.0f} s")
        if len(ops) > 1:
            case["startup_cpu_s_by_replica"] = [round(o.cpu(), 2) for o in ops]
        case["startup_cpu_s"] = {
            "operator": round(sum(o.cpu() for o in ops), 2),
            **{name: round(cpu_of(ps) - self._cpu0[name], 2) for name, ps in self._others.items()},
        }
        case["startup_timeline"] = timeline
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            case["startup_profile"] = finish_profile(profiler, profile)
        kind_of = {f"{ep.namespace}/{ep.name}": ep.kind for ep in self.layout}
        case.update(startup_results(watcher.first_status, op.started, n, kind_of))
        startup_summary = self.emu.request_summary()
        case["startup_requests"] = startup_summary["total"] - self.summary0["total"]
        log(
            f"{self.tag}: {case['with_status']}/{n} have a status, "
            f"last after {case['all_status_s']} s, "
            f"{case['startup_requests']} provider requests, CPU s {case['startup_cpu_s']}, "
            f"last by kind {case['all_status_s_by_kind']}"
        )

    def measure_steady_state(self, empty: dict[str, Any] | None) -> None:
        """Provider requests, status writes, CPU and RSS over `steady_cycles` intervals."""
        ops, emu, case = replicas.running(self.ops), self.emu, self.result
        time.sleep(5.0)  # trailing Events of the first writes
        window = self.opts.steady_cycles * self.interval
        s0, w0 = emu.request_summary(), time.time()
        m0, c0 = [op.metrics() for op in ops], [op.cpu() for op in ops]
        profile = self.opts.workdir / f"profile-{self.tag}"
        profiler = start_profile(ops[0].proc.pid, window, profile) if self._profiling() else None
        time.sleep(window)
        s1, w1 = emu.request_summary(), time.time()
        m1, c1 = [op.metrics() for op in ops], [op.cpu() for op in ops]
        if profiler is not None:
            case["profile"] = finish_profile(profiler, profile)
        cycles = (w1 - w0) / self.interval
        self.steady = (s0, s1, cycles)
        cpu = sum(c1) - sum(c0)

        def delta(name: str, **labels: str) -> float:
            return replicas.summed_delta(m0, m1, name, **labels)

        polls = delta("inferenceops_polls_total")
        polls_ok = delta("inferenceops_polls_total", outcome="ok")
        by_kind = requests_by_kind(s0, s1)
        list_n = sum(case["by_kind"][k] for k in endpoints.LIST_KINDS)
        list_req = sum(by_kind.get(k, 0) for k in endpoints.LIST_KINDS)
        steady_writes = _started(self.audit, "the audit log reader").between(w0, w1)
        writes_metric = delta("inferenceops_status_writes_total")
        rss_each = [op.rss() for op in ops]
        rss = max(rss_each)  # several replicas: the largest member's (each must stay small)
        lease_writes = _started(self.leases, "the Lease watch").between(w0, w1)
        lag_sum = delta("inferenceops_scheduler_lag_seconds_sum")
        lag_count = delta("inferenceops_scheduler_lag_seconds_count")
        n = self.n
        case.update(
            steady_window_s=round(w1 - w0, 1),
            steady_cycles=round(cycles, 2),
            requests_per_cycle=round((s1["total"] - s0["total"]) / cycles, 1),
            requests_per_cycle_by_kind={
                k: round(v / cycles, 1) for k, v in sorted(by_kind.items())
            },
            requests_per_n=round((s1["total"] - s0["total"]) / cycles / n, 4),
            list_requests_per_n=round(list_req / cycles / list_n, 4) if list_n else None,
            polls_per_cycle=round(polls / cycles, 1),
            polls_ok_fraction=round(polls_ok / polls, 4) if polls else None,
            steady_writes_per_cycle=round(len(steady_writes) / cycles, 2),
            steady_writes_metric_per_cycle=round(writes_metric / cycles, 2),
            cpu_s=round(cpu, 3),
            cpu_per_1k_polls=round(cpu / polls * 1000, 4) if polls else None,
            cpu_util=round(cpu / (w1 - w0), 4),
            rss_mb=round(rss / 2**20, 1),
            scheduler_lag_mean_s=round(lag_sum / lag_count, 3) if lag_count else None,
            lease_writes_per_s=round(len(lease_writes) / (w1 - w0), 3),
        )
        if len(ops) > 1:
            case["rss_mb_total"] = round(sum(rss_each) / 2**20, 1)
            case["by_replica"] = replicas.steady_by_replica(m0, m1, c0, c1, rss_each, cycles)
        elif empty:
            case["rss_per_resource_kb"] = round((rss / 2**20 - empty["rss_mb"]) * 1024 / n, 2)
        log(
            f"{self.tag}: steady {case['requests_per_cycle']} req/cycle, "
            f"{case['steady_writes_per_cycle']} writes/cycle, "
            f"{case['cpu_per_1k_polls']} CPU s/1k polls, "
            f"RSS {case['rss_mb']} MB, {case['lease_writes_per_s']} Lease writes/s"
        )

    def measure_freshness(self) -> None:
        """K real changes in the emulator: how long until the watch shows each, and how many
        status writes they cost."""
        emu, watcher, interval = self.emu, _started(self.watcher, "the watch"), self.interval
        chosen = pick_changes(self.layout, self.opts.changes)
        keys = {f"{ep.namespace}/{ep.name}": ep for ep in chosen}
        change_start = time.time()
        for ep in chosen:
            key_parts, body = change_of(ep)
            emu.patch(endpoints.PROVIDER_OF_KIND[ep.kind], *key_parts, **body)
        changed_at = {
            key: emu.changed_at(endpoints.PROVIDER_OF_KIND[ep.kind], ep.key)
            for key, ep in keys.items()
        }

        def seen() -> dict[str, tuple[float, str | None]]:
            return watcher.first_left_running(keys, change_start)

        with contextlib.suppress(AssertionError):
            wait_until(
                "the changes to show", lambda: len(seen()) >= len(keys), 2 * interval + 15, 0.2
            )
        got = seen()
        latencies = [t - changed_at[k] for k, (t, _) in got.items()]
        # One more transitional re-poll (interval/3) must not write again.
        time.sleep(interval / 3 + 3)
        fresh_end = time.time()
        audit = _started(self.audit, "the audit log reader")
        writes = audit.between(change_start - 0.5, fresh_end)
        changed_writes = [w for w in writes if w[1] in keys]
        self.result.update(
            changes=len(keys),
            changes_seen=len(got),
            fresh_phases=sorted({p or "-" for _, p in got.values()}),
            freshness_p50_s=round(percentile(latencies, 50) or 0, 2) if latencies else None,
            freshness_p99_s=round(percentile(latencies, 99) or 0, 2) if latencies else None,
            freshness_max_s=round(max(latencies), 2) if latencies else None,
            # each change's latency, for bench/figures.py's distribution
            freshness_s=sorted(round(x, 2) for x in latencies),
            writes_per_change=round(len(changed_writes) / len(keys), 3) if keys else None,
            writes_unchanged_during_changes=len(writes) - len(changed_writes),
        )
        log(
            f"{self.tag}: freshness p50 {self.result['freshness_p50_s']} s "
            f"p99 {self.result['freshness_p99_s']} s "
            f"({len(got)}/{len(keys)}), {self.result['writes_per_change']} writes/change"
        )

    def stop_operator(self) -> None:
        self.result.update(replicas.stop(replicas.running(self.ops)))
        self.ops = []

    def measure_floor(self) -> None:
        """bench/floor.py over the requests the operator made in its steady window."""
        s0, s1, cycles = _started(self.steady, "the steady window")
        base, case, interval = self.emu.base_url, self.result, self.interval
        plan = floorplan.plan_from_layout(self.layout, base, TOKEN)
        plan = floorplan.with_observed_requests(
            plan, self.layout, base, TOKEN, path_delta(s0, s1), cycles
        )
        plan_file = self.opts.workdir / f"plan-{self.tag}.json"
        plan_file.write_text(json.dumps(plan.to_json()))
        run_floors(case, plan_file, max(1, round(cycles)), self.opts.floor_pace, interval, self.tag)

    def close(self) -> None:
        """Stop whatever the steps started, whichever step failed."""
        if self.watcher is not None:
            self.watcher.stop()
            self.result["watch_errors"] = self.watcher.errors[:5]
        if self.leases is not None:
            self.leases.stop()
            if self.leases.errors:
                self.result["lease_watch_errors"] = self.leases.errors[:5]
        for op in self.ops:
            op.stop()
        if self.kube is not None:
            self.kube.close()
        if self.cp is not None:
            self.cp.stop()

    # -- what the steps need from the ones before ----------------------------------------

    def _profiling(self) -> bool:
        return self.opts.profile and self.n >= self.opts.profile_min_n


def _started(thing: T | None, what: str) -> T:
    """What an earlier step started (a step run out of order is a bug in run_case)."""
    if thing is None:
        raise RuntimeError(f"{what} is not started")
    return thing
