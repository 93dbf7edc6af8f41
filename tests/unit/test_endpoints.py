"""endpoints: what exists, and ReverseIndex, one index for every kind of use (Secret, provider
object, listing group); no event loop needed."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from inferenceops.endpoints import RECONCILE_ANNOTATION, Endpoints, ReverseIndex
from inferenceops.kube.secrets import SecretCache
from inferenceops.provider_objects import ProviderObjects

from .support import EPOCH, NS_SPEC, body, friendli_spec


def test_move_follows_an_item_from_value_to_value() -> None:
    index: ReverseIndex[str, str] = ReverseIndex()
    index.move("a", None, "secret-1")
    index.move("b", None, "secret-1")
    assert set(index.items_of("secret-1")) == {"a", "b"}
    index.move("a", "secret-1", "secret-2")
    assert set(index.items_of("secret-1")) == {"b"}
    assert set(index.items_of("secret-2")) == {"a"}
    assert set(index.values()) == {"secret-1", "secret-2"}


def test_a_value_left_empty_is_dropped_and_reported() -> None:
    emptied: list[str] = []
    index: ReverseIndex[str, str] = ReverseIndex(emptied.append)
    index.move("a", None, "g")
    index.move("b", None, "g")
    index.move("a", "g", None)
    assert emptied == []
    index.move("b", "g", None)
    assert emptied == ["g"]
    assert set(index.values()) == set()
    assert set(index.items_of("g")) == set()


def test_moving_from_a_value_the_item_is_not_under_changes_nothing_there() -> None:
    emptied: list[str] = []
    index: ReverseIndex[str, str] = ReverseIndex(emptied.append)
    index.move("a", None, "g")
    index.move("b", "g", "h")  # "b" was never under "g"
    assert set(index.items_of("g")) == {"a"} and set(index.items_of("h")) == {"b"}
    index.move("c", "nowhere", None)
    assert emptied == []


def _endpoints(emptied: list[Hashable]) -> Endpoints:
    return Endpoints(
        SecretCache(),
        ProviderObjects(),
        lambda parsed: None,
        users_changed=lambda: None,
        group_emptied=emptied.append,
    )


def _with_secret(name: str) -> dict[str, Any]:
    spec = friendli_spec()
    spec["friendli"]["credentialsSecretRef"] = {"name": name, "key": "token"}
    return spec


def test_endpoints_are_found_by_their_secret_and_listing_group_as_specs_change() -> None:
    emptied: list[Hashable] = []
    endpoints = _endpoints(emptied)
    a, _ = endpoints.track(body("a", friendli_spec("ep1")), since=EPOCH)
    endpoints.track(body("b", friendli_spec("ep2")), since=EPOCH)
    assert {e.name for e in endpoints.secret_users(("ml", "creds"))} == {"a", "b"}
    assert set(endpoints.group_members(a.group)) == {("ml", "a"), ("ml", "b")}
    old_group = a.group

    assert endpoints.update(a, body("a", _with_secret("other"), generation=2))
    assert [e.name for e in endpoints.secret_users(("ml", "creds"))] == ["b"]
    assert [e.name for e in endpoints.secret_users(("ml", "other"))] == ["a"]
    assert a.group != old_group and set(endpoints.group_members(old_group)) == {("ml", "b")}
    assert not endpoints.update(a, body("a", _with_secret("other"), generation=2)), "no change"

    endpoints.forget(("ml", "b"))
    assert emptied == [old_group], "a group left empty ends its burst of arrivals"
    assert endpoints.secret_users(("ml", "creds")) == [] and len(endpoints) == 1


def test_a_listed_status_is_current_only_for_its_generation_and_reconcile_request() -> None:
    endpoints = _endpoints([])
    status = {"phase": "Running", "observedGeneration": 1, "lastHandledReconcileAt": "t1"}
    _, current = endpoints.track(body("a", NS_SPEC, status=status), since=EPOCH)
    assert current
    endpoints.forget(("ml", "a"))
    _, current = endpoints.track(body("a", NS_SPEC, generation=2, status=status), since=EPOCH)
    assert not current
    endpoints.forget(("ml", "a"))
    asked = body("a", NS_SPEC, status=status, annotations={RECONCILE_ANNOTATION: "t2"})
    entry, current = endpoints.track(asked, since=EPOCH)
    assert not current and entry.reconcile_token == "t2"
