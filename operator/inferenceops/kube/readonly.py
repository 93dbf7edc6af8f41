"""What `inferenceops import` reads through the current kube context: a provider object, the
Secret it names, the InferenceEndpoints of a namespace. It never writes."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from ..api.provider_kinds import CLUSTER_KIND, CLUSTER_PLURAL, NAMESPACED_PLURAL
from ..api.v1alpha1 import GROUP, VERSION

__all__ = ["Cluster", "KubeCluster"]


class Cluster(Protocol):
    """What `import` reads through the kube context (nothing is written)."""

    def provider_object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any]: ...

    def secret_value(self, namespace: str, name: str, key: str) -> str: ...

    def endpoints(self, namespace: str) -> list[Mapping[str, Any]]: ...


class KubeCluster:
    """The `kubernetes` client's config loading (in-cluster, then KUBECONFIG), as the operator's
    login; blocking calls, made from a thread. The API server's refusals become LookupError
    with one line saying what could not be read and why."""

    def __init__(self) -> None:
        from kubernetes import client, config

        try:
            config.load_config()  # type: ignore[no-untyped-call]
        except config.ConfigException as err:
            raise LookupError(f"no kube context: {str(err).splitlines()[0]}") from None
        self._custom = client.CustomObjectsApi()
        self._core = client.CoreV1Api()

    def provider_object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any]:
        what = f"{kind} {name}" if kind == CLUSTER_KIND else f"{kind} {namespace}/{name}"
        found: Any
        with _refused(what):
            if kind == CLUSTER_KIND:
                found = self._custom.get_cluster_custom_object(GROUP, VERSION, CLUSTER_PLURAL, name)
            else:
                found = self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, NAMESPACED_PLURAL, name
                )
        return dict(found)

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        with _refused(f"Secret {namespace}/{name}"):
            secret = self._core.read_namespaced_secret(name, namespace)
        raw = (secret.data or {}).get(key)
        if raw is None:
            raise LookupError(f"Secret {namespace}/{name} has no key {key}")
        return base64.b64decode(raw).decode().strip()

    def endpoints(self, namespace: str) -> list[Mapping[str, Any]]:
        found: Any
        with _refused(f"InferenceEndpoints in {namespace}"):
            found = self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, "inferenceendpoints"
            )
        return list(found.get("items") or [])


@contextlib.contextmanager
def _refused(what: str) -> Iterator[None]:
    from kubernetes.client import ApiException

    try:
        yield
    except ApiException as err:
        raise LookupError(f"cannot read {what}: {err.status} {err.reason}") from None
