"""A provider object's inventory (inventory.py, issue 25): one listing per account per interval
through the account's budget, counts against the endpoints using the object, written only on
change, and a clear message where the account cannot be listed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from inferenceops.accounts import AccountPool
from inferenceops.inventory import Inventory
from inferenceops.kube.secrets import SecretCache
from inferenceops.provider_objects import ObjectKey, ProviderObjects
from inferenceops.provider_status import ProviderStatus

from .support import CREDS, TOKEN, FakeSink, ManualClock, obj, token

KEY: ObjectKey = ("InferenceProvider", "ml", "acct")
INVENTORY = {"inventory": {"interval": "10m"}}


class FriendliAccount:
    """A Friendli list of `ids`, 100 a page, counting its requests."""

    def __init__(self, count: int) -> None:
        self.ids = [f"ep-{n:03d}" for n in range(count)]
        self.requests = 0
        self.status = 200
        #: What a page holds, whatever `limit` asked for (a hostile server's is larger).
        self.page_size = 100

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        if self.status != 200:
            return httpx.Response(self.status, json={"detail": f"no {TOKEN}"})
        offset = int(request.url.params.get("cursor") or 0)
        page = self.ids[offset : offset + self.page_size]
        more = offset + self.page_size < len(self.ids)
        data = {i: {"status": "RUNNING", "createdAt": "2026-01-01T00:00:00Z"} for i in page}
        cursor = str(offset + self.page_size) if more else None
        return httpx.Response(200, json={"data": data, "nextCursor": cursor})


class Setup:
    def __init__(self, spec: dict[str, Any], count: int = 250) -> None:
        self.account = FriendliAccount(count)
        self.objects = ProviderObjects()
        self.objects.observe_namespaced(None, obj("InferenceProvider", "acct", spec))
        self.secrets = SecretCache()
        self.secrets.put("ml", "creds", token())
        self.clock = ManualClock(0.0)
        self.users: list[Mapping[str, Any]] = []
        self.changes = 0
        self.pool = AccountPool(transport=httpx.MockTransport(self.account), clock=self.clock)
        self.inventory = Inventory(
            self.objects,
            self.pool,
            self.secrets,
            lambda key: self.users,
            self._changed,
            clock=self.clock,
        )
        self.sink = FakeSink()
        self.status = ProviderStatus(
            self.objects, lambda key: [], self.sink, clock=self.clock, inventory=self.inventory
        )

    def _changed(self) -> None:
        self.changes += 1

    def declare(self, *ids: str) -> None:
        self.users = [
            {"spec": {"providerRef": {"name": "acct"}, "friendli": {"endpointId": i}}} for i in ids
        ]

    def shown(self) -> dict[str, Any]:
        return dict(self.objects.status(KEY).get("inventory") or {})


def friendli(**extra: Any) -> dict[str, Any]:
    return {"friendli": {"url": "https://friendli.test", "credentialsSecretRef": CREDS}, **extra}


async def test_counts_unmanaged_endpoints_and_lists_once_per_interval() -> None:
    s = Setup(friendli(**INVENTORY))
    s.declare(*[f"ep-{n:03d}" for n in range(5)], "elsewhere")
    assert await s.inventory.sweep() == 1
    assert s.account.requests == 3  # 250 endpoints, 100 a page
    assert await s.status.sync() == 1
    shown = s.shown()
    assert shown["remoteEndpoints"] == 250
    assert shown["watchedEndpoints"] == 5
    assert shown["unmanagedEndpoints"] == 245
    assert shown["unmanagedIds"] == [f"ep-{n:03d}" for n in range(5, 25)]
    assert "message" not in shown
    first_listed = shown["lastListTime"]

    s.clock.advance(599)
    assert await s.inventory.sweep() == 0  # not due yet: no request
    assert s.account.requests == 3
    s.clock.advance(2)
    assert await s.inventory.sweep() == 1
    assert s.account.requests == 6
    assert await s.status.sync() == 0  # the same numbers: nothing written
    assert s.shown()["lastListTime"] == first_listed


async def test_updates_when_an_endpoint_is_declared_or_deleted_remotely() -> None:
    s = Setup(friendli(**INVENTORY))
    await s.inventory.sweep()
    await s.status.sync()
    assert s.shown()["unmanagedEndpoints"] == 250
    s.declare("ep-000")
    assert await s.status.sync() == 1  # no new listing needed for a declaration
    assert s.shown()["watchedEndpoints"] == 1
    assert s.shown()["unmanagedIds"][0] == "ep-001"
    s.account.ids.remove("ep-001")
    s.clock.advance(600)
    await s.inventory.sweep()
    assert await s.status.sync() == 1
    assert s.shown()["remoteEndpoints"] == 249
    assert s.shown()["unmanagedEndpoints"] == 248


async def test_a_failed_listing_says_why_and_keeps_the_last_counts() -> None:
    s = Setup(friendli(**INVENTORY))
    await s.inventory.sweep()
    s.account.status = 401
    s.clock.advance(600)
    await s.inventory.sweep()
    await s.status.sync()
    shown = s.shown()
    assert shown["remoteEndpoints"] == 250
    assert shown["message"].startswith("listing failed: Unauthorized")
    assert TOKEN not in str(s.sink.patches)


async def test_without_spec_inventory_nothing_is_listed_or_shown() -> None:
    s = Setup(friendli())
    assert await s.inventory.sweep() == 0
    assert s.account.requests == 0
    await s.status.sync()
    assert "inventory" not in s.objects.status(KEY)


async def test_a_provider_that_cannot_list_says_so_without_a_request() -> None:
    for spec, said in (
        ({"nsModelServer": {}, **INVENTORY}, "one endpoint"),
        ({"takeoff": {}, **INVENTORY}, "no inventory"),
    ):
        s = Setup(spec)
        await s.inventory.sweep()
        await s.status.sync()
        assert said in s.shown()["message"]
        assert s.account.requests == 0


async def test_the_listing_spends_the_objects_own_budget() -> None:
    s = Setup(friendli(**INVENTORY, **{}))
    s.objects.observe_namespaced(
        None,
        obj(
            "InferenceProvider",
            "acct",
            {
                "friendli": {
                    "url": "https://friendli.test",
                    "credentialsSecretRef": CREDS,
                    "requestsPerSecond": 2,
                },
                **INVENTORY,
            },
        ),
    )
    await s.inventory.sweep()
    ((_, account),) = list(s.pool._accounts.items())
    assert account.bucket.rate == 2


async def test_a_cluster_provider_reads_its_secret_namespace_or_says_why_not() -> None:
    s = Setup(friendli())
    cluster_spec = {**friendli(**INVENTORY), "secretNamespace": "vault"}
    s.objects = ProviderObjects(frozenset({"vault"}))
    s.objects.observe_cluster(None, obj("ClusterInferenceProvider", "shared", cluster_spec))
    s.secrets.put("vault", "creds", token())
    s.inventory = Inventory(
        s.objects, s.pool, s.secrets, lambda key: [], lambda: None, clock=s.clock
    )
    key: ObjectKey = ("ClusterInferenceProvider", "", "shared")
    assert await s.inventory.sweep() == 1
    assert s.inventory.status(key, None)["remoteEndpoints"] == 250  # type: ignore[index]

    s.objects.cluster_secret_namespaces = frozenset({"elsewhere"})
    s.clock.advance(600)
    requests = s.account.requests
    await s.inventory.sweep()
    assert s.account.requests == requests  # refused: nothing read, nothing sent
    shown = s.inventory.status(key, None) or {}
    assert shown["message"].startswith("SecretNamespaceNotAllowed")


async def test_a_missing_secret_is_looked_for_again_within_a_minute() -> None:
    s = Setup(friendli(**INVENTORY))
    s.secrets.delete("ml", "creds")
    await s.inventory.sweep()
    assert s.account.requests == 0
    assert (s.inventory.status(KEY, None) or {})["message"].startswith("SecretMissing")
    s.secrets.put("ml", "creds", token())
    s.clock.advance(60)
    await s.inventory.sweep()
    assert s.account.requests == 3
    assert "message" not in (s.inventory.status(KEY, None) or {})


async def test_a_restart_keeps_the_shown_inventory_until_its_first_listing() -> None:
    s = Setup(friendli(**INVENTORY))
    await s.inventory.sweep()
    await s.status.sync()
    shown = s.shown()
    restarted = Inventory(s.objects, s.pool, s.secrets, lambda key: s.users, lambda: None)
    assert restarted.status(KEY, shown) == shown  # nothing to write before it has listed
    s.inventory = restarted
    await restarted.sweep()
    assert restarted.status(KEY, shown) == shown  # the same numbers: the same status


async def test_a_changed_spec_is_listed_at_once_and_a_deleted_object_forgotten() -> None:
    s = Setup(friendli(**INVENTORY))
    await s.inventory.sweep()
    assert s.account.requests == 3
    s.clock.advance(10)
    spec = friendli(inventory={"interval": "30m"})
    s.objects.observe_namespaced(None, obj("InferenceProvider", "acct", spec))
    assert await s.inventory.sweep() == 1  # not waiting out the old interval
    assert s.account.requests == 6
    s.objects.observe_namespaced("DELETED", obj("InferenceProvider", "acct", spec))
    await s.inventory.sweep()
    assert s.inventory.status(KEY, None) is None
    assert s.inventory._wanted == {} and s.inventory._due == {}


async def test_an_account_listing_more_than_10000_endpoints_says_so() -> None:
    s = Setup(friendli(**INVENTORY), count=10_050)
    s.account.page_size = 5_000
    await s.inventory.sweep()
    shown = s.inventory.status(KEY, None) or {}
    assert "remoteEndpoints" not in shown
    assert "more than 10000 endpoints" in shown["message"]
