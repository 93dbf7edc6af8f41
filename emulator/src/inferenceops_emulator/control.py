"""The `/_emulator` control API in one table: each operation's name, HTTP method, paths and
parameters. The server registers its routes from it, `EmulatorClient` sends its requests by it,
and a test holds both (and `Emulator`'s methods of the same names) to it.

An operation's name is the `EmulatorClient` method that sends it, the `Emulator` method it runs
(`StateStore`'s for the state operations) and the server's handler `_c_<name>` (`_c_<handler>`
where several operations share one). Paths are aiohttp's syntax, under PREFIX; the client
sends an operation to the path whose {parameters} it was given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .registry import EMULATIONS

PREFIX = "/_emulator"
#: A provider by the name of its block in the spec (only these: state paths must not shadow
#: /faults, /requests and the rest).
_PROVIDER = "{provider:" + "|".join(EMULATIONS) + "}"
#: The whole key or its leading parts, joined by "/" (DataArts: workspace/endpoint id).
_KEY = "{key:.+}"
_PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    method: str
    paths: tuple[str, ...]
    #: The client method's parameters, in order: path ones, then body or query fields; a
    #: `**name` gathers the leading key parts (workspace=) or the provider store's fields.
    params: tuple[str, ...] = ()
    #: The server's handler when not `_c_<name>` (it dispatches on the method itself).
    handler: str = ""
    #: `Emulator` runs it in-process ("emulator"), or the provider's `StateStore` ("store").
    runs_on: str = "emulator"

    @property
    def server_handler(self) -> str:
        return f"_c_{self.handler or self.name}"

    def path(self, **values: str | None) -> str:
        """The path to send to: the one whose placeholders are exactly the given values."""
        given = {k: v for k, v in values.items() if v is not None}
        for path in self.paths:
            if set(_PLACEHOLDER.findall(path)) == set(given):
                return _PLACEHOLDER.sub(lambda m: given[m.group(1)], path)
        raise ValueError(f"{self.name}: no path with exactly {sorted(given)}")


_STATE = "/" + _PROVIDER + "/" + _KEY

OPERATIONS: tuple[Operation, ...] = (
    # -- the server
    Operation("info", "GET", ("/", "")),  # {"providers", "urls"}
    Operation("reset", "POST", ("/reset",)),
    Operation("seed", "POST", ("/seed",), ("document",)),  # body: a seed document
    # {provider, count, prefix?, workspace?, fields?} -> {"count", "first"}
    Operation("bulk", "POST", ("/bulk",), ("provider", "count", "prefix", "fields", "group")),
    # {"token", "expires_in"?}; no provider: every provider
    Operation(
        "set_token", "PUT", ("/tokens", "/tokens/{provider}"), ("provider", "token", "expires_in")
    ),
    Operation(
        "set_access_key",
        "PUT",
        ("/access-keys/{provider}",),
        ("provider", "access_key", "secret_key"),
    ),
    # -- faults
    Operation("list_faults", "GET", ("/faults",)),  # {"faults": [...]}
    # {provider, kind, endpoint?, times?, status?, retry_after?, seconds?, mode?, size?, body?}
    Operation("add_fault", "POST", ("/faults",), ("provider", "kind", "options")),
    # ?provider=&endpoint= -> {"removed"}
    Operation("clear_faults", "DELETE", ("/faults",), ("provider", "endpoint")),
    Operation("remove_fault", "DELETE", ("/faults/{id}",), ("fault_id",)),
    # -- lifecycles
    Operation("active_lifecycles", "GET", ("/lifecycles",)),  # {"active": [ids]}
    # {provider, key, workspace?, steps: [[after, {...} | null], ...] or [{"after", "set"}]}
    Operation("lifecycle", "POST", ("/lifecycles",), ("provider", "key", "steps", "group")),
    Operation("cancel_lifecycles", "DELETE", ("/lifecycles",)),
    Operation("cancel_lifecycle", "DELETE", ("/lifecycles/{id}",), ("lifecycle_id",)),
    # -- requests
    # ?provider=&endpoint=&path= -> {"count"}
    Operation("requests", "GET", ("/requests",), ("provider", "endpoint", "path")),
    Operation("request_summary", "GET", ("/requests/summary",)),  # by provider, endpoint, path
    Operation("reset_requests", "DELETE", ("/requests",)),
    # {"changed_at": epoch seconds}
    Operation("changed_at", "GET", ("/changed_at/{provider}/{key}",), ("provider", "key")),
    # -- endpoint state: a whole key is one endpoint (body: the store's put() fields); fewer
    # parts are a group (DataArts: /dataArtsFabric/{ws}; GET lists its ids, PUT creates it,
    # DELETE removes it)
    Operation("get", "GET", (_STATE,), ("provider", "key"), "state", "store"),
    Operation("put", "PUT", (_STATE,), ("provider", "key", "fields"), "state", "store"),
    Operation("patch", "PATCH", (_STATE,), ("provider", "key", "fields"), "state", "store"),
    Operation("delete", "DELETE", (_STATE,), ("provider", "key"), "state", "store"),
    # {"ids": [...]} (DataArts: the workspaces, or a workspace's endpoints)
    Operation("ids", "GET", ("/" + _PROVIDER, _STATE), ("provider", "group"), "state", "store"),
)

BY_NAME: Mapping[str, Operation] = {op.name: op for op in OPERATIONS}

#: Conveniences over add_fault, on `Emulator` and `EmulatorClient` alike: not operations.
FAULT_SHORTHANDS = ("fail", "slow", "garbage", "huge")


def routes() -> list[tuple[str, str, str]]:
    """(method, path under PREFIX, handler) for every route: "*" where one handler answers
    several operations on one path (it answers 405 for the rest itself)."""
    methods: dict[tuple[str, str], set[str]] = {}
    for op in OPERATIONS:
        for path in op.paths:
            methods.setdefault((path, op.server_handler), set()).add(op.method)
    return [
        (next(iter(ms)) if len(ms) == 1 else "*", path, handler)
        for (path, handler), ms in methods.items()
    ]
