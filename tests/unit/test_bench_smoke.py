"""Fast checks of the scale benchmark's pieces (bench/): layout, manifests, the floor's request
plan against an in-process emulator, the table/JSON, the audit-log reader. No control plane."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import endpoints, floor, floorplan, observe, processes, report, resources  # noqa: E402

from inferenceops.api import parse_duration, parse_spec  # noqa: E402
from inferenceops.provider_objects import ProviderObjects  # noqa: E402
from inferenceops_emulator import Emulator  # noqa: E402

TOKEN = "smoke-token"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_split_is_exact_and_proportional() -> None:
    counts = endpoints.split(10_000, endpoints.parse_mix(endpoints.DEFAULT_MIX))
    assert sum(counts.values()) == 10_000
    assert counts == {
        "dataarts": 3000,
        "friendli": 2500,
        "runpod-v1": 2000,
        "runpod-v2": 500,
        "takeoff": 1000,
        "ns": 1000,
    }
    assert sum(endpoints.split(7, {"a": 1, "b": 1, "c": 1}).values()) == 7
    with pytest.raises(ValueError):
        endpoints.parse_mix("gcp=10")


def test_layout_and_manifests_are_valid() -> None:
    layout = endpoints.make_layout(
        37, endpoints.parse_mix(endpoints.DEFAULT_MIX), workspaces=3, teams=2
    )
    assert len(layout) == 37
    assert len({(e.namespace, e.name) for e in layout}) == 37
    for ep in layout:
        assert DNS1123.match(ep.name) and len(ep.name) <= 63, ep.name
        m = resources.manifest(ep, "http://127.0.0.1:1", "30s")
        parsed = parse_spec(m["spec"])  # the operator's own validation of the spec
        assert parsed.poll_interval == 30.0
        if ep.kind == "dataarts":
            assert 32 <= len(ep.key) <= 36
    # Each list account lives in exactly one namespace (one Secret, one account key).
    for kind in ("dataarts", "friendli", "runpod-v1"):
        by_account: dict[str, set[str]] = {}
        for ep in layout:
            if ep.kind == kind:
                by_account.setdefault(ep.account, set()).add(ep.namespace)
        assert by_account and all(len(v) == 1 for v in by_account.values())
    chosen = resources.pick_changes(layout, 10)
    assert len(chosen) == 10 and len({e.name for e in chosen}) == 10
    assert {e.kind for e in chosen} == set(endpoints.KINDS)


async def test_floor_plan_matches_what_the_emulator_sees() -> None:
    # 250 DataArts in 2 workspaces -> 2 pages each; 2 Friendli teams of 60 -> 1 page each.
    mix = {"dataarts": 250, "friendli": 120, "runpod-v1": 40, "runpod-v2": 7, "takeoff": 5, "ns": 3}
    layout = endpoints.make_layout(425, mix, workspaces=2, teams=2)
    async with Emulator(token=TOKEN) as emu:
        for body in endpoints.bulk_bodies(layout):
            body = dict(body)
            emu.bulk(
                body.pop("provider"),
                body.pop("count"),
                prefix=body.pop("prefix"),
                group=[body.pop("workspace")] if "workspace" in body else [],
                **body.pop("fields"),
            )
        plan = floorplan.plan_from_layout(layout, emu.base_url, TOKEN)
        # lists: 2 DataArts workspaces + 2 Friendli teams + RunPod v1 + RunPod v2
        assert sorted(c.kind for c in plan.lists) == sorted(
            ["dataarts", "dataarts", "friendli", "friendli", "runpod-v1", "runpod-v2"]
        )
        expected = floorplan.expected_requests_per_cycle(plan, {})
        assert expected == 2 * 2 + 2 * 1 + 1 + (1 + 7) + 5 + 3
        result = await floor.run_floor(plan, 2)
        assert result["errors"] == 0
        assert [c["requests"] for c in result["per_cycle"]] == [expected, expected]
        assert result["observed_per_cycle"] == 425  # every endpoint seen, every cycle
        assert result["cpu_per_1k_polls"] is not None and result["cpu_per_1k_polls"] > 0
        summary = emu.request_summary()
        assert summary["total"] == 2 * expected
        paths = summary["paths"]
        assert paths["dataArtsFabric"]["/dataarts/v1/workspaces/bench-ws-0/endpoints"] == 2 * 2
        assert paths["friendli"]["/friendli/dedicated/beta/endpoint"] == 2 * 2
        assert paths["runpod"]["/runpod/v1/endpoints"] == 2
        assert paths["takeoff"]["/takeoff/tk-000004/status"] == 2

        # The operator's extra per-endpoint calls (e.g. Friendli details) join the plan.
        details = "/friendli/dedicated/beta/endpoint/fr-t1-000003"
        observed = {"friendli": {details: 3, "/friendli/dedicated/beta/endpoint": 6}}
        extra = floorplan.with_observed_requests(plan, layout, emu.base_url, TOKEN, observed, 3)
        assert extra.lists == plan.lists
        assert len(extra.gets) == 1
        assert extra.gets[0].per_cycle == pytest.approx(1.0)
        assert extra.gets[0].headers["X-Friendli-Team"] == "team-1"
        assert extra.gets[0].key is None  # details do not count as an observation
        emu.reset_requests()
        again = await floor.run_floor(extra, 1)
        assert (
            again["errors"] == 0 and again["requests"] == 2 * 2 + 2 + 1 + 1 + 1
        )  # list pages + 1 details
        assert emu.requests("friendli", path=details) == 1

        # Paced: the same requests, spread over 0.9 x the interval instead of all at once.
        emu.reset_requests()
        paced = await floor.run_floor(plan, 1, interval=1.0)
        assert paced["errors"] == 0 and paced["requests"] == expected
        assert paced["observed_per_cycle"] == 425
        assert paced["wall_s"] >= 0.8  # the burst above took a fraction of that
    # Plans survive JSON (run.py hands them to floor.py as a file).
    assert floorplan.Plan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


def test_fractional_per_endpoint_calls_spread_over_cycles() -> None:
    plan = floorplan.Plan(gets=[floorplan.GetCall("http://x/a", {}, None, per_cycle=0.5)])
    per_cycle = [len(floor._cycle_gets(plan, c)) for c in range(4)]
    assert sum(per_cycle) == 2 and set(per_cycle) <= {0, 1}
    plan = floorplan.Plan(gets=[floorplan.GetCall("http://x/a", {}, None, per_cycle=2.4)])
    assert sum(len(floor._cycle_gets(plan, c)) for c in range(5)) == 12


def test_table_json_and_verdicts() -> None:
    base = {"n": 10000, "interval": "30s", "interval_s": 30.0}
    cases = [
        {
            **base,
            "repeat": 0,
            "cpu_per_1k_polls": 1.0,
            "cpu_ratio": 2.0,
            "rss_mb": 200.0,
            "steady_writes_per_cycle": 0.0,
            "writes_per_change": 1.0,
            "list_requests_per_n": 0.01,
            "freshness_p99_s": 31.0,
            "all_status_s": 50.0,
            "floor_cpu_per_1k_polls": 0.5,
        },
        {
            **base,
            "repeat": 1,
            "cpu_per_1k_polls": 3.0,
            "cpu_ratio": 1.0,
            "rss_mb": 300.0,
            "steady_writes_per_cycle": 0.0,
            "writes_per_change": 1.0,
            "list_requests_per_n": 0.01,
            "freshness_p99_s": 33.0,
            "all_status_s": None,
            "floor_cpu_per_1k_polls": 0.5,
        },
        {
            **base,
            "repeat": 2,
            "cpu_per_1k_polls": 2.0,
            "cpu_ratio": 1.2,
            "rss_mb": 260.0,
            "steady_writes_per_cycle": 1.0,
            "writes_per_change": 1.0,
            "list_requests_per_n": 0.01,
            "freshness_p99_s": 32.5,
            "all_status_s": 70.0,
            "floor_cpu_per_1k_polls": 0.5,
        },
        {"n": 100, "interval": "30s", "repeat": 0, "cpu_per_1k_polls": 9.0},
    ]
    rows = report.summarize(cases)
    assert [(r["n"], r["repeats"]) for r in rows] == [(100, 1), (10000, 3)]
    big = rows[1]
    assert big["cpu_per_1k_polls"] == 2.0  # the median, not the mean
    assert big["cpu_ratio"] == 1.2
    assert big["all_status_s"] == 60.0  # median of the measured ones
    assert big["writes_per_change"] == 1.0
    text = report.format_table(rows)
    lines = text.splitlines()
    assert len(lines) == 3 and "CPU s/1k polls" in lines[0] and "op/floor" in lines[0]
    assert lines[2].split()[:3] == ["10000", "30s", "3"]
    assert "2.000" in lines[2] and "1.20" in lines[2]
    assert "-" in lines[1].split()  # unmeasured cells are shown, not dropped
    md = report.format_table(rows, markdown=True)
    assert md.splitlines()[0].startswith("| N |") and md.count("\n") == 3
    v = report.verdicts(big)
    assert v["CPU <= 1.5x floor"][0] is True
    assert v["RSS <= 250 MB"][0] is False  # 260 MB
    assert v["freshness p99 <= interval+2s"][0] is False  # 32.5 > 32
    assert v["all status <= 2x interval"][0] is True
    assert v["zero steady writes"][0] is True
    json.dumps({"rows": rows, "cases": cases})  # the results file is plain JSON
    assert report.percentile([5, 1, 4, 2, 3], 50) == 3
    assert report.percentile(list(range(1, 101)), 99) == 99
    assert report.percentile([], 99) is None
    # The bench reads --intervals with the API's own parser (one source for the rule).
    assert report.parse_duration is parse_duration and parse_duration("1m") == 60


def test_audit_tail_counts_only_status_writes(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"

    def ev(
        verb: str, sub: str | None, name: str, ts: str, resource: str = "inferenceendpoints"
    ) -> str:
        ref = {"resource": resource, "namespace": "bench-0", "name": name}
        if sub:
            ref["subresource"] = sub
        return json.dumps(
            {
                "verb": verb,
                "objectRef": ref,
                "stageTimestamp": ts,
                "responseStatus": {"code": 200},
                "stage": "ResponseComplete",
            }
        )

    log.write_text(
        "\n".join(
            [
                ev("patch", "status", "a", "2026-01-01T00:00:01.000000Z"),
                ev("create", None, "a", "2026-01-01T00:00:00.500000Z"),
                ev("patch", None, "a", "2026-01-01T00:00:02.000000Z"),
                ev("update", "status", "b", "2026-01-01T00:00:03.000000Z"),
                ev("patch", "status", "c", "2026-01-01T00:00:04.000000Z", resource="pods"),
            ]
        )
        + "\n"
        + ev("patch", "status", "partial", "2026-01-01T00:00:05Z")[:40]  # half-written line
    )
    tail = observe.AuditTail(str(log))
    writes = tail.poll()
    assert [w[1] for w in writes] == ["bench-0/a", "bench-0/b"]
    t1 = writes[0][0]
    assert math.isclose(writes[1][0] - t1, 2.0)
    assert [w[1] for w in tail.between(t1 + 0.5, t1 + 10)] == ["bench-0/b"]


def test_top_frames(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text("main (a.py:1);poll (s.py:2);json (j.py:3) 30\nmain (a.py:1);idle (x.py:9) 70\n")
    top = processes.top_frames(raw)
    assert top["samples"] == 100
    assert top["self"][0] == ("idle (x.py:9)", 0.7)
    assert dict(top["inclusive"])["main (a.py:1)"] == 1.0


def test_floor_has_a_client_per_operator_account() -> None:
    # The floor's connection layout must be the operator's (a pool per provider account), or the
    # ratio measures pool layouts instead of the operator's overhead.
    layout = endpoints.make_layout(
        60, endpoints.parse_mix(endpoints.DEFAULT_MIX), workspaces=3, teams=2
    )
    base = "http://127.0.0.1:1"
    operator_accounts = set()
    for ep in layout:
        parsed = parse_spec(resources.manifest(ep, base, "30s")["spec"])
        operator_accounts.add(parsed.provider.account_key(parsed.config))
    plan = floorplan.plan_from_layout(layout, base, "token")
    calls = [(c.url, c.headers) for c in plan.lists] + [(g.url, g.headers) for g in plan.gets]
    floor_accounts = {floorplan.account_of(url, headers) for url, headers in calls}
    assert len(floor_accounts) == len(operator_accounts)


def test_provider_object_case_polls_the_same_accounts_as_inline_blocks() -> None:
    """--provider-objects: a handful of ClusterInferenceProviders, and every endpoint resolves
    to the very spec it has inline, so the two cases measure the same polls."""
    layout = endpoints.make_layout(
        60, endpoints.parse_mix(endpoints.DEFAULT_MIX), workspaces=3, teams=2
    )
    base = "http://127.0.0.1:1"
    store = ProviderObjects()
    shared = resources.provider_objects(base, "bench-0")
    for obj in shared:
        store.observe_cluster(None, obj)
    assert len(shared) == len(endpoints.KINDS)
    for ep in layout:
        via = resources.manifest(ep, base, "30s", via_provider=True)["spec"]
        assert "credentialsSecretRef" not in json.dumps(via)
        resolved = store.resolve(ep.namespace, via)
        assert resolved.account.secret_namespace == "bench-0"
        inline = parse_spec(resources.manifest(ep, base, "30s")["spec"])
        assert parse_spec(resolved.spec).config == inline.config, ep.name


def test_startup_and_freshness_from_the_watch() -> None:
    """What a case reads from its watch: start-up per kind, and the first phase a changed
    endpoint showed after leaving Running."""
    firsts = {"ns/a": 101.0, "ns/b": 103.5, "ns/c": 102.0}
    kinds = {"ns/a": "friendli", "ns/b": "takeoff", "ns/c": "friendli"}
    got = observe.startup_results(firsts, 100.0, 3, kinds)
    assert got["with_status"] == 3 and got["all_status_s"] == 3.5
    assert got["all_status_s_by_kind"] == {"friendli": 2.0, "takeoff": 3.5}
    assert observe.startup_results(firsts, 100.0, 4, kinds)["all_status_s"] is None

    watcher = observe.Watcher(None, "1")  # type: ignore[arg-type]  # never started
    watcher.changes += [
        (5.0, "ns/a", None, "Running"),
        (9.0, "ns/a", "Running", "Provisioning"),
        (10.0, "ns/a", "Provisioning", "Idle"),
        (11.0, "ns/b", "Running", "Idle"),
        (3.0, "ns/c", "Running", "Idle"),  # before the change
    ]
    assert watcher.first_left_running({"ns/a", "ns/c"}, 4.0) == {"ns/a": (9.0, "Provisioning")}


def test_bench_modules_are_small_and_say_what_they_are_for() -> None:
    """No bench module over 400 lines (run.py was 1,256, floor.py 579), each opening with a
    docstring that says what it is for."""
    for path in sorted((ROOT / "bench").glob("*.py")):
        lines = path.read_text().splitlines()
        assert len(lines) <= 400, f"{path.name}: {len(lines)} lines"
        if path.name != "__init__.py":
            assert lines[0].startswith('"""') and len(lines[0]) > 20, path.name


