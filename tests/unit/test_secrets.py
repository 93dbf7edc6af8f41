"""kube.secrets.SecretCache: once bound to a watch it holds only the Secrets some endpoint
references, reads one the watch passed by with a single GET, and reports changes and deletions.
The real API server path (a Secret deleted while the watch is down, 1,000 unrelated large
Secrets) is in tests/integration/test_kube_side.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from typing import Any

import pytest

from inferenceops.kube.secrets import SecretCache, SecretMissing, SecretPending
from inferenceops.providers import SecretKeyRef

REF = SecretKeyRef(name="creds", key="token")


def _secret(name: str, value: str, namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }


class Api:
    """A fetch function serving `secrets`, counting its calls."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.calls = 0

    async def fetch(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        self.calls += 1
        await asyncio.sleep(0)
        return self.secrets.get((namespace, name))


def _bound() -> tuple[SecretCache, Api, list[tuple[str, str]]]:
    api, changed = Api(), []
    cache = SecretCache(api.fetch, lambda namespace, name: changed.append((namespace, name)))
    return cache, api, changed


def test_unbound_it_holds_what_it_is_given() -> None:
    cache = SecretCache()
    cache.observe(None, _secret("creds", "t1"))
    assert cache.lookup("ns", REF) == "t1"


def test_bound_it_holds_only_wanted_secrets() -> None:
    cache, api, changed = _bound()
    cache.want("ns", "creds")
    for i in range(1000):  # a cluster's unrelated Secrets: names kept, material not
        cache.observe(None, _secret(f"tls-{i}", "x" * 50_000))
    cache.observe(None, _secret("creds", "t1"))
    assert len(cache) == 1
    assert cache.lookup("ns", REF) == "t1"
    assert changed == [("ns", "creds")]
    assert api.calls == 0

    cache.observe("MODIFIED", _secret("creds", "t1"))  # unchanged: nobody is told
    assert changed == [("ns", "creds")]
    cache.unwant("ns", "creds")
    assert len(cache) == 0


async def test_a_secret_the_watch_passed_by_is_read_once() -> None:
    cache, api, changed = _bound()
    cache.observe(None, _secret("creds", "t1"))  # listed before any endpoint wanted it
    assert len(cache) == 0
    api.secrets[("ns", "creds")] = _secret("creds", "t2")
    cache.want("ns", "creds")
    cache.want("ns", "creds")  # a second endpoint: no second read
    with pytest.raises(SecretPending):
        cache.lookup("ns", REF)
    for _ in range(5):
        await asyncio.sleep(0)
    assert cache.lookup("ns", REF) == "t2"
    assert changed == [("ns", "creds")]
    assert api.calls == 1
    cache.unwant("ns", "creds")
    assert cache.lookup("ns", REF) == "t2"  # still wanted once
    cache.unwant("ns", "creds")
    assert len(cache) == 0


async def test_a_secret_gone_when_read_is_missing() -> None:
    cache, _api, changed = _bound()
    cache.observe(None, _secret("creds", "t1"))
    cache.want("ns", "creds")  # deleted meanwhile: the read finds nothing
    for _ in range(5):
        await asyncio.sleep(0)
    with pytest.raises(SecretMissing) as caught:
        cache.lookup("ns", REF)
    assert not isinstance(caught.value, SecretPending)
    assert changed == [("ns", "creds")]


def test_deletion_is_reported() -> None:
    cache, _api, changed = _bound()
    cache.want("ns", "creds")
    cache.observe(None, _secret("creds", "t1"))
    cache.observe("DELETED", {"metadata": {"namespace": "ns", "name": "creds"}})
    with pytest.raises(SecretMissing, match="not found"):
        cache.lookup("ns", REF)
    assert changed == [("ns", "creds"), ("ns", "creds")]
