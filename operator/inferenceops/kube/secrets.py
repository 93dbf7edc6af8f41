"""Credentials from Secrets, kept in memory by a watch so a poll costs no Secret read.

Only what a credential can be is kept: the decoded keys of Secrets in watched namespaces.
Helm release and service-account-token Secrets are filtered out server-side (see handlers).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from ..providers import SecretKeyRef
from .client import ApiSession

__all__ = ["SecretCache", "SecretMissing", "prime"]


class SecretMissing(LookupError):
    """The referenced Secret or key does not exist (yet); the message says which."""


class SecretCache:
    def __init__(self) -> None:
        self._data: dict[tuple[str, str], dict[str, str]] = {}

    def __len__(self) -> int:
        return len(self._data)

    def put(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, Any] | None,
        string_data: Mapping[str, Any] | None = None,
    ) -> None:
        decoded: dict[str, str] = {}
        for key, value in (data or {}).items():
            try:
                decoded[key] = base64.b64decode(str(value), validate=True).decode().strip()
            except (binascii.Error, UnicodeDecodeError):
                continue  # not text: cannot be an HTTP credential
        for key, value in (string_data or {}).items():
            decoded[key] = str(value).strip()
        self._data[(namespace, name)] = decoded

    def delete(self, namespace: str, name: str) -> None:
        self._data.pop((namespace, name), None)

    def lookup(self, namespace: str, ref: SecretKeyRef) -> str:
        data = self._data.get((namespace, ref.name))
        if data is None:
            raise SecretMissing(f"Secret {namespace}/{ref.name} not found")
        value = data.get(ref.key)
        if not value:
            raise SecretMissing(
                f"Secret {namespace}/{ref.name} has no key {ref.key!r}"
                if value is None
                else f"Secret {namespace}/{ref.name} key {ref.key!r} is empty"
            )
        return value


async def prime(
    api: ApiSession, cache: SecretCache, namespaces: Sequence[str], field_selector: str
) -> int:
    """List Secrets once before the watches start, so the first polls after a restart never see a
    half-filled cache and report a false SecretMissing. Returns how many were loaded."""
    paths = [f"/api/v1/namespaces/{ns}/secrets" for ns in namespaces] or ["/api/v1/secrets"]
    loaded = 0
    for path in paths:
        token: str | None = None
        while True:
            params = {"limit": "500", "fieldSelector": field_selector}
            if token:
                params["continue"] = token
            page = await api.get_json(path, params)
            for item in page.get("items") or []:
                meta = item.get("metadata") or {}
                cache.put(meta.get("namespace", ""), meta.get("name", ""), item.get("data"))
                loaded += 1
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
    return loaded
