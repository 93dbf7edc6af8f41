"""pytest fixture for the local node (tests/node/localnode.py).

In a conftest.py (tests/ is a package, tests/node/ a namespace package):

    from tests.node.fixtures import local_node  # noqa: F401

``local_node`` is session-scoped and yields a started ``localnode.LocalNode``. A missing
prerequisite fails the tests that use it with one line naming the fix. If the fixture gets
registered twice (two conftests), both share one node.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import localnode  # noqa: E402  (always the top-level module, so the shared state below is shared)


def _shared() -> dict:
    return localnode.__dict__.setdefault("_SHARED", {"node": None, "refs": 0, "error": None})


def acquire() -> localnode.LocalNode:
    """Start (or reuse) the process-wide node; pair with release()."""
    state = _shared()
    if state["error"] is not None:  # do not retry a failed start for every test
        raise state["error"]
    if state["node"] is None:
        try:
            state["node"] = localnode.LocalNode().start()
        except localnode.NodeError as e:
            state["error"] = e
            raise
    state["refs"] += 1
    return state["node"]


def release() -> None:
    state = _shared()
    if state["node"] is None:
        return
    state["refs"] -= 1
    if state["refs"] <= 0:
        node, state["node"], state["refs"] = state["node"], None, 0
        node.stop()


def running() -> localnode.LocalNode | None:
    """The shared node if one is running in this process."""
    return _shared()["node"]


@pytest.fixture(scope="session")
def local_node() -> Iterator[localnode.LocalNode]:
    try:
        node = acquire()
    except localnode.NodeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield node
    finally:
        release()
