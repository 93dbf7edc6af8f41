"""No provider connection reaches link-local (or `--deny-cidr`) addresses (issue 21, point 9).

No test here sends a packet to a link-local or private address: names resolve through a stub
resolver, and the backend under the check records connects instead of making them. Only the
allowed case connects, to a server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from aiohttp import web
from pydantic import BaseModel

from inferenceops.accounts import AccountPool, AccountSettings
from inferenceops.egress import EgressPolicy, GuardedBackend, parse_cidr
from inferenceops.kube.secrets import SecretCache
from inferenceops.providers import ErrorReason, ProviderError
from inferenceops.providers.http import get_json
from inferenceops.scheduler import Scheduler
from inferenceops.status import condition

from .local_http import serving
from .support import FakeWriter, body


@pytest.fixture(autouse=True)
def no_real_connect_but_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the check ever not be installed, the real backend still reaches no one but
    127.0.0.1: a broken test must not become a packet to a metadata service."""
    from httpcore._backends.auto import AutoBackend

    real = AutoBackend.connect_tcp

    async def loopback_only(self: AutoBackend, host: str, port: int, *a: Any, **kw: Any) -> Any:
        assert host == "127.0.0.1", f"a test tried to connect to {host}"
        return await real(self, host, port, *a, **kw)

    monkeypatch.setattr(AutoBackend, "connect_tcp", loopback_only)


