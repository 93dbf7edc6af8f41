"""What the operator lists and watches: each kind's API paths for the namespaces it watches,
and whether the API server serves the provider-object kinds at all (discovery)."""

from __future__ import annotations

import logging

from .api import GROUP, PLURAL, VERSION
from .api.provider_kinds import NAMESPACED_PLURAL
from .kube import client as kube_client
from .kube.errors import ApiError

__all__ = ["endpoint_paths", "provider_paths", "secret_paths", "served", "watching"]

log = logging.getLogger(__name__)


async def served(api: kube_client.ApiSession, *plurals: str) -> bool:
    """Whether the API server serves all of these resources of our group (discovery)."""
    try:
        found = await api.get_json(f"/apis/{GROUP}/{VERSION}", {})
    except ApiError as err:
        log.warning("discovery of %s/%s failed: %s", GROUP, VERSION, err)
        return False
    served = {r.get("name") for r in found.get("resources") or []}
    return all(p in served for p in plurals)


def watching(namespaces: tuple[str, ...]) -> str:
    """The start-up line's first words: where an endpoint must live to be polled (an endpoint in
    a namespace the operator does not watch would otherwise stay silently empty)."""
    if not namespaces:
        return "watching InferenceEndpoints in all namespaces"
    return (
        f"watching InferenceEndpoints in {', '.join(namespaces)} only "
        "(--namespace; endpoints in other namespaces are not polled)"
    )


def secret_paths(
    namespaces: tuple[str, ...], cluster_secret_namespaces: frozenset[str] | None = None
) -> list[str]:
    """Where Secrets are watched: everywhere, or the watched namespaces and those where
    ClusterInferenceProviders may read Secrets (their Secrets are kept current the same way)."""
    if not namespaces:
        return ["/api/v1/secrets"]
    extra = sorted((cluster_secret_namespaces or frozenset()) - set(namespaces))
    return [f"/api/v1/namespaces/{ns}/secrets" for ns in (*namespaces, *extra)]


def provider_paths(namespaces: tuple[str, ...]) -> list[str]:
    base = f"/apis/{GROUP}/{VERSION}"
    if not namespaces:
        return [f"{base}/{NAMESPACED_PLURAL}"]
    return [f"{base}/namespaces/{ns}/{NAMESPACED_PLURAL}" for ns in namespaces]


def endpoint_paths(namespaces: tuple[str, ...]) -> list[str]:
    base = f"/apis/{GROUP}/{VERSION}"
    if not namespaces:
        return [f"{base}/{PLURAL}"]
    return [f"{base}/namespaces/{ns}/{PLURAL}" for ns in namespaces]
