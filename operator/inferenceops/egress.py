"""Where provider connections may go: every address is checked after DNS, at connect time.

An endpoint's author chooses its URL, and the operator connects from inside the cluster; a URL
naming (or resolving to) a cloud metadata service would make the operator fetch it for them. So
the host is resolved once, every address it resolves to is checked against the denied ranges,
and the connection goes to a checked address: a DNS answer that changes between a check and a
connect (rebinding) has nothing to change. TLS still verifies the URL's host name: httpcore
takes SNI and the certificate's name from the URL, not from the address connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore

from .providers import ErrorReason, ProviderError

__all__ = [
    "ALWAYS_DENIED",
    "EgressPolicy",
    "GuardedBackend",
    "Resolver",
    "guard_transport",
    "parse_cidr",
    "system_resolver",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Link-local (cloud metadata services: 169.254.169.254 on AWS, GCP, Azure; nothing a provider
#: is served from), and AWS's IPv6 metadata address, which is unique-local, not link-local.
ALWAYS_DENIED: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)
#: RFC 6052's well-known NAT64 prefix: a gateway would carry 64:ff9b::a9fe:a9fe to 169.254.169.254.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: (host, port) → the addresses it resolves to.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_cidr(text: str) -> Network:
    """A `--deny-cidr` value; ValueError with a one-line reason otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as err:
        raise ValueError(f"{text!r} is not a CIDR range like 10.0.0.0/8 ({err})") from None


def _as_ip(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        # The IPv4 address a v6 form carries is the one the packets reach.
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The ranges no provider connection may reach: link-local always, plus `--deny-cidr`."""

    denied: tuple[Network, ...] = ALWAYS_DENIED

    @classmethod
    def denying(cls, extra: Iterable[Network]) -> EgressPolicy:
        return cls(ALWAYS_DENIED + tuple(extra))

    def refusal(self, host: str, address: str) -> ProviderError | None:
        ip = _as_ip(address)
        if ip is None:
            return None
        for network in self.denied:
            if ip.version == network.version and ip in network:
                target = host if host == address else f"{host} ({address})"
                return ProviderError(
                    ErrorReason.DESTINATION_DENIED,
                    f"refused to connect to {target}: the address is in {network}, which "
                    "provider connections may not reach (link-local, or the operator's "
                    "--deny-cidr)",
                )
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects `inner` to a checked address."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkBackend,
        policy: EgressPolicy,
        resolve: Resolver = system_resolver,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._resolve = resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port, timeout)
        for address in addresses:
            refusal = self._policy.refusal(host, address)
            if refusal is not None:
                # One denied address refuses the host: which one a connect would use is not ours
                # to predict, and a mixed answer is what a rebinding attack looks like.
                raise refusal
        error: Exception = httpcore.ConnectError(f"{host} resolves to no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                error = err
        raise error

    async def _addresses(self, host: str, port: int, seconds: float | None) -> list[str]:
        if _as_ip(host) is not None:
            return [host.strip("[]")]
        try:
            async with asyncio.timeout(seconds):
                return await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took over {seconds} s") from None
        except OSError as err:
            raise httpcore.ConnectError(f"cannot resolve {host}: {err}") from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("provider connections are TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guard_transport(
    transport: object,
    policy: EgressPolicy,
    resolve: Resolver = system_resolver,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> None:
    """Put the check under an `httpx.AsyncHTTPTransport`'s connection pool (direct, HTTP or
    SOCKS proxy alike: each pool connects through its network backend).

    httpx 0.28 does not pass `network_backend` through (encode/httpx discussion 3180, PR 3749),
    so this sets the backend the pool reads for every new connection. Should a new httpx or
    httpcore move either attribute, opening an account fails (every poll an InternalError, with
    the reason logged) rather than polling unguarded; tests/unit/test_egress.py exercises it
    through the whole client. httpx and httpcore are pinned in image/requirements.lock.
    `inner` replaces the backend that connects (tests record connects instead of making them).
    """
    pool = getattr(transport, "_pool", None)
    current = getattr(pool, "_network_backend", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not isinstance(
        current, httpcore.AsyncNetworkBackend
    ):
        raise RuntimeError(
            "cannot install the egress check: httpx/httpcore changed their connection pool"
        )
    pool._network_backend = GuardedBackend(inner or current, policy, resolve)
