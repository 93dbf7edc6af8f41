"""Shared accounts stay shared, with the real operator, a real kube-apiserver and the emulator:
an endpoint's team override must be allowed by its provider object, and the failure of an
allowed one is the endpoint's, not the shared object's."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import EmulatorClient, OperatorProcess, condition, get_ie, wait_until
from .test_provider_objects import apply, endpoint, get_provider, provider, running, wait_reason


@pytest.mark.parametrize(
    ("allowed", "message"),
    [
        (
            {"workspaceId": ["ws-1"]},
            "allowedOverrides.workspaceId applies to a dataArtsFabric block",
        ),
        ({"teamId": ["has space"]}, "should match"),
    ],
)
def test_the_api_server_validates_the_allow_list(
    control_plane: Any, crds: None, ns: str, allowed: dict[str, Any], message: str
) -> None:
    account = {
        "friendli": {"credentialsSecretRef": {"name": "creds", "key": "token"}},
        "allowedOverrides": allowed,
    }
    out = apply(control_plane, provider("bad", ns, account), check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_an_override_the_key_cannot_read_fails_only_its_endpoint(
    control_plane: Any, emulator: EmulatorClient, operator: OperatorProcess, ns: str
) -> None:
    running(emulator, "fr-ovr-own")
    emulator.put("friendli", "fr-ovr-b", status="RUNNING", team="team-b")
    # The key is no member of team-b: the provider says so on every request for it.
    fault = emulator.fail("friendli", 403, endpoint="fr-ovr-b")
    account = {
        "friendli": {
            "url": f"{emulator.base_url}/friendli",
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        },
        "allowedOverrides": {"teamId": ["team-b"]},
    }
    ref = {"name": "shared"}
    try:
        apply(
            control_plane,
            provider("shared", ns, account),
            endpoint("mine", ns, {"providerRef": ref, "friendli": {"endpointId": "fr-ovr-own"}}),
            endpoint(
                "theirs",
                ns,
                {"providerRef": ref, "friendli": {"endpointId": "fr-ovr-b", "teamId": "team-b"}},
            ),
            endpoint(
                "forbidden",
                ns,
                {"providerRef": ref, "friendli": {"endpointId": "fr-ovr-c", "teamId": "team-c"}},
            ),
        )
        wait_reason(control_plane, ns, "mine", "Polled")
        theirs = wait_reason(control_plane, ns, "theirs", "Unauthorized")
        assert condition(theirs, "Stalled")["reason"] == "Unauthorized"

        forbidden = wait_reason(control_plane, ns, "forbidden", "OverrideNotAllowed")
        message = condition(forbidden, "Synced")["message"]
        assert "friendli.teamId 'team-c'" in message and "allows team-b" in message
        assert condition(forbidden, "Stalled")["reason"] == "OverrideNotAllowed"
        assert emulator.requests(provider="friendli", endpoint="fr-ovr-c") == 0

        # The shared object: still Authorized, with no Warning, after the override's 403s...
        polled = emulator.requests(provider="friendli", endpoint="fr-ovr-b")
        wait_until(
            "more polls of the override",
            lambda: emulator.requests(provider="friendli", endpoint="fr-ovr-b") > polled,
            30,
        )
        time.sleep(2)  # the provider status is written at most once a second
        shown = get_provider(control_plane, ns, "shared")
        assert (condition(shown, "Ready")["status"], condition(shown, "Ready")["reason"]) == (
            "True",
            "Authorized",
        )
        assert not condition(shown, "Stalled")
        events = control_plane.kubectl(
            "get", "events", "-n", ns, "-o", "json", "--field-selector=involvedObject.name=shared"
        )
        assert "Unauthorized" not in [e["reason"] for e in json.loads(events.stdout)["items"]]
        # ...and its other endpoint keeps being polled.
        before = emulator.requests(provider="friendli", endpoint="fr-ovr-own")
        wait_until(
            "mine polled again",
            lambda: emulator.requests(provider="friendli", endpoint="fr-ovr-own") > before,
            30,
        )
        assert get_ie(control_plane, ns, "mine")["status"]["phase"] == "Running"
    finally:
        emulator.remove_fault(fault)
