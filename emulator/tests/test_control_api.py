"""The control API is declared once (control.OPERATIONS): the server serves exactly its routes,
`EmulatorClient` has exactly its operations with their parameters, and `Emulator` runs each
under the same name. Names used to drift (summary / request_summary, faults / list_faults,
lifecycles / active_lifecycles) and a route had no client method (DELETE /lifecycles/{id})."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from typing import Any

import httpx

from inferenceops_emulator import Emulator, EmulatorClient
from inferenceops_emulator.control import FAULT_SHORTHANDS, OPERATIONS, PREFIX, routes
from inferenceops_emulator.registry import EMULATIONS

OWN = {"close"}  # the client's own, not the API's


def _public(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: value
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_")
    }


def _params(function: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(p for p in inspect.signature(function).parameters if p != "self")


def test_every_operation_has_a_client_method_with_its_parameters_and_back() -> None:
    methods = _public(EmulatorClient)
    names = [op.name for op in OPERATIONS]
    assert len(set(names)) == len(names)
    for op in OPERATIONS:
        assert op.name in methods, f"EmulatorClient has no {op.name}() for {op.method} {op.paths}"
        assert _params(methods[op.name]) == op.params, op.name
    operations = {methods[name] for name in names}
    extra = {
        name
        for name, method in methods.items()
        if name not in names
        and name not in FAULT_SHORTHANDS
        and name not in OWN
        and method not in operations  # an old name kept as an alias of the operation's
    }
    assert extra == set(), f"client methods that send no operation of the table: {extra}"
    # The old names still work, as the very same methods.
    client = EmulatorClient
    assert client.summary is client.request_summary
    assert client.faults is client.list_faults
    assert client.lifecycles is client.active_lifecycles


def test_the_emulator_runs_each_operation_under_the_same_name() -> None:
    emulator = Emulator()  # not started: only its methods and stores are looked at
    for op in OPERATIONS:
        if op.runs_on == "store":
            for provider in EMULATIONS:
                store = emulator.store(provider)
                assert callable(getattr(store, op.name, None)), f"{provider} store {op.name}"
        else:
            assert callable(getattr(Emulator, op.name, None)), f"Emulator.{op.name}"
    for name in FAULT_SHORTHANDS:
        assert callable(getattr(Emulator, name)) and callable(getattr(EmulatorClient, name))
    handlers = {name for name in vars(Emulator) if name.startswith("_c_")}
    assert handlers == {op.server_handler for op in OPERATIONS}


def _example(path: str) -> str:
    """The path with its placeholders filled in with a provider and made-up ids."""
    values = {"provider": "friendli", "key": "no-such", "id": "999"}
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: values[m.group(1)], path)


async def test_the_server_serves_exactly_the_table() -> None:
    async with Emulator() as emu, httpx.AsyncClient(base_url=emu.base_url, timeout=10) as http:
        # Every route of the table reaches a control handler: its answer is the control API's
        # JSON (a result, or {"error"} with 400/404/405), never aiohttp's "no such route".
        for method, path, handler in routes():
            for m in ("GET", "PUT", "PATCH", "DELETE") if method == "*" else (method,):
                body = {} if m in ("POST", "PUT", "PATCH") else None
                r = await http.request(m, PREFIX + _example(path), json=body)
                assert r.headers["Content-Type"].startswith("application/json"), (m, path)
                assert "error" in r.json() or r.is_success, (m, path, handler, r.text)
        # ...and nothing else is served under the prefix.
        for method, path in [
            ("GET", "/no-such-operation"),
            ("POST", "/requests/summary"),
            ("PATCH", "/faults"),
            ("GET", "/nosuchprovider/x"),
        ]:
            r = await http.request(method, PREFIX + path)
            assert r.status_code in (404, 405)
            assert not r.headers["Content-Type"].startswith("application/json"), (method, path)


async def test_the_client_reaches_the_operations_whose_paths_it_chooses() -> None:
    """Paths with optional parts, several parts of a key, ids in the path, and the operations
    the client lacked or named otherwise."""
    async with Emulator() as emu:
        client = EmulatorClient(emu.base_url, timeout=10)
        call = asyncio.to_thread  # the client blocks; the emulator serves on this loop
        try:
            await call(client.set_token, None, "every")
            await call(client.set_token, "runpod", "one")
            assert (emu.token("friendli"), emu.token("runpod")) == ("every", "one")
            await call(client.put, "dataArtsFabric", "ws-1", "ep-1", status="CREATING")
            await call(client.patch, "dataArtsFabric", "ws-1", "ep-1", status="RUNNING")
            assert await call(client.ids, "dataArtsFabric") == ["ws-1"]
            assert await call(client.ids, "dataArtsFabric", "ws-1") == ["ep-1"]
            record = emu.store("dataArtsFabric").get("ws-1", "ep-1")
            assert record is not None and record.status == "RUNNING"

            fault = await call(client.slow, "friendli", 2.0, times=1)
            assert [f["id"] for f in await call(client.list_faults)] == [fault]
            assert [f.kind for f in emu.list_faults()] == ["slow"]
            await call(client.remove_fault, fault)
            assert emu.list_faults() == []

            lifecycle = emu.lifecycle("dataArtsFabric", ("ws-1", "ep-1"), [(60, None)])
            assert await call(client.active_lifecycles) == [lifecycle]
            await call(client.cancel_lifecycle, lifecycle)
            assert emu.active_lifecycles() == []
            assert (await call(client.request_summary))["total"] == 0
        finally:
            client.close()
