"""A typed client of the emulator's `/_emulator` control API, for tests, benchmarks and demos
that run the emulator as another process (in-process code uses `Emulator` directly). Each method
sends the operation of its name in control.OPERATIONS."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from .control import BY_NAME, PREFIX

#: `(seconds from now, fields to set)`; None deletes the endpoint.
Step = tuple[float, Mapping[str, Any] | None]


class EmulatorError(RuntimeError):
    """The control API answered something other than 2xx."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"emulator {method} {path}: HTTP {status} {text[:300]}")
        self.status = status


class EmulatorClient:
    """`provider` is the name of the provider's block in the spec (friendli, runpod, takeoff,
    nsModelServer, dataArtsFabric). `group` keywords are the leading parts of a grouped
    provider's key, e.g. `workspace="ws-1"` for dataArtsFabric."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, pid: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        #: The emulator's process id when a harness started it (benchmarks measure its CPU).
        self.pid = pid
        self._http = httpx.Client(base_url=f"{self.base_url}{PREFIX}", timeout=timeout)

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        operation: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        **path: str | None,
    ) -> Any:
        op = BY_NAME[operation]
        method, url = op.method, op.path(**path)
        response = self._http.request(method, url, json=body, params=params)
        if not response.is_success:
            raise EmulatorError(method, url, response.status_code, response.text)
        return response.json() if response.content else None

    # -- the server ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The providers and their URLs."""
        return dict(self._call("info"))

    def reset(self) -> None:
        """Forget all endpoints, faults, lifecycles and request counts (tokens stay)."""
        self._call("reset")

    def seed(self, document: Mapping[str, Any]) -> None:
        self._call("seed", dict(document))

    def bulk(
        self,
        provider: str,
        count: int,
        *,
        prefix: str | None = None,
        fields: Mapping[str, Any] | None = None,
        **group: str,
    ) -> int:
        body = {"provider": provider, "count": count, "prefix": prefix, "fields": fields, **group}
        return int(self._call("bulk", body)["count"])

    def set_token(
        self, provider: str | None, token: str, *, expires_in: float | None = None
    ) -> None:
        """Accept only `token` from now on, for one provider or (None) every provider; with
        `expires_in`, only for that many seconds (an emulated IAM token expiry)."""
        body: dict[str, Any] = {"token": token}
        if expires_in is not None:
            body["expires_in"] = expires_in
        self._call("set_token", body, provider=provider)

    def set_access_key(self, provider: str, access_key: str, secret_key: str) -> None:
        """Also accept requests signed with this access key pair (dataArtsFabric)."""
        body = {"access_key": access_key, "secret_key": secret_key}
        self._call("set_access_key", body, provider=provider)

    # -- endpoint state -----------------------------------------------------------------

    def put(self, provider: str, *key: str, **fields: Any) -> dict[str, Any]:
        """Create or replace an endpoint; `fields` are the provider store's put() keywords."""
        return dict(self._call("put", fields, provider=provider, key="/".join(key)))

    def patch(self, provider: str, *key: str, **fields: Any) -> dict[str, Any]:
        return dict(self._call("patch", fields, provider=provider, key="/".join(key)))

    def get(self, provider: str, *key: str) -> dict[str, Any]:
        return dict(self._call("get", provider=provider, key="/".join(key)))

    def delete(self, provider: str, *key: str) -> None:
        self._call("delete", provider=provider, key="/".join(key))

    def ids(self, provider: str, *group: str) -> list[str]:
        return list(self._call("ids", provider=provider, key="/".join(group) or None)["ids"])

    def changed_at(self, provider: str, key: str) -> float:
        """time.time() of the endpoint's last change (DataArts: by endpoint id)."""
        return float(self._call("changed_at", provider=provider, key=key)["changed_at"])

    # -- faults -------------------------------------------------------------------------

    def add_fault(self, provider: str, kind: str, **options: Any) -> int:
        """kind: status, slow, garbage or huge; options as in the package docstring."""
        return int(self._call("add_fault", {"provider": provider, "kind": kind, **options})["id"])

    def fail(self, provider: str, status: int, **options: Any) -> int:
        return self.add_fault(provider, "status", status=status, **options)

    def slow(self, provider: str, seconds: float, **options: Any) -> int:
        return self.add_fault(provider, "slow", seconds=seconds, **options)

    def garbage(self, provider: str, mode: str = "html", **options: Any) -> int:
        return self.add_fault(provider, "garbage", mode=mode, **options)

    def huge(self, provider: str, **options: Any) -> int:
        return self.add_fault(provider, "huge", **options)

    def list_faults(self) -> list[dict[str, Any]]:
        return list(self._call("list_faults")["faults"])

    def remove_fault(self, fault_id: int) -> None:
        self._call("remove_fault", id=str(fault_id))

    def clear_faults(self, provider: str | None = None, endpoint: str | None = None) -> int:
        params = {k: v for k, v in (("provider", provider), ("endpoint", endpoint)) if v}
        return int(self._call("clear_faults", params=params)["removed"])

    # -- lifecycles ---------------------------------------------------------------------

    def lifecycle(self, provider: str, key: str, steps: Sequence[Step], **group: str) -> int:
        body = {
            "provider": provider,
            "key": key,
            "steps": [[after, None if update is None else dict(update)] for after, update in steps],
            **group,
        }
        return int(self._call("lifecycle", body)["id"])

    def active_lifecycles(self) -> list[int]:
        return list(self._call("active_lifecycles")["active"])

    def cancel_lifecycles(self) -> None:
        self._call("cancel_lifecycles")

    def cancel_lifecycle(self, lifecycle_id: int) -> None:
        self._call("cancel_lifecycle", id=str(lifecycle_id))

    # -- requests -----------------------------------------------------------------------

    def requests(
        self, provider: str | None = None, endpoint: str | None = None, path: str | None = None
    ) -> int:
        """Provider requests received, faulted and rejected ones included."""
        filters = (("provider", provider), ("endpoint", endpoint), ("path", path))
        params = {k: v for k, v in filters if v is not None}
        return int(self._call("requests", params=params)["count"])

    def request_summary(self) -> dict[str, Any]:
        """Totals by provider, endpoint, path and client."""
        return dict(self._call("request_summary"))

    def reset_requests(self) -> None:
        self._call("reset_requests")

    # The names these methods had before they took `Emulator`'s (and the table's); kept for
    # the callers written against them.
    faults = list_faults
    lifecycles = active_lifecycles
    summary = request_summary
