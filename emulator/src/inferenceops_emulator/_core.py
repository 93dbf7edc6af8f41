"""Machinery shared by the five provider emulations: replies, faults, accounting, auth."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Generic, Literal, Protocol, TypeVar, get_args

from aiohttp import web

FaultKind = Literal["status", "slow", "garbage", "huge"]
GarbageMode = Literal["html", "truncated", "wrong_types"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
GARBAGE_MODES: tuple[GarbageMode, ...] = get_args(GarbageMode)

HUGE_DEFAULT = 20 * 1024 * 1024


_iso_cache: tuple[int, str] = (-1, "")


def iso_now() -> str:
    """UTC timestamp with millisecond precision and a Z suffix, the form all five docs show."""
    global _iso_cache
    ms = int(time.time() * 1000)
    # Bulk seeding stamps thousands of records per millisecond; format each instant once.
    if _iso_cache[0] != ms:
        seconds, milli = divmod(ms, 1000)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"
        _iso_cache = (ms, text)
    return _iso_cache[1]


@dataclass
class Reply:
    """A provider response before rendering; faults rewrite it before it hits the wire."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    # Set for non-JSON bodies (plain-text errors, HTML garbage, truncated JSON).
    raw: bytes | None = None

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode()


ErrorFormatter = Callable[[web.Request, int, str | None], Reply]
AuthCheck = Callable[[web.Request, "Accepted"], bool]
KeyFn = Callable[[web.Request], tuple[str, ...]]
ProviderHandler = Callable[[web.Request], Awaitable[Reply]]
WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    """One injected misbehaviour; see the package docstring for the meaning of each field."""

    provider: str
    kind: FaultKind
    endpoint: str | None = None
    times: int | None = None
    status: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    mode: GarbageMode = "html"
    size: int = HUGE_DEFAULT
    body: Any = None
    #: Let this many matching requests through first (a listing failing on its second page).
    after: int = 0
    id: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.mode not in GARBAGE_MODES:
            raise ValueError(f"unknown garbage mode {self.mode!r}")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 or None")
        if self.after < 0:
            raise ValueError("after must be >= 0")
        if self.kind == "status" and self.status is None:
            raise ValueError("a status fault needs an HTTP status")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"bad HTTP status {self.status}")
        if self.kind == "status" and self.status == 429 and self.retry_after is None:
            # A 429 without Retry-After would not exercise the client's back-off path.
            self.retry_after = 1

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FaultPlan:
    slow: list[Fault] = field(default_factory=list)
    status: Fault | None = None
    garbage: Fault | None = None
    huge: Fault | None = None


class FaultBook:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, fault: Fault) -> int:
        fault.id = self._next_id
        self._next_id += 1
        self._faults.append(fault)
        return fault.id

    def list(self) -> list[Fault]:
        return list(self._faults)

    def remove(self, fault_id: int) -> bool:
        before = len(self._faults)
        self._faults = [f for f in self._faults if f.id != fault_id]
        return len(self._faults) != before

    def clear(self, provider: str | None = None, endpoint: str | None = None) -> int:
        keep = [
            f
            for f in self._faults
            if not (
                (provider is None or f.provider == provider)
                and (endpoint is None or f.endpoint == endpoint)
            )
        ]
        removed = len(self._faults) - len(keep)
        self._faults = keep
        return removed

    def take(self, provider: str, keys: Iterable[str]) -> FaultPlan:
        """Pick the faults that apply to one request and consume one use of each.

        Every matching slow fault applies (delays add up); of the other kinds only the
        oldest match applies, so a later fault waits its turn instead of being used up unseen.
        """
        plan = FaultPlan()
        if not self._faults:
            return plan
        key_set = set(keys)
        used: list[Fault] = []
        for f in self._faults:
            if f.provider != provider or (f.endpoint is not None and f.endpoint not in key_set):
                continue
            if f.after > 0:
                f.after -= 1
                continue
            if f.kind == "slow":
                plan.slow.append(f)
            elif f.kind == "status" and plan.status is None:
                plan.status = f
            elif f.kind == "garbage" and plan.garbage is None:
                plan.garbage = f
            elif f.kind == "huge" and plan.huge is None:
                plan.huge = f
            else:
                continue
            used.append(f)
        spent = False
        for f in used:
            if f.times is not None:
                f.times -= 1
                spent = spent or f.times <= 0
        if spent:
            self._faults = [f for f in self._faults if f.times is None or f.times > 0]
        return plan