class Recording(httpcore.AsyncNetworkBackend):
    """Records every connect and makes none."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        raise httpcore.ConnectError("the recording backend connects nowhere")

    async def sleep(self, seconds: float) -> None:
        pass


class StubResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"{host}: no such name in the stub")
        return self.answers[host]


class Anything(BaseModel):
    pass


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        (["169.254.169.254"], "169.254.169.254"),
        (["fe80::1"], "fe80::1"),
        (["fe80::1%eth0"], "fe80::1%eth0"),
        (["::ffff:169.254.169.254"], "::ffff:169.254.169.254"),  # IPv4-mapped
        (["64:ff9b::a9fe:a9fe"], "64:ff9b::a9fe:a9fe"),  # NAT64 of 169.254.169.254
        (["fd00:ec2::254"], "fd00:ec2::254"),  # AWS's IPv6 metadata address
        # One denied address among allowed ones refuses the host (a rebinding-shaped answer).
        (["93.184.216.34", "169.254.169.254"], "169.254.169.254"),
    ],
)
async def test_a_name_resolving_to_a_denied_address_is_refused_before_any_connect(
    answer: list[str], refused: str
) -> None:
    inner = Recording()
    guard = GuardedBackend(inner, EgressPolicy(), StubResolver({"metadata.test": answer}))
    with pytest.raises(ProviderError) as caught:
        await guard.connect_tcp("metadata.test", 80, timeout=1.0)
    assert inner.connects == []
    assert caught.value.reason is ErrorReason.DESTINATION_DENIED
    assert f"refused to connect to metadata.test ({refused})" in caught.value.message


async def test_the_connection_goes_to_the_checked_address_resolved_once() -> None:
    inner = Recording()
    resolver = StubResolver({"provider.test": ["192.0.2.7", "192.0.2.8"]})
    guard = GuardedBackend(inner, EgressPolicy(), resolver)
    with pytest.raises(httpcore.ConnectError):
        await guard.connect_tcp("provider.test", 443, timeout=1.0)
    # Each checked address tried in turn; the name never reaches the connecting backend.
    assert inner.connects == [("192.0.2.7", 443), ("192.0.2.8", 443)]
    assert resolver.asked == ["provider.test"]


async def test_an_unresolvable_name_is_unreachable_not_denied() -> None:
    guard = GuardedBackend(Recording(), EgressPolicy(), StubResolver({}))
    with pytest.raises(httpcore.ConnectError, match=r"cannot resolve nowhere\.test"):
        await guard.connect_tcp("nowhere.test", 80, timeout=1.0)


def test_deny_cidr_values() -> None:
    assert parse_cidr("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_cidr("10.1.2.3/8") == ipaddress.ip_network("10.0.0.0/8")  # host bits dropped
    with pytest.raises(ValueError, match=r"'ten' is not a CIDR range like 10\.0\.0\.0/8"):
        parse_cidr("ten")


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("http://[fe80::1]:8080", "fe80::1"),
        ("http://[::ffff:169.254.169.254]", "::ffff:169.254.169.254"),
        ("https://metadata.test", "metadata.test (169.254.169.254)"),
    ],
)
async def test_get_json_through_the_account_pool_refuses_denied_destinations(
    url: str, address: str
) -> None:
    inner = Recording()
    resolver = StubResolver({"metadata.test": ["169.254.169.254"]})
    accounts = AccountPool(resolver=resolver, network_backend=inner)
    try:
        client = accounts.get("nsModelServer", url).client
        with pytest.raises(ProviderError) as caught:
            await get_json(client, url + "/status", Anything)
    finally:
        await accounts.aclose()
    assert inner.connects == []
    assert caught.value.reason is ErrorReason.DESTINATION_DENIED
    assert f"refused to connect to {address}" in caught.value.message
    assert "link-local, or the operator's --deny-cidr" in caught.value.message
    if "metadata.test" not in url:
        assert resolver.asked == [], "an IP literal needs no resolving"


async def test_deny_cidr_adds_ranges() -> None:
    inner = Recording()
    resolver = StubResolver({"internal.test": ["10.1.2.3"]})
    settings = AccountSettings(denied_networks=(parse_cidr("10.0.0.0/8"),))
    accounts = AccountPool(settings, resolver=resolver, network_backend=inner)
    try:
        client = accounts.get("nsModelServer", "internal").client
        with pytest.raises(ProviderError) as caught:
            await get_json(client, "http://internal.test:8080/status", Anything)
    finally:
        await accounts.aclose()
    assert inner.connects == []
    assert caught.value.reason is ErrorReason.DESTINATION_DENIED
    assert "internal.test (10.1.2.3): the address is in 10.0.0.0/8" in caught.value.message


async def test_through_a_proxy_the_proxys_address_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    inner = Recording()
    resolver = StubResolver({"proxy.test": ["169.254.10.10"]})
    accounts = AccountPool(resolver=resolver, network_backend=inner)
    try:
        client = accounts.get("nsModelServer", "p").client
        with pytest.raises(ProviderError) as caught:
            await get_json(client, "http://provider.test/status", Anything)
    finally:
        await accounts.aclose()
    assert inner.connects == []
    assert "refused to connect to proxy.test (169.254.10.10)" in caught.value.message


async def test_an_allowed_host_still_works_connecting_to_the_address_it_resolved_to() -> None:
    seen: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.json_response({})

    resolver = StubResolver({"provider.test": ["127.0.0.1"]})
    accounts = AccountPool(resolver=resolver)
    try:
        async with serving(ok) as base:
            port = base.rsplit(":", 1)[1]
            client = accounts.get("nsModelServer", "ok").client
            assert isinstance(await get_json(client, base + "/status", Anything), Anything)
            # A name: resolved by the stub, connected to the address it gave, and still asked
            # for by name (TLS would verify that name).
            url = f"http://provider.test:{port}/status"
            assert isinstance(await get_json(client, url, Anything), Anything)
    finally:
        await accounts.aclose()
    assert seen == [f"127.0.0.1:{port}", f"provider.test:{port}"]
    assert resolver.asked == ["provider.test"]


async def test_an_endpoint_naming_a_metadata_address_is_synced_false_and_stalled() -> None:
    inner = Recording()
    accounts = AccountPool(resolver=StubResolver({}), network_backend=inner)
    writer = FakeWriter()
    scheduler = Scheduler(writer, SecretCache(), accounts)
    task = asyncio.create_task(scheduler.run())
    try:
        url = "http://169.254.169.254/latest"
        scheduler.upsert(body("meta", {"nsModelServer": {"url": url}}))
        await writer.wait_for(1)
    finally:
        task.cancel()
        await scheduler.drain()
        await accounts.aclose()
    status = scheduler.status_of("ml", "meta")
    synced, stalled = condition(status, "Synced"), condition(status, "Stalled")
    assert synced is not None and stalled is not None
    assert (synced["status"], synced["reason"]) == ("False", "DestinationDenied")
    refused = "refused to connect to 169.254.169.254: the address is in 169.254.0.0/16"
    assert refused in synced["message"]
    assert (stalled["status"], stalled["reason"]) == ("True", "DestinationDenied")
    assert inner.connects == []


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for DNS name `name` (and no IP), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_tls_verifies_the_urls_host_name_while_connecting_to_the_checked_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert_file, key_file = _self_signed(tmp_path, "provider.test")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    client_tls = ssl.create_default_context(cafile=str(cert_file))
    monkeypatch.setattr(httpx, "create_ssl_context", lambda *a, **kw: client_tls)

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/status", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    resolver = StubResolver({"provider.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    accounts = AccountPool(resolver=resolver)
    try:
        client = accounts.get("nsModelServer", "tls").client
        answer = await get_json(client, f"https://provider.test:{port}/status", Anything)
        assert isinstance(answer, Anything)
        # The same address under a name the certificate does not carry: refused by TLS.
        with pytest.raises(ProviderError) as caught:
            await get_json(client, f"https://other.test:{port}/status", Anything)
        assert caught.value.reason is ErrorReason.UNREACHABLE
    finally:
        await accounts.aclose()
        await runner.cleanup()