def test_inventory_case_asks_every_provider_object_for_its_inventory() -> None:
    """--inventory INTERVAL (with --provider-objects): each shared provider object opts in, so a
    bench run measures the 10,000 targets with inventory on for every account (issue 25)."""
    shared = resources.provider_objects("http://127.0.0.1:1", "bench-0", "10m")
    assert [o["spec"]["inventory"] for o in shared] == [{"interval": "10m"}] * len(shared)
    assert all("inventory" not in o["spec"] for o in resources.provider_objects("x", "b"))


def test_replica_rows_are_compared_with_one_replica() -> None:
    """--replicas 1,3: one row per replica count; the table gains the replica columns only then,
    and each several-replica row is held to issue 23's ratios against the one-replica row (or a
    baseline results file's)."""
    base = {"n": 10000, "interval": "30s", "interval_s": 30.0, "repeat": 0}
    one = {**base, "replicas": 1, "rss_mb": 200.0, "cpu_per_1k_polls": 0.4}
    three = {
        **base,
        "replicas": 3,
        "rss_mb": 110.0,  # the largest member
        "rss_mb_total": 300.0,
        "cpu_per_1k_polls": 0.5,  # the members' total CPU over their total polls
        "lease_writes_per_s": 0.6,
        "by_replica": [
            {
                "polls_per_cycle": 3300.0,
                "cpu_per_1k_polls": 0.5,
                "rss_mb": 110.0,
                "endpoints_owned": 3300.0,
            }
        ],
    }
    assert [report.format_table(report.summarize([one])).splitlines()[0].count("replicas")] == [0]
    rows = report.summarize([one, three])
    assert [(r["n"], r["replicas"]) for r in rows] == [(10000, 1), (10000, 3)]
    header = report.format_table(rows).splitlines()[0]
    assert "replicas" in header and "Lease writes/s" in header
    compared = report.replica_comparisons(rows)
    assert set(compared) == {"10000@30sx3"}
    c = compared["10000@30sx3"]
    assert c["member_rss_ratio"] == 0.55 and c["member_rss_ok"] is True
    assert c["total_cpu_per_poll_ratio"] == 1.25 and c["total_cpu_ok"] is False
    # Without a one-replica row in the run: from a baseline (a results file made before
    # replicas existed has rows without `replicas`), else said.
    alone = report.summarize([three])
    assert "error" in report.replica_comparisons(alone)["10000@30sx3"]
    old_row = {k: v for k, v in report.summarize([one])[0].items() if k != "replicas"}
    assert report.replica_comparisons(alone, [old_row])["10000@30sx3"]["member_rss_ok"] is True
    doc = report.results_document({}, None, [one, three], [])
    assert set(doc["verdicts"]) == {"10000@30s", "10000@30sx3"}
    json.dumps(doc)


def test_lease_watcher_counts_every_lease_write() -> None:
    import threading

    # No API server: __init__ would list the Leases; feed the events straight in.
    watcher = object.__new__(observe.LeaseWatcher)
    watcher.lock = threading.Lock()
    watcher.writes = []
    watcher.errors = []
    watcher.rv = "1"
    lease = {"metadata": {"namespace": "default", "name": "inferenceops-a", "resourceVersion": "2"}}
    for kind in ("ADDED", "MODIFIED", "MODIFIED", "BOOKMARK", "DELETED"):
        watcher._event({"type": kind, "object": lease})
    assert [w[1] for w in watcher.writes] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert watcher.rv == "2"
    assert len(watcher.between(0, 2**40)) == 4
