"""Shared fixtures. Integration fixtures start real processes: the local control plane
(kube-apiserver + etcd built from Go modules), the provider emulator and the operator."""

from __future__ import annotations

import pytest

from tests.controlplane.fixtures import control_plane  # noqa: F401  (re-exported fixture)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration, tests/controlplane and tests/gitops/integration needs
    # the control plane; mark it so `make test-unit` can leave it out.
    for item in items:
        if "/integration/" in str(item.fspath) or "/controlplane/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