class Accounting:
    def __init__(self) -> None:
        self.by_provider: Counter[str] = Counter()
        self.by_key: Counter[tuple[str, str]] = Counter()
        self.by_path: Counter[tuple[str, str]] = Counter()
        # Who asked: the e2e suite checks that each replica of the operator polls only its own
        # endpoints, and a replica is told apart by its pod's address.
        self.by_client: Counter[tuple[str, str, str]] = Counter()

    def record(self, provider: str, keys: Iterable[str], path: str, client: str = "") -> None:
        self.by_provider[provider] += 1
        for k in keys:
            self.by_key[(provider, k)] += 1
            self.by_client[(provider, k, client)] += 1
        self.by_path[(provider, path)] += 1

    def count(
        self, provider: str | None = None, endpoint: str | None = None, path: str | None = None
    ) -> int:
        if path is not None:
            if endpoint is not None:
                raise ValueError("filter by endpoint or by path, not both")
            return sum(
                n for (p, q), n in self.by_path.items() if q == path and provider in (None, p)
            )
        if endpoint is not None:
            return sum(
                n for (p, k), n in self.by_key.items() if k == endpoint and provider in (None, p)
            )
        if provider is not None:
            return self.by_provider[provider]
        return sum(self.by_provider.values())

    def reset(self) -> None:
        self.by_provider.clear()
        self.by_key.clear()
        self.by_path.clear()
        self.by_client.clear()

    def snapshot(self) -> dict[str, Any]:
        endpoints: dict[str, dict[str, int]] = {}
        for (p, k), n in self.by_key.items():
            endpoints.setdefault(p, {})[k] = n
        paths: dict[str, dict[str, int]] = {}
        for (p, q), n in self.by_path.items():
            paths.setdefault(p, {})[q] = n
        clients: dict[str, dict[str, dict[str, int]]] = {}
        for (p, k, c), n in self.by_client.items():
            clients.setdefault(p, {}).setdefault(k, {})[c] = n
        return {
            "total": sum(self.by_provider.values()),
            "providers": dict(self.by_provider),
            "endpoints": endpoints,
            "paths": paths,
            "clients": clients,
        }


@dataclass(frozen=True, slots=True)
class Accepted:
    """The credentials a provider accepts right now: its token (None once it has expired) and,
    for a provider that signs requests, its access keys (AK -> SK)."""

    token: str | None
    access_keys: Mapping[str, str]


class Hub:
    """State every provider store and handler shares; owned by one Emulator."""

    def __init__(self, token: str, providers: Iterable[str]) -> None:
        self.tokens: dict[str, str] = dict.fromkeys(providers, token)
        #: time.time() after which a provider's token is refused (an emulated IAM expiry).
        self.token_expiry: dict[str, float] = {}
        self.access_keys: dict[str, dict[str, str]] = {}
        self.changed: dict[tuple[str, str], float] = {}
        self.faults = FaultBook()
        self.accounting = Accounting()
        self.stopping = asyncio.Event()

    def accepted(self, provider: str) -> Accepted:
        expiry = self.token_expiry.get(provider)
        token = None if expiry is not None and time.time() >= expiry else self.tokens[provider]
        return Accepted(token, self.access_keys.get(provider, {}))

    def touch(self, provider: str, key: str) -> None:
        # Wall-clock time, so a benchmark in another process can compare it with its own clock.
        self.changed[(provider, key)] = time.time()

    async def sleep(self, seconds: float) -> None:
        # Wake early on stop so slow faults never hold up the server's shutdown.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    def wrap(
        self,
        provider: str,
        handler: ProviderHandler,
        *,
        keys: KeyFn,
        error: ErrorFormatter,
        auth: AuthCheck | None,
    ) -> WebHandler:
        async def serve(request: web.Request) -> web.StreamResponse:
            request_keys = keys(request)
            self.accounting.record(provider, request_keys, request.path, request.remote or "")
            plan = self.faults.take(provider, request_keys)
            for slow in plan.slow:
                await self.sleep(slow.seconds)
            if plan.status is not None:
                reply = error(request, plan.status.status or 500, None)
                if plan.status.body is not None:
                    reply.body, reply.raw = plan.status.body, None
                if plan.status.retry_after is not None:
                    reply.headers["Retry-After"] = _seconds(plan.status.retry_after)
            elif auth is not None and not auth(request, self.accepted(provider)):
                reply = error(request, 401, None)
            else:
                reply = await handler(request)
            if plan.garbage is not None:
                reply = garble(reply, plan.garbage)
            if plan.huge is not None:
                reply = inflate(reply, plan.huge.size)
            return render(reply)

        return serve


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def render(reply: Reply) -> web.Response:
    headers = dict(reply.headers)
    headers["Content-Type"] = reply.content_type
    return web.Response(status=reply.status, body=reply.encode(), headers=headers)


def bearer_auth(request: web.Request, accepted: Accepted) -> bool:
    token = accepted.token
    return token is not None and request.headers.get("Authorization", "") == f"Bearer {token}"


def text_error(_request: web.Request, status: int, message: str | None) -> Reply:
    """Error format for the self-hosted servers, whose docs specify none."""
    text = message or reason(status)
    return Reply(status=status, raw=text.encode(), content_type="text/plain; charset=utf-8")


