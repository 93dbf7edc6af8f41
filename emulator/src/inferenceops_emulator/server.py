"""The Emulator: one aiohttp server for every provider in the registry plus the `/_emulator`
control API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import yaml
from aiohttp import web

from . import control
from ._core import HUGE_DEFAULT, Emulation, Fault, FaultKind, GarbageMode, Hub, StateStore
from .registry import EMULATIONS, emulation

log = logging.getLogger(__name__)

Step = tuple[float, Mapping[str, Any] | None]
#: An endpoint's key: an id, or one string per part of the provider's key (DataArts: workspace
#: and endpoint id).
Key = str | Sequence[str]

#: Where `inferenceops-emulator` listens unless told otherwise.
DEFAULT_PORT = 8400


class Emulator:
    """Every provider API in the registry on one local HTTP server, with in-memory, scriptable
    state. Use as `async with Emulator() as emu:`; see the package docstring for the full API.
    """

    def __init__(self, token: str = "emulator-token", *, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self._hub = Hub(token, EMULATIONS)
        self._stores: dict[str, StateStore] = {
            name: e.new_store(self._hub) for name, e in EMULATIONS.items()
        }
        self._runner: web.AppRunner | None = None
        self._lifecycles: dict[int, asyncio.Task[None]] = {}
        self._next_lifecycle = 1

    # -- server -------------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self._hub.stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._add_control_routes(app)
        for name, e in EMULATIONS.items():
            for route in e.routes(self._stores[name]):
                handler = self._hub.wrap(
                    name, route.handler, keys=route.keys, error=e.error, auth=e.auth
                )
                app.router.add_route(route.method, route.path, handler)
        # Access logs off: benchmarks push thousands of requests a second through here.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        # Port 0 asks the OS for a free port; read back which one it gave.
        self.port = int(runner.addresses[0][1])
        self._runner = runner

    async def stop(self) -> None:
        self._hub.stopping.set()
        self.cancel_lifecycles()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}{control.PREFIX}"

    def url(self, name: str, **params: str) -> str:
        """A provider API's base URL by its name in the index, e.g. url("runpod_v2") or
        url("nsModelServer", instance="a")."""
        for e in EMULATIONS.values():
            if name in e.urls:
                return self.base_url + e.urls[name].format(**params)
        raise ValueError(f"no URL named {name!r}")

    def info(self) -> dict[str, Any]:
        """The providers and their URLs."""
        return {
            "providers": list(EMULATIONS),
            "urls": {
                label: self.base_url + path
                for e in EMULATIONS.values()
                for label, path in e.urls.items()
            },
        }

    def store(self, provider: str) -> Any:
        """A provider's state (e.g. FriendliStore) by its spec name; see its put() for fields."""
        emulation(provider)
        return self._stores[provider]

    # -- tokens -------------------------------------------------------------------------

    def set_token(self, provider: str | None, token: str, expires_in: float | None = None) -> None:
        """Accept only `token` from now on, for one provider or (None) all of them; with
        `expires_in`, refuse it after that many seconds too (as an IAM token expires)."""
        for name in EMULATIONS if provider is None else (emulation(provider).name,):
            self._hub.tokens[name] = token
            if expires_in is None:
                self._hub.token_expiry.pop(name, None)
            else:
                self._hub.token_expiry[name] = time.time() + expires_in

    def set_access_key(self, provider: str, access_key: str, secret_key: str) -> None:
        """Also accept requests signed with this access key pair (DataArts Fabric: AK/SK)."""
        self._hub.access_keys.setdefault(emulation(provider).name, {})[access_key] = secret_key

    def token(self, provider: str) -> str:
        return self._hub.tokens[emulation(provider).name]

    # -- faults -------------------------------------------------------------------------

    def add_fault(
        self,
        provider: str,
        kind: FaultKind,
        *,
        endpoint: str | None = None,
        times: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        seconds: float = 0.0,
        mode: GarbageMode = "html",
        size: int = HUGE_DEFAULT,
        body: Any = None,
        after: int = 0,
    ) -> int:
        fault = Fault(
            provider=provider,
            kind=kind,
            endpoint=endpoint,
            times=times,
            status=status,
            retry_after=retry_after,
            seconds=seconds,
            mode=mode,
            size=size,
            body=body,
            after=after,
        )
        return self._add(fault)

    def fail(
        self,
        provider: str,
        status: int,
        *,
        endpoint: str | None = None,
        times: int | None = None,
        retry_after: float | None = None,
        body: Any = None,
        after: int = 0,
    ) -> int:
        """Answer with `status` in the provider's error format (429 gets Retry-After: 1);
        `after`: let that many matching requests through first."""
        return self.add_fault(
            provider,
            "status",
            endpoint=endpoint,
            times=times,
            status=status,
            retry_after=retry_after,
            body=body,
            after=after,
        )

    def slow(
        self,
        provider: str,
        seconds: float,
        *,
        endpoint: str | None = None,
        times: int | None = None,
    ) -> int:
        return self.add_fault(provider, "slow", endpoint=endpoint, times=times, seconds=seconds)

    def garbage(
        self,
        provider: str,
        mode: GarbageMode = "html",
        *,
        endpoint: str | None = None,
        times: int | None = None,
        status: int | None = None,
    ) -> int:
        return self.add_fault(
            provider, "garbage", endpoint=endpoint, times=times, mode=mode, status=status
        )

    def huge(
        self,
        provider: str,
        *,
        size: int = HUGE_DEFAULT,
        endpoint: str | None = None,
        times: int | None = None,
    ) -> int:
        return self.add_fault(provider, "huge", endpoint=endpoint, times=times, size=size)

    def list_faults(self) -> list[Fault]:
        return self._hub.faults.list()

    def remove_fault(self, fault_id: int) -> bool:
        return self._hub.faults.remove(fault_id)

    def clear_faults(self, provider: str | None = None, endpoint: str | None = None) -> int:
        return self._hub.faults.clear(provider, endpoint)

    # -- lifecycles ---------------------------------------------------------------------

    def lifecycle(self, provider: str, key: Key, steps: Sequence[Step]) -> int:
        """Apply `(after_seconds, update)` steps on a timer; offsets count from now.

        An update patches the endpoint (or creates it with put() if it does not exist);
        `None` deletes it. Needs a running event loop; stop() cancels what is left.
        """
        parts = _key(emulation(provider), key)
        plan = sorted(((float(after), update) for after, update in steps), key=lambda s: s[0])
        if any(after < 0 for after, _ in plan):
            raise ValueError("step offsets must be >= 0")
        lifecycle_id = self._next_lifecycle
        self._next_lifecycle += 1
        task = asyncio.get_running_loop().create_task(
            self._run_lifecycle(provider, parts, plan),
            name=f"emulator-lifecycle-{lifecycle_id}",
        )
        self._lifecycles[lifecycle_id] = task
        task.add_done_callback(lambda _t: self._lifecycles.pop(lifecycle_id, None))
        return lifecycle_id

    async def _run_lifecycle(self, provider: str, key: tuple[str, ...], plan: list[Step]) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for after, update in plan:
            delay = start + after - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                self.apply(provider, key, update)
            except (KeyError, TypeError, ValueError):
                log.exception("lifecycle step for %s %s failed; lifecycle stopped", provider, key)
                return

    def apply(self, provider: str, key: Key, update: Mapping[str, Any] | None) -> None:
        """One lifecycle step: patch if present, put if absent, delete on None."""
        parts = _key(emulation(provider), key)
        store = self._stores[provider]
        if update is None:
            store.delete(*parts)
        elif store.get(*parts) is None:
            store.put(*parts, **update)
        else:
            store.patch(*parts, **update)

    async def wait_lifecycle(self, lifecycle_id: int) -> None:
        task = self._lifecycles.get(lifecycle_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def active_lifecycles(self) -> list[int]:
        return sorted(self._lifecycles)

    def cancel_lifecycle(self, lifecycle_id: int) -> bool:
        task = self._lifecycles.pop(lifecycle_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    def cancel_lifecycles(self) -> None:
        for lifecycle_id in list(self._lifecycles):
            self.cancel_lifecycle(lifecycle_id)

    # -- accounting ---------------------------------------------------------------------

    def requests(
        self,
        provider: str | None = None,
        endpoint: str | None = None,
        *,
        path: str | None = None,
    ) -> int:
        """Provider requests received (control API excluded), faulted and rejected ones too.

        `endpoint` is an endpoint id or instance name (or, for DataArts, a workspace id);
        `path` is the exact request path, e.g. "/friendli/dedicated/beta/endpoint/ep1/status".
        """
        return self._hub.accounting.count(provider, endpoint, path)

    def request_summary(self) -> dict[str, Any]:
        return self._hub.accounting.snapshot()

    def reset_requests(self) -> None:
        self._hub.accounting.reset()

    def changed_at(self, provider: str, key: str) -> float:
        """Wall-clock time (time.time()) of the last put/patch/delete of an endpoint.

        `key` is the endpoint id or instance name (DataArts: the endpoint id). KeyError if the
        emulator never held it.
        """
        return self._hub.changed[(emulation(provider).name, key)]

    # -- bulk state ---------------------------------------------------------------------

    def bulk(
        self,
        provider: str,
        count: int,
        *,
        prefix: str | None = None,
        group: Sequence[str] = (),
        **fields: Any,
    ) -> list[str]:
        """Create `count` endpoints named `{prefix}{n:06d}` with the same put() fields;
        `group` is the leading key parts when the provider has them (a DataArts workspace)."""
        e = emulation(provider)
        if len(group) != len(e.groups):
            raise ValueError(f"{provider} bulk needs {', '.join(e.groups) or 'no group'}")
        prefix = f"{provider}-" if prefix is None else prefix
        ids = [f"{prefix}{n:06d}" for n in range(count)]
        put = self._stores[provider].put
        for endpoint_id in ids:
            put(*group, endpoint_id, **fields)
        return ids

    def seed(self, document: Mapping[str, Any]) -> None:
        """Load a seed document (the format in the package docstring)."""
        unknown = set(document) - {*EMULATIONS, "bulk", "faults"}
        if unknown:
            raise ValueError(f"unknown seed sections: {sorted(unknown)}")
        for name, e in EMULATIONS.items():
            self._seed(e, (), document.get(name) or {})
        for spec in document.get("bulk") or []:
            spec = dict(spec)
            e = emulation(spec.pop("provider"))
            self.bulk(
                e.name,
                int(spec.pop("count")),
                prefix=spec.pop("prefix", None),
                group=[str(spec.pop(part)) for part in e.groups],
                **dict(spec.pop("fields", None) or {}),
            )
            if spec:
                raise ValueError(f"unknown bulk keys: {sorted(spec)}")
        for fault in document.get("faults") or []:
            self._add(Fault(**fault))

    def _seed(self, e: Emulation[Any], parent: tuple[str, ...], entries: Any) -> None:
        # One nested mapping per key part: {workspace: {endpoint: fields}} for DataArts.
        if not isinstance(entries, Mapping):
            raise ValueError(f"seed section {'.'.join((e.name, *parent))} must be a mapping")
        store = self._stores[e.name]
        for key, value in entries.items():
            parts = (*parent, str(key))
            if len(parts) < len(e.key):
                store.create_group(*parts)
                self._seed(e, parts, value or {})
            else:
                store.put(*parts, **(value or {}))

    def load_seed(self, path: str | Path) -> None:
        """Load a seed file: JSON if it ends in .json, YAML otherwise."""
        text = Path(path).read_text()
        document = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        if document is None:
            return
        if not isinstance(document, Mapping):
            raise ValueError(f"{path}: the seed document must be a mapping")
        self.seed(document)

    def reset(self) -> None:
        """Forget all endpoints, faults, lifecycles and request counts (tokens stay)."""
        self.cancel_lifecycles()
        for store in self._stores.values():
            store.clear()
        self._hub.faults.clear()
        self._hub.accounting.reset()
        self._hub.changed.clear()

    # -- control API --------------------------------------------------------------------

    def _add_control_routes(self, app: web.Application) -> None:
        for method, path, handler in control.routes():
            app.router.add_route(method, control.PREFIX + path, _control(getattr(self, handler)))

    async def _c_info(self, _request: web.Request) -> Any:
        return self.info()

    async def _c_reset(self, _request: web.Request) -> Any:
        self.reset()
        return {"ok": True}

    async def _c_seed(self, request: web.Request) -> Any:
        self.seed(await _body(request))
        return {"ok": True}

    async def _c_bulk(self, request: web.Request) -> Any:
        body = dict(await _body(request))
        e = emulation(str(body.pop("provider", "")))
        ids = self.bulk(
            e.name,
            int(body.pop("count")),
            prefix=body.pop("prefix", None),
            group=[str(body.pop(part)) for part in e.groups],
            **dict(body.pop("fields", None) or {}),
        )
        if body:
            raise ValueError(f"unknown keys: {sorted(body)}")
        return {"count": len(ids), "first": ids[0] if ids else None}

    async def _c_set_token(self, request: web.Request) -> Any:
        body = await _body(request)
        token = body.get("token")
        if not isinstance(token, str):
            raise ValueError("body needs a string 'token'")
        expires_in = body.get("expires_in")
        if expires_in is not None and not isinstance(expires_in, int | float):
            raise ValueError("'expires_in' must be a number of seconds")
        self.set_token(request.match_info.get("provider"), token, expires_in)
        return {"ok": True}

    async def _c_set_access_key(self, request: web.Request) -> Any:
        body = await _body(request)
        access_key, secret_key = body.get("access_key"), body.get("secret_key")
        if not isinstance(access_key, str) or not isinstance(secret_key, str):
            raise ValueError("body needs strings 'access_key' and 'secret_key'")
        self.set_access_key(request.match_info["provider"], access_key, secret_key)
        return {"ok": True}

    async def _c_list_faults(self, _request: web.Request) -> Any:
        return {"faults": [f.to_json() for f in self.list_faults()]}

    async def _c_add_fault(self, request: web.Request) -> Any:
        body = dict(await _body(request))
        body.pop("id", None)
        return {"id": self._add(Fault(**body))}

    async def _c_clear_faults(self, request: web.Request) -> Any:
        provider = request.query.get("provider")
        if provider is not None:
            emulation(provider)
        return {"removed": self.clear_faults(provider, request.query.get("endpoint"))}

    async def _c_remove_fault(self, request: web.Request) -> Any:
        if not self.remove_fault(int(request.match_info["id"])):
            raise KeyError(request.match_info["id"])
        return {"ok": True}

    async def _c_active_lifecycles(self, _request: web.Request) -> Any:
        return {"active": self.active_lifecycles()}

    async def _c_lifecycle(self, request: web.Request) -> Any:
        body = await _body(request)
        steps: list[Step] = []
        for step in body.get("steps") or []:
            if isinstance(step, Mapping):
                after, update = step.get("after", 0), step.get("set")
            else:
                after, update = step
            if update is not None and not isinstance(update, Mapping):
                raise ValueError(f"step update must be an object or null: {step!r}")
            steps.append((float(after), update))
        e = emulation(str(body.get("provider")))
        key = [*(str(body[part]) for part in e.groups), str(body["key"])]
        return {"id": self.lifecycle(e.name, key, steps)}

    async def _c_cancel_lifecycles(self, _request: web.Request) -> Any:
        self.cancel_lifecycles()
        return {"ok": True}

    async def _c_cancel_lifecycle(self, request: web.Request) -> Any:
        if not self.cancel_lifecycle(int(request.match_info["id"])):
            raise KeyError(request.match_info["id"])
        return {"ok": True}

    async def _c_requests(self, request: web.Request) -> Any:
        q = request.query
        provider = q.get("provider")
        if provider is not None:
            emulation(provider)
        return {"count": self.requests(provider, q.get("endpoint"), path=q.get("path"))}

    async def _c_request_summary(self, _request: web.Request) -> Any:
        return self.request_summary()

    async def _c_reset_requests(self, _request: web.Request) -> Any:
        self.reset_requests()
        return {"ok": True}

    async def _c_changed_at(self, request: web.Request) -> Any:
        return {
            "changed_at": self.changed_at(request.match_info["provider"], request.match_info["key"])
        }

    async def _c_state(self, request: web.Request) -> Any:
        """/{provider}[/{key parts}]: a whole key is one endpoint (GET, PUT, PATCH, DELETE);
        fewer parts are a group (GET lists its ids, PUT creates it, DELETE removes it)."""
        e = emulation(request.match_info["provider"])
        store = self._stores[e.name]
        raw = request.match_info.get("key")
        parts = () if raw is None else tuple(raw.split("/"))
        method = request.method
        if len(parts) > len(e.key):
            raise KeyError(raw)
        if len(parts) < len(e.key):
            if method == "PUT" and parts:
                store.create_group(*parts)
            elif method == "DELETE" and parts:
                if not store.delete(*parts):
                    raise KeyError(raw)
                return {"ok": True}
            elif method != "GET":
                raise _MethodNotAllowed(method)
            return {"ids": store.ids(*parts)}
        if method == "PUT":
            return describe(store.put(*parts, **(await _body(request))))
        if method == "PATCH":
            return describe(store.patch(*parts, **(await _body(request))))
        if method == "DELETE":
            if not store.delete(*parts):
                raise KeyError(raw)
            return {"ok": True}
        if method == "GET":
            rec = store.get(*parts)
            if rec is None:
                raise KeyError(raw)
            return describe(rec)
        raise _MethodNotAllowed(method)

    def _add(self, fault: Fault) -> int:
        emulation(fault.provider)
        return self._hub.faults.add(fault)


def _key(e: Emulation[Any], key: Key) -> tuple[str, ...]:
    parts = (key,) if isinstance(key, str) else tuple(key)
    if len(parts) != len(e.key):
        raise ValueError(f"a {e.name} key is {', '.join(e.key)}; got {parts!r}")
    return parts


class _MethodNotAllowed(Exception):
    pass


def describe(record: Any) -> dict[str, Any]:
    data = cast(dict[str, Any], json.loads(json.dumps(dataclasses.asdict(record), default=str)))
    data.pop("rendered", None)
    return data


def _items(value: Any, where: str) -> list[tuple[Any, Any]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"seed section {where} must be a mapping")
    return list(value.items())


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the request body must be a JSON object")
    return data


def _control(
    handler: Callable[[web.Request], Awaitable[Any]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Turn a control handler's result or exception into a JSON reply."""

    async def serve(request: web.Request) -> web.StreamResponse:
        try:
            result = await handler(request)
        except KeyError as exc:
            return web.json_response({"error": f"not found: {exc.args[0]!s}"}, status=404)
        except _MethodNotAllowed as exc:
            return web.json_response({"error": f"method {exc} not allowed"}, status=405)
        except (TypeError, ValueError) as exc:
            # TypeError: an unknown keyword for put(); ValueError covers bad JSON too.
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result)

    return serve


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str = "emulator-token",
    seed: str | None = None,
    *,
    ready: Callable[[Emulator], None] | None = None,
) -> None:
    """Run an Emulator until cancelled (the `inferenceops-emulator` command).

    `seed` is a YAML or JSON seed file; `ready` is called with the running emulator, e.g. to
    print its URLs.
    """
    emu = Emulator(token=token, host=host, port=port)
    if seed is not None:
        emu.load_seed(seed)
    async with emu:
        log.info(
            "provider emulator listening on %s (control API %s)", emu.base_url, emu.control_url
        )
        if ready is not None:
            ready(emu)
        await asyncio.Event().wait()
