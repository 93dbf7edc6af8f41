"""endpoints.ReverseIndex: items by the value they point at, one index for every kind of use."""

from __future__ import annotations

from inferenceops.endpoints import ReverseIndex


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
