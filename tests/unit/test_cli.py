"""`inferenceops probe` and friends, run as a user would: a subprocess against a local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

SECRET = "flp_cli_test_secret_0123456789"
#: The local test server is plain http.
INSECURE = "--allow-insecure-http"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/ns/trickle/status"):
            self._trickle()
            return
        if self.path.startswith("/ns/failed/status"):
            body = {
                "data": {
                    "stage": "FAILED",
                    "progress": 100,
                    "errors": [
                        {"errorType": "INVALID_MODEL", "cause": "Unexpected error during loadModel"}
                    ],
                }
            }
        elif self.path.startswith("/ns/ok/status"):
            body = {"data": {"stage": "LOADING_MODEL", "progress": 40}}
        elif self.path.startswith("/friendli/dedicated/beta/endpoint/ep1"):
            if self.headers.get("Authorization") != f"Bearer {SECRET}":
                self._send(401, {"detail": f"invalid token {self.headers.get('Authorization')}"})
                return
            body = {"status": "RUNNING", "createdAt": "2026-01-01T00:00:00Z"}
        else:
            self._send(404, {"detail": "Not Found"})
            return
        self._send(200, body)

    def _trickle(self) -> None:
        """A byte every 50 ms for at most 2 s: each restarts a read timeout."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        try:
            for _ in range(40):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b'{"data": {"stage": "READY"}}')
        except OSError:
            pass  # the client gave up, as it should

    def _send(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def probe(
    manifest: str, *args: str, token: str | None = None, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "ie.yaml"
    path.write_text(manifest)
    env = {k: v for k, v in os.environ.items() if k != "INFERENCEOPS_TOKEN"}
    if token is not None:
        env["INFERENCEOPS_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "inferenceops", "probe", "-f", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def ns_manifest(url: str) -> str:
    return f"""
apiVersion: inferenceops.io/v1alpha1
kind: InferenceEndpoint
metadata: {{name: demo}}
spec:
  nsModelServer: {{url: "{url}"}}
"""


def test_probe_prints_status(server: str, tmp_path: Path) -> None:
    out = probe(ns_manifest(f"{server}/ns/ok"), "-o", "json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "phase": "Provisioning",
        "providerStatus": "LOADING_MODEL",
        "progress": 40,
        "workers": {"ready": 0, "total": 1},
    }


def test_probe_failed_endpoint_is_still_exit_zero(server: str, tmp_path: Path) -> None:
    out = probe(ns_manifest(f"{server}/ns/failed"), tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "phase: Failed" in out.stdout and "errorCode: INVALID_MODEL" in out.stdout


def friendli_manifest(url: str) -> str:
    return f"""
apiVersion: inferenceops.io/v1alpha1
kind: InferenceEndpoint
metadata: {{name: f}}
spec:
  friendli:
    endpointId: ep1
    url: "{url}/friendli"
    credentialsSecretRef: {{name: creds, key: token}}
"""


def test_probe_uses_token_from_environment(server: str, tmp_path: Path) -> None:
    out = probe(friendli_manifest(server), "-o", "json", INSECURE, token=SECRET, tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["phase"] == "Running"
    assert SECRET not in out.stdout + out.stderr


def test_probe_provider_error_is_one_line_no_secret(server: str, tmp_path: Path) -> None:
    wrong = SECRET[::-1]
    out = probe(friendli_manifest(server), INSECURE, token=wrong, tmp_path=tmp_path)
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


def test_probe_needs_token_for_credentialed_provider(server: str, tmp_path: Path) -> None:
    out = probe(friendli_manifest(server), INSECURE, tmp_path=tmp_path)
    assert out.returncode == 2 and "INFERENCEOPS_TOKEN" in out.stderr


def test_probe_unreachable(tmp_path: Path) -> None:
    out = probe(ns_manifest("http://127.0.0.1:9"), tmp_path=tmp_path)
    assert out.returncode == 3 and "Unreachable" in out.stderr


def test_probe_honours_the_request_deadline(server: str, tmp_path: Path) -> None:
    # Without the deadline the body completes after 2 s, READY, and the probe exits 0.
    out = probe(
        ns_manifest(f"{server}/ns/trickle"), "--request-deadline", "300ms", tmp_path=tmp_path
    )
    assert out.returncode == 3, out.stderr
    assert f"Timeout: no complete answer from {server} within the 0.3 s request" in out.stderr


def test_probe_honours_deny_cidr(server: str, tmp_path: Path) -> None:
    out = probe(ns_manifest(f"{server}/ns/ok"), "--deny-cidr", "127.0.0.0/8", tmp_path=tmp_path)
    assert out.returncode == 3, out.stderr
    host = server.removeprefix("http://").split(":")[0]
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


def _runtime_of(monkeypatch: pytest.MonkeyPatch, *args: str) -> object:
    """The Runtime `inferenceops run ARGS` hands to kopf (kopf itself not started)."""
    import kopf

    from inferenceops import cli

    seen: dict[str, object] = {}

    async def operator(**kwargs: object) -> None:
        seen["runtime"] = kwargs["memo"].runtime  # type: ignore[attr-defined]

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    assert cli.main(["run", "--metrics-port=0", "--health-port=0", *args]) == 0
    return seen["runtime"]


def test_run_passes_the_cluster_secret_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = _runtime_of(
        monkeypatch, "--cluster-secret-namespace=platform", "--cluster-secret-namespace=vault"
    )
    assert runtime.providers.cluster_secret_namespaces == {"platform", "vault"}  # type: ignore[attr-defined]


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
    runtime = _runtime_of(monkeypatch)
    assert runtime.providers.cluster_secret_namespaces == {"inferenceops"}  # type: ignore[attr-defined]


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
