"""Shared fixtures. Integration fixtures start real processes: the local control plane
(kube-apiserver + etcd built from Go modules), the provider emulator and the operator."""

from __future__ import annotations

import pytest

from tests.controlplane.fixtures import control_plane  # noqa: F401  (re-exported fixture)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration and tests/controlplane needs the control plane; mark it
    # so `make test-unit` can leave it out. tests/node and tests/e2e need a real node (root,
    # containerd, a kubelet): `make e2e` runs them, `make test` leaves them out.
    for item in items:
        path = str(item.fspath)
        if "/node/" in path or "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)
        elif "/integration/" in path or "/controlplane/" in path:
            item.add_marker(pytest.mark.integration)
