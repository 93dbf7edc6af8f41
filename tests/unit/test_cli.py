"""`inferenceops probe` and friends, run as a user would: a subprocess against a local server."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from inferenceops.handlers import Launch

from .probe_api import INSECURE, SECRET, friendli_manifest, probe


def ns_manifest(url: str) -> str:
    return f"""
apiVersion: inferenceops.io/v1alpha1
kind: InferenceEndpoint
metadata: {{name: demo}}
spec:
  nsModelServer: {{url: "{url}"}}
"""


def test_probe_prints_status(probe_server: str, tmp_path: Path) -> None:
    out = probe(ns_manifest(f"{probe_server}/ns/ok"), "-o", "json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "phase": "Provisioning",
        "providerStatus": "LOADING_MODEL",
        "progress": 40,
        "workers": {"ready": 0, "total": 1},
    }


def test_probe_failed_endpoint_is_still_exit_zero(probe_server: str, tmp_path: Path) -> None:
    out = probe(ns_manifest(f"{probe_server}/ns/failed"), tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "phase: Failed" in out.stdout and "errorCode: INVALID_MODEL" in out.stdout


def test_probe_uses_token_from_environment(probe_server: str, tmp_path: Path) -> None:
    out = probe(
        friendli_manifest(probe_server), "-o", "json", INSECURE, token=SECRET, tmp_path=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["phase"] == "Running"
    assert SECRET not in out.stdout + out.stderr


def test_probe_provider_error_is_one_line_no_secret(probe_server: str, tmp_path: Path) -> None:
    wrong = SECRET[::-1]
    out = probe(friendli_manifest(probe_server), INSECURE, token=wrong, tmp_path=tmp_path)
    assert out.returncode == 3
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "Unauthorized" in out.stderr
    assert wrong not in out.stderr and SECRET not in out.stderr


@pytest.mark.parametrize(
    ("manifest", "needle"),
    [
        ("kind: InferenceEndpoint\nspec: {}\n", "exactly one provider block"),
        (
            "kind: InferenceEndpoint\nspec: {pollInterval: 1s, nsModelServer: {url: 'http://x'}}",
            "minimum of 5s",
        ),
        ("kind: InferenceEndpoint\nspec: {nsModelServer: {url: 'ftp://x'}}", "url"),
        ("kind: ConfigMap\n", "exactly one InferenceEndpoint"),
        ("{{{{", "not YAML"),
    ],
)
def test_probe_usage_errors(manifest: str, needle: str, tmp_path: Path) -> None:
    out = probe(manifest, tmp_path=tmp_path)
    assert out.returncode == 2, out
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_probe_needs_token_for_credentialed_provider(probe_server: str, tmp_path: Path) -> None:
    out = probe(friendli_manifest(probe_server), INSECURE, tmp_path=tmp_path)
    assert out.returncode == 2 and "INFERENCEOPS_TOKEN" in out.stderr


def test_probe_unreachable(tmp_path: Path) -> None:
    out = probe(ns_manifest("http://127.0.0.1:9"), tmp_path=tmp_path)
    assert out.returncode == 3 and "Unreachable" in out.stderr


def test_probe_honours_the_request_deadline(probe_server: str, tmp_path: Path) -> None:
    # Without the deadline the body completes after 2 s, READY, and the probe exits 0.
    out = probe(
        ns_manifest(f"{probe_server}/ns/trickle"), "--request-deadline", "300ms", tmp_path=tmp_path
    )
    assert out.returncode == 3, out.stderr
    assert f"Timeout: no complete answer from {probe_server} within the 0.3 s request" in out.stderr


def test_probe_honours_deny_cidr(probe_server: str, tmp_path: Path) -> None:
    out = probe(
        ns_manifest(f"{probe_server}/ns/ok"), "--deny-cidr", "127.0.0.0/8", tmp_path=tmp_path
    )
    assert out.returncode == 3, out.stderr
    host = probe_server.removeprefix("http://").split(":")[0]
    assert f"DestinationDenied: refused to connect to {host}: the address is in 127.0.0.0/8" in (
        out.stderr
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--request-deadline", "soon"], "--request-deadline 'soon' is not a duration like 15s"),
        (["--deny-cidr", "10.0.0.0/33"], "--deny-cidr '10.0.0.0/33' is not a CIDR range"),
    ],
)
def test_bad_transport_flags_say_which(flags: list[str], message: str, tmp_path: Path) -> None:
    out = probe(ns_manifest("http://127.0.0.1:9"), *flags, tmp_path=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr


def test_run_reads_the_transport_flags() -> None:
    from inferenceops.accounts import AccountSettings
    from inferenceops.cli import _parser, _with_transport_flags
    from inferenceops.egress import parse_cidr

    args = _parser().parse_args(
        ["run", "--request-deadline", "5s", "--deny-cidr", "10.0.0.0/8", "--deny-cidr", "fc00::/7"]
    )
    settings = _with_transport_flags(args, AccountSettings())
    assert settings.request_deadline == 5.0
    assert settings.denied_networks == (parse_cidr("10.0.0.0/8"), parse_cidr("fc00::/7"))
    defaults = _with_transport_flags(_parser().parse_args(["run"]), AccountSettings())
    assert defaults.request_deadline == 15.0 and defaults.denied_networks == ()


def test_bad_arguments_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inferenceops", "probe"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_crd_command_prints_the_crd() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inferenceops", "crd"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "kind: CustomResourceDefinition" in out.stdout


def test_probes_and_per_request_lines_are_quiet_at_info() -> None:
    import logging

    from inferenceops.cli import quiet_noisy_loggers

    quiet_noisy_loggers()
    for name in ("kopf.activities.probe", "aiohttp.access", "httpx"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name


# --- run --cluster-secret-namespace --------------------------------------------------------


def _launch_of(monkeypatch: pytest.MonkeyPatch, *args: str) -> Launch:
    """What `inferenceops run ARGS` hands to kopf (kopf itself not started)."""
    import kopf

    from inferenceops import cli

    seen: dict[str, Launch] = {}

    async def operator(**kwargs: Any) -> None:
        seen["launch"] = kwargs["memo"].launch

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    assert cli.main(["run", "--metrics-port=0", "--health-port=0", *args]) == 0
    return seen["launch"]


def test_run_exits_non_zero_with_the_reason_when_a_part_stops_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import kopf

    from inferenceops import cli

    async def operator(**kwargs: Any) -> None:
        # What app.Operator does when a root task ends: kopf then stops on its stop flag.
        kwargs["memo"].launch.stop("inferenceops-informer stopped unexpectedly (boom)")
        assert kwargs["stop_flag"].is_set()

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    assert cli.main(["run", "--metrics-port=0", "--health-port=0"]) == cli.EXIT_STOPPED != 0
    assert "inferenceops-informer stopped unexpectedly (boom)" in capsys.readouterr().err


def test_run_passes_the_cluster_secret_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    launch = _launch_of(
        monkeypatch, "--cluster-secret-namespace=platform", "--cluster-secret-namespace=vault"
    )
    assert launch.settings.cluster_secret_namespaces == {"platform", "vault"}


def test_the_cluster_secret_namespace_defaults_to_the_operators_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from inferenceops.kube import client

    kubeconfig = tmp_path / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(client, "SERVICE_ACCOUNT_NAMESPACE", str(tmp_path / "none"))
    # No pod, no kubeconfig: what kubectl would use.
    assert client.own_namespace(str(tmp_path / "none")) == "default"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ops"}}
                ],
                "current-context": "x",
            }
        )
    )
    assert client.own_namespace(str(tmp_path / "none")) == "ops"  # the context's
    pod = tmp_path / "namespace"
    pod.write_text("inferenceops\n")
    assert client.own_namespace(str(pod)) == "inferenceops"  # the pod's, first
    monkeypatch.setattr(client.own_namespace, "__defaults__", (str(pod),))
    launch = _launch_of(monkeypatch)
    assert launch.settings.cluster_secret_namespaces == {"inferenceops"}


def test_run_help_says_where_the_default_comes_from() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "inferenceops", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(out.split())
    assert "--cluster-secret-namespace NAMESPACE" in flat
    assert "the service-account namespace file" in flat and "else default" in flat


# --- run: membership (issue 23) ----------------------------------------------------------


def test_run_membership_flags_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "inferenceops-7d9c-x2")
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    member = _launch_of(monkeypatch).settings.membership
    assert member is not None
    assert (member.group, member.member_id, member.lease_namespace) == (
        "inferenceops",
        "inferenceops-7d9c-x2",
        "ops",
    )
    assert member.lease_duration == 15
    flags = ("--group=g", "--member-id=m", "--lease-namespace=ns", "--lease-duration=9")
    member = _launch_of(monkeypatch, *flags).settings.membership
    assert member is not None
    assert (member.group, member.member_id, member.lease_namespace) == ("g", "m", "ns")
    assert member.lease_duration == 9
    monkeypatch.delenv("POD_NAME")
    member = _launch_of(monkeypatch).settings.membership
    assert member is not None and member.member_id.endswith(f"-{os.getpid()}")


def test_run_makes_the_pod_its_lease_owner_only_in_the_pods_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The garbage collector deletes a Lease whose owner Pod is gone (a `helm uninstall` removes
    the Lease Role before the pods stop); an owner in another namespace would count as gone."""
    monkeypatch.setenv("POD_NAME", "inferenceops-7d9c-x2")
    monkeypatch.setenv("POD_NAMESPACE", "ops")
    member = _launch_of(monkeypatch).settings.membership
    assert member is not None and member.owner is None, "no POD_UID: no owner"
    monkeypatch.setenv("POD_UID", "0f6c3d52-1b1e-4a59-9d7e-6b1b2f0b7a11")
    member = _launch_of(monkeypatch).settings.membership
    assert member is not None
    assert member.owner == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "inferenceops-7d9c-x2",
        "uid": "0f6c3d52-1b1e-4a59-9d7e-6b1b2f0b7a11",
    }
    member = _launch_of(monkeypatch, "--lease-namespace=elsewhere").settings.membership
    assert member is not None and member.owner is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lease-duration=2"], "--lease-duration must be at least 3"),
        (["--shard-count=3"], "unrecognized arguments: --shard-count=3"),
    ],
)
def test_run_membership_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from inferenceops import cli

    with contextlib.suppress(SystemExit):
        code = cli.main(["run", "--metrics-port=0", "--health-port=0", *flags])
        assert code == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
