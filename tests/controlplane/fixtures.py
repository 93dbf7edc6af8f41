"""pytest fixtures for the local control plane.

In tests/conftest.py (tests/ is a package, tests/controlplane/ a namespace package):

    from tests.controlplane.fixtures import control_plane  # noqa: F401

``control_plane`` is session-scoped and yields a started ``localcp.LocalControlPlane`` (or, with
USE_EXISTING_CLUSTER=1, a ``localcp.ExistingCluster`` whose ``audit_log`` is None). If it gets
registered twice (conftest + a test module), both registrations share one control plane.
"""

from __future__ import annotations

import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import localcp  # noqa: E402  (always the top-level module, so the shared state below is shared)


def acquire() -> localcp._ClusterBase:
    """Start (or reuse) the process-wide control plane; pair with release()."""
    state = localcp.__dict__.setdefault("_SHARED", {"plane": None, "refs": 0})
    if state["plane"] is None:
        state["plane"] = localcp.connect_or_start()
    state["refs"] += 1
    return state["plane"]


def release() -> None:
    state = localcp.__dict__.get("_SHARED")
    if not state or state["plane"] is None:
        return
    state["refs"] -= 1
    if state["refs"] <= 0:
        plane, state["plane"], state["refs"] = state["plane"], None, 0
        plane.stop()


@pytest.fixture(scope="session")
def control_plane():
    plane = acquire()
    try:
        yield plane
    finally:
        release()
