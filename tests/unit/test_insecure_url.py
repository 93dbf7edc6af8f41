"""Credentials only over TLS: a provider block that sends a credential to a plain http:// URL is
refused before its Secret is read or a request made, unless --allow-insecure-http."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from inferenceops.accounts import AccountPool
from inferenceops.api import parse_spec
from inferenceops.kube.secrets import SecretCache
from inferenceops.poller import Poller
from inferenceops.providers import SecretKeyRef
from inferenceops.scheduler import SchedulerSettings
from inferenceops.status import condition

from .probe_api import SECRET, friendli_manifest, probe
from .support import (
    CREDS,
    TOKEN,
    FakeSink,
    FakeWriter,
    Provider,
    VirtualClock,
    Wiring,
    body,
    friendli_running,
    ns_ready,
    obj,
    provider_status_of,
    ready,
    ref_spec,
    scheduling,
)


@dataclass
class RecordingCredentials:
    """A credential source that remembers every lookup."""

    lookups: list[tuple[str, str]] = field(default_factory=list)

    def lookup(self, namespace: str, ref: SecretKeyRef) -> str:
        self.lookups.append((namespace, ref.name))
        return TOKEN


@dataclass(eq=False)
class Item:
    """A poller.Polled stand-in."""

    spec: dict[str, Any]
    namespace: str = "ml"
    name: str = "e"
    uid: str = "uid-e"
    generation: int = 1
    spec_error: str | None = None
    spec_reason: str = "InvalidSpec"
    status: dict[str, Any] = field(default_factory=dict)
    reconcile_token: str | None = None
    last_success: Any = None
    tracked_since: Any = None

    @property
    def parsed(self) -> Any:
        return parse_spec(self.spec)


def friendli(url: str) -> dict[str, Any]:
    return {"friendli": {"endpointId": "ep1", "url": url, "credentialsSecretRef": CREDS}}


def split(spec: dict[str, Any], *, allow: bool = False) -> tuple[list[Any], list[Any], list[Any]]:
    credentials = RecordingCredentials()
    poller = Poller(AccountPool(), credentials, FakeWriter(), allow_insecure_http=allow)
    batches, early = poller.batches([Item(spec)])
    return batches, early, credentials.lookups


@pytest.mark.parametrize(
    ("spec", "field_name"),
    [
        (friendli("http://friendli.test"), "friendli.url"),
        (
            {
                "runpod": {
                    "endpointId": "ep1",
                    "url": "https://runpod.test/v2",
                    "queueUrl": "http://queue.test/v2",
                    "queueMetrics": True,
                    "credentialsSecretRef": CREDS,
                }
            },
            "runpod.queueUrl",
        ),
        (
            {
                "dataArtsFabric": {
                    "url": "http://fabric.test",
                    "workspaceId": "ws",
                    "endpointId": "0" * 32,
                    "accessKeySecretRef": {"name": "ak"},
                }
            },
            "dataArtsFabric.url",
        ),
    ],
)
def test_a_credential_for_plain_http_is_refused_before_the_secret_is_read(
    spec: dict[str, Any], field_name: str
) -> None:
    batches, early, lookups = split(spec)
    assert batches == [] and lookups == []
    ((_, failure),) = early
    assert failure.reason == "InsecureURL"
    assert field_name in failure.message and "--allow-insecure-http" in failure.message
    assert "not https" in failure.message


def test_the_flag_allows_it() -> None:
    batches, early, lookups = split(friendli("http://friendli.test"), allow=True)
    assert early == [] and len(batches) == 1 and lookups == [("ml", "creds")]


@pytest.mark.parametrize(
    "spec",
    [
        friendli("https://friendli.test"),
        # RunPod's defaults (both routes) are https.
        {"runpod": {"endpointId": "ep1", "credentialsSecretRef": CREDS}},
        # No credential, nothing to protect: self-hosted servers are often plain http.
        {"takeoff": {"url": "http://takeoff.ml.svc:3001"}},
        {"nsModelServer": {"url": "http://ns.ml.svc:8080"}},
    ],
)
def test_https_and_uncredentialed_http_are_polled(spec: dict[str, Any]) -> None:
    batches, early, _ = split(spec)
    assert early == [] and len(batches) == 1


def test_the_message_names_the_provider_object_the_url_comes_from() -> None:
    item = Item(friendli("http://friendli.test"))
    poller = Poller(AccountPool(), RecordingCredentials(), FakeWriter())
    from inferenceops.api import AccountSource

    parsed = replace(item.parsed, account=AccountSource("InferenceProvider", "ml", "acct", "ml"))
    failure = poller.refusal(parsed)
    assert failure is not None and "(from InferenceProvider acct)" in failure.message


# --- the scheduler --------------------------------------------------------------------------


class ReadCountingSecrets(SecretCache):
    """A SecretCache that reads wanted Secrets with a fetch (as the operator's does), counted."""

    def __init__(self, changed: Callable[[str, str], None]) -> None:
        super().__init__(self.fetch, changed)
        self.reads: list[tuple[str, str]] = []

    async def fetch(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        self.reads.append((namespace, name))
        return {"data": {"token": base64.b64encode(TOKEN.encode()).decode()}}


async def run_scheduler(
    settings: SchedulerSettings, *specs: tuple[str, dict[str, Any]]
) -> tuple[FakeWriter, Provider, ReadCountingSecrets]:
    wiring = Wiring()
    writer, secrets = FakeWriter(), ReadCountingSecrets(wiring.secret_changed)
    provider = Provider(lambda r: friendli_running(r) if "friendli" in str(r.url) else ns_ready(r))
    async with scheduling(
        provider, writer, secrets, settings, clock=VirtualClock(), wiring=wiring
    ) as sched:
        # The Secret exists (the watch saw it): wanting it would read it.
        secrets.put("ml", "creds", {})
        for name, spec in specs:
            sched.upsert(body(name, spec))
        await writer.wait_for(len(specs))
        await asyncio.sleep(1)  # a Secret read, had one started, would be recorded
    return writer, provider, secrets


async def test_the_scheduler_refuses_with_a_stalled_reason_and_reads_nothing() -> None:
    spec = {"pollInterval": "30s", **friendli("http://friendli.test")}
    writer, provider, secrets = await run_scheduler(SchedulerSettings(), ("f", spec))
    ((_, patch),) = writer.patches
    synced = condition(patch, "Synced") or {}
    assert (synced.get("status"), synced.get("reason")) == ("False", "InsecureURL")
    assert "--allow-insecure-http" in synced.get("message", "")
    assert (condition(patch, "Stalled") or {}).get("reason") == "InsecureURL"
    assert provider.requests == [] and secrets.reads == []
    assert [e.reason for _, e in writer.events] == ["InsecureURL"]


async def test_the_scheduler_with_the_flag_polls_http() -> None:
    spec = {"pollInterval": "30s", **friendli("http://friendli.test")}
    settings = SchedulerSettings(allow_insecure_http=True)
    writer, provider, secrets = await run_scheduler(settings, ("f", spec))
    assert writer.patches[0][1]["phase"] == "Running"
    assert secrets.reads == [("ml", "creds")] and len(provider.requests) >= 1


async def test_a_provider_objects_http_url_makes_it_not_ready(clock: VirtualClock) -> None:
    writer, secrets, sink = FakeWriter(), SecretCache(), FakeSink()
    provider = Provider(friendli_running)
    settings = SchedulerSettings(arrival_quiet=0.01)
    async with scheduling(
        provider, writer, secrets, settings, clock=clock, provider_sink=sink
    ) as sched:
        status = provider_status_of(sched)
        account = {"friendli": {"url": "http://friendli.test", "credentialsSecretRef": CREDS}}
        sched.providers.observe_namespaced(None, obj("InferenceProvider", "acct", account))
        sched.upsert(body("f", ref_spec()))
        await writer.wait_for(1)
        assert (condition(writer.patches[0][1], "Synced") or {}).get("reason") == "InsecureURL"
        await status.sync()
        shown = sched.providers.status(("InferenceProvider", "ml", "acct"))
        assert ready(shown) == ("False", "InsecureURL")
        assert (condition(shown, "Stalled") or {}).get("reason") == "InsecureURL"
        assert provider.requests == []


# --- probe ----------------------------------------------------------------------------------


def test_probe_refuses_http_before_looking_for_the_token(
    probe_server: str,
    tmp_path: Path,
) -> None:
    out = probe(friendli_manifest(probe_server), tmp_path=tmp_path)
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "InsecureURL" in out.stderr and "--allow-insecure-http" in out.stderr


def test_probe_with_the_flag_polls_http(probe_server: str, tmp_path: Path) -> None:
    out = probe(
        friendli_manifest(probe_server), "--allow-insecure-http", token=SECRET, tmp_path=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "phase: Running" in out.stdout
