"""Credentials only over TLS, with the real operator as shipped (no --allow-insecure-http), a
real kube-apiserver and the (plain http) emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import EmulatorClient, OperatorProcess, condition, get_ie, wait_until
from .test_operator import apply_ie, wait_phase
from .test_provider_objects import running, wait_reason


def test_a_credential_over_plain_http_is_refused_without_the_flag(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str, tmp_path: Path
) -> None:
    # The session's operator allows plain http (the emulator); this one runs as shipped, and
    # watches only this test's namespace so it judges no other test's endpoints.
    assert operator.stop() in (0, -15)
    strict = OperatorProcess(
        control_plane.kubeconfig,
        tmp_path / "strict.log",
        ["--namespace", ns],
        allow_insecure_http=False,
    )
    try:
        running(emulator, "fr-tls-1")
        emulator.put("nsModelServer", "ns-tls-1", stage="READY", progress=100)
        friendli = {
            "endpointId": "fr-tls-1",
            "url": f"{emulator.base_url}/friendli",
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        }
        apply_ie(control_plane, ns, "fr", {"friendli": friendli})
        apply_ie(
            control_plane,
            ns,
            "plain",
            {"nsModelServer": {"url": f"{emulator.base_url}/ns/ns-tls-1"}},
        )
        obj = wait_reason(control_plane, ns, "fr", "InsecureURL")
        synced = condition(obj, "Synced")
        assert synced["status"] == "False"
        assert "friendli.url" in synced["message"]
        assert "--allow-insecure-http" in synced["message"]
        assert condition(obj, "Stalled")["reason"] == "InsecureURL"
        # No credential: a plain http self-hosted server is polled as before.
        wait_phase(control_plane, ns, "plain", "Running")
        assert emulator.requests(provider="friendli", endpoint="fr-tls-1") == 0
        assert "Traceback" not in strict.log.read_text()
    finally:
        strict.stop()
        operator.restart()
    # The same endpoint, with the flag (the session's operator): polled.
    wait_until(
        "fr polled with --allow-insecure-http",
        lambda: condition(get_ie(control_plane, ns, "fr"), "Synced").get("reason") == "Polled",
        30,
    )