def instance_routes(prefix: str, status: ProviderHandler) -> list[Route]:
    """The routes of a self-hosted server, one per named instance: `GET {prefix}/{instance}/status`
    and, for any other path of an instance, the plain-text 404 a server answers."""

    async def unknown_path(request: web.Request) -> Reply:
        return text_error(request, 404, None)

    def keys(request: web.Request) -> tuple[str, ...]:
        instance = request.match_info.get("instance")
        return (instance,) if instance else ()

    return [
        Route(prefix + "/{instance}/status", status, keys),
        Route(prefix + "/{instance}/{tail:.*}", unknown_path, keys, method="*"),
    ]


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


_HTML = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"
)


def garble(reply: Reply, fault: Fault) -> Reply:
    if fault.mode == "html":
        # A captive portal or a misrouted proxy answers 200 with a page, not an error status.
        return Reply(
            status=fault.status or 200,
            raw=_HTML.encode(),
            content_type="text/html; charset=utf-8",
        )
    if fault.mode == "truncated":
        data = reply.encode()
        return Reply(
            status=reply.status,
            raw=data[: max(1, len(data) // 2)],
            headers=reply.headers,
            content_type=reply.content_type,
        )
    return Reply(
        status=reply.status,
        body=wrong_types(reply.body),
        headers=reply.headers,
        content_type="application/json",
    )


def wrong_types(value: Any) -> Any:
    """Keep the document's keys but give every value a type its schema does not allow."""
    if isinstance(value, dict):
        if not value:
            return ["unexpected"]
        return {k: wrong_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return {"unexpected": len(value)}
    if isinstance(value, bool):
        return "maybe"
    if isinstance(value, int | float):
        return f"{value}?"
    if isinstance(value, str):
        return 12345
    return 0


def inflate(reply: Reply, size: int) -> Reply:
    """Pad the reply to at least `size` bytes while keeping it valid JSON when it was."""
    padding = b"x" * size
    if reply.raw is None and isinstance(reply.body, dict) and reply.body:
        data = reply.encode()
        raw = data[:-1] + b',"_padding":"' + padding + b'"}'
    elif reply.raw is None:
        raw = b'{"_padding":"' + padding + b'","body":' + reply.encode() + b"}"
    else:
        raw = reply.raw + padding
    return Reply(
        status=reply.status, raw=raw, headers=reply.headers, content_type=reply.content_type
    )


def public_fields(record: Any, meta: Iterable[str]) -> dict[str, Any]:
    """The put() keyword arguments that would recreate a record (its dataclass fields)."""
    skip = set(meta)
    return {
        f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name not in skip
    }


def int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def str_list(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


R = TypeVar("R")


class Store(Generic[R]):
    """Records of one provider by key, with the bookkeeping every store shares: each change
    touches the hub (for `changed_at` and lifecycles)."""

    provider: str

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._items: dict[str, R] = {}

    def _save(self, key: str, record: R) -> R:
        self._items[key] = record
        self._hub.touch(self.provider, key)
        return record

    def delete(self, key: str) -> bool:
        found = self._items.pop(key, None) is not None
        if found:
            self._hub.touch(self.provider, key)
        return found

    def get(self, key: str) -> R | None:
        return self._items.get(key)

    def ids(self) -> list[str]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def create_group(self, *parent: str) -> None:
        raise ValueError(f"{self.provider} endpoints are not grouped")


class StateStore(Protocol):
    """What the server does with any provider's state. A key is one string per part of the
    emulation's `key` (most providers: the endpoint id); fewer parts name a group (a DataArts
    workspace). Properties, so that each store keeps its own typed put() keywords."""

    @property
    def put(self) -> Callable[..., Any]: ...

    @property
    def patch(self) -> Callable[..., Any]: ...

    @property
    def get(self) -> Callable[..., Any]: ...

    @property
    def delete(self) -> Callable[..., bool]: ...

    @property
    def ids(self) -> Callable[..., list[str]]: ...

    @property
    def create_group(self) -> Callable[..., None]: ...

    def clear(self) -> None: ...


S = TypeVar("S", bound=StateStore)


@dataclass(frozen=True)
class Route:
    path: str
    handler: ProviderHandler
    #: Which ids a request is about, for fault scoping and accounting.
    keys: KeyFn
    method: str = "GET"


@dataclass(frozen=True)
class Emulation(Generic[S]):
    """Everything the server needs to know about one provider; each provider module has one."""

    #: The provider's block name in an InferenceEndpoint's spec.
    name: str
    #: The parts of an endpoint's key, e.g. ("workspace", "endpoint"); the last part is called
    #: `key` in the control API and seeds nest one mapping per part.
    key: tuple[str, ...]
    #: Where its API is, under the emulator's base URL, by name (for the control API's index).
    urls: Mapping[str, str]
    #: None: no credential (self-hosted servers).
    auth: AuthCheck | None
    error: ErrorFormatter
    new_store: Callable[[Hub], S]
    routes: Callable[[S], Sequence[Route]]

    @property
    def groups(self) -> tuple[str, ...]:
        return self.key[:-1]
