"""A typed client of the emulator's `/_emulator` control API, for tests, benchmarks and demos
that run the emulator as another process (in-process code uses `Emulator` directly)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

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
        self._http = httpx.Client(base_url=f"{self.base_url}/_emulator", timeout=timeout)

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
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        if not response.is_success:
            raise EmulatorError(method, path, response.status_code, response.text)
        return response.json() if response.content else None

    # -- the server ---------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The providers and their URLs."""
        return dict(self._call("GET", "/"))

    def reset(self) -> None:
        """Forget all endpoints, faults, lifecycles and request counts (tokens stay)."""
        self._call("POST", "/reset")

    def seed(self, document: Mapping[str, Any]) -> None:
        self._call("POST", "/seed", dict(document))

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
        return int(self._call("POST", "/bulk", body)["count"])

    def set_token(
        self, provider: str | None, token: str, *, expires_in: float | None = None
    ) -> None:
        """Accept only `token` from now on, for one provider or (None) every provider; with
        `expires_in`, only for that many seconds (an emulated IAM token expiry)."""
        body: dict[str, Any] = {"token": token}
        if expires_in is not None:
            body["expires_in"] = expires_in
        self._call("PUT", "/tokens" if provider is None else f"/tokens/{provider}", body)

    def set_access_key(self, provider: str, access_key: str, secret_key: str) -> None:
        """Also accept requests signed with this access key pair (dataArtsFabric)."""
        body = {"access_key": access_key, "secret_key": secret_key}
        self._call("PUT", f"/access-keys/{provider}", body)

    # -- endpoint state -----------------------------------------------------------------

    def put(self, provider: str, *key: str, **fields: Any) -> dict[str, Any]:
        """Create or replace an endpoint; `fields` are the provider store's put() keywords."""
        return dict(self._call("PUT", _path(provider, key), fields))

    def patch(self, provider: str, *key: str, **fields: Any) -> dict[str, Any]:
        return dict(self._call("PATCH", _path(provider, key), fields))

    def get(self, provider: str, *key: str) -> dict[str, Any]:
        return dict(self._call("GET", _path(provider, key)))

    def delete(self, provider: str, *key: str) -> None:
        self._call("DELETE", _path(provider, key))

    def ids(self, provider: str, *group: str) -> list[str]:
        return list(self._call("GET", _path(provider, group))["ids"])

    def changed_at(self, provider: str, key: str) -> float:
        """time.time() of the endpoint's last change (DataArts: by endpoint id)."""
        return float(self._call("GET", f"/changed_at/{provider}/{key}")["changed_at"])

    # -- faults -------------------------------------------------------------------------

    def add_fault(self, provider: str, kind: str, **options: Any) -> int:
        """kind: status, slow, garbage or huge; options as in the package docstring."""
        return int(
            self._call("POST", "/faults", {"provider": provider, "kind": kind, **options})["id"]
        )

    def fail(self, provider: str, status: int, **options: Any) -> int:
        return self.add_fault(provider, "status", status=status, **options)

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def remove_fault(self, fault_id: int) -> None:
        self._call("DELETE", f"/faults/{fault_id}")

    def clear_faults(self, provider: str | None = None, endpoint: str | None = None) -> int:
        params = {k: v for k, v in (("provider", provider), ("endpoint", endpoint)) if v}
        return int(self._call("DELETE", "/faults", params=params)["removed"])

    # -- lifecycles ---------------------------------------------------------------------

    def lifecycle(self, provider: str, key: str, steps: Sequence[Step], **group: str) -> int:
        body = {
            "provider": provider,
            "key": key,
            "steps": [[after, None if update is None else dict(update)] for after, update in steps],
            **group,
        }
        return int(self._call("POST", "/lifecycles", body)["id"])

    def lifecycles(self) -> list[int]:
        return list(self._call("GET", "/lifecycles")["active"])

    def cancel_lifecycles(self) -> None:
        self._call("DELETE", "/lifecycles")

    # -- requests -----------------------------------------------------------------------

    def requests(
        self, provider: str | None = None, endpoint: str | None = None, path: str | None = None
    ) -> int:
        """Provider requests received, faulted and rejected ones included."""
        filters = (("provider", provider), ("endpoint", endpoint), ("path", path))
        params = {k: v for k, v in filters if v is not None}
        return int(self._call("GET", "/requests", params=params)["count"])

    def summary(self) -> dict[str, Any]:
        """Totals by provider, endpoint, path and client."""
        return dict(self._call("GET", "/requests/summary"))

    def reset_requests(self) -> None:
        self._call("DELETE", "/requests")


def _path(provider: str, key: Sequence[str]) -> str:
    return "/".join((f"/{provider}", *key))
