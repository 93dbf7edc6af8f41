"""`inferenceops probe` as a user runs it (a subprocess) against a local server playing the
providers' APIs: for tests/unit/test_cli.py and test_insecure_url.py."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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


@contextlib.contextmanager
def probe_api() -> Iterator[str]:
    """The providers' APIs above on a free 127.0.0.1 port, served by a thread; its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
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
