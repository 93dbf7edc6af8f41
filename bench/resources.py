"""What the benchmark creates and changes: each endpoint's InferenceEndpoint (inline provider
block or providerRef), the shared ClusterInferenceProviders, and the K real changes made in the
emulator to measure freshness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench import endpoints
from bench.kube import SECRET_NAME
from inferenceops.api import API_VERSION

#: --provider-objects: one ClusterInferenceProvider per kind, shared by every endpoint of it.
PROVIDER_OBJECTS = {kind: f"bench-{kind}" for kind in endpoints.KINDS}


def provider_objects(
    base: str, secret_namespace: str, inventory: str | None = None
) -> list[dict[str, Any]]:
    """The handful of ClusterInferenceProviders every endpoint uses with --provider-objects:
    what the endpoints' blocks share (URL, API version, credentials); team and workspace stay
    on the endpoints (allowed as overrides), so the operator's accounts are the same as with
    inline blocks. `inventory`: an interval, to list each account for its inventory too."""
    ref = {"credentialsSecretRef": {"name": SECRET_NAME, "key": "token"}}
    blocks: dict[str, dict[str, Any]] = {
        "dataarts": {
            "dataArtsFabric": {"url": f"{base}/dataarts", **ref},
            "allowedOverrides": {"workspaceId": ["*"]},
        },
        "friendli": {
            "friendli": {"url": f"{base}/friendli", **ref},
            "allowedOverrides": {"teamId": ["*"]},
        },
        "runpod-v1": {"runpod": {"api": "v1", "url": f"{base}/runpod/v1", **ref}},
        "runpod-v2": {"runpod": {"api": "v2", "url": f"{base}/runpod/v2", **ref}},
        "takeoff": {"takeoff": {}},
        "ns": {"nsModelServer": {}},
    }
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "ClusterInferenceProvider",
            "metadata": {"name": PROVIDER_OBJECTS[kind]},
            "spec": {
                "secretNamespace": secret_namespace,
                **blocks[kind],
                **({"inventory": {"interval": inventory}} if inventory else {}),
            },
        }
        for kind in endpoints.KINDS
    ]


def spec_via_provider(ep: endpoints.Endpoint, base: str, interval: str) -> dict[str, Any]:
    """The endpoint's spec with --provider-objects: a providerRef and what is its own."""
    inline = spec_of(ep, base, interval)
    block_name = next(k for k in inline if k != "pollInterval")
    block = dict(inline[block_name])
    block.pop("credentialsSecretRef", None)
    if ep.kind not in ("takeoff", "ns"):
        block.pop("url", None)  # the provider object's: it holds the credentials
        block.pop("api", None)
    return {
        "pollInterval": interval,
        "providerRef": {"kind": "ClusterInferenceProvider", "name": PROVIDER_OBJECTS[ep.kind]},
        block_name: block,
    }


def spec_of(ep: endpoints.Endpoint, base: str, interval: str) -> dict[str, Any]:
    ref = {"name": SECRET_NAME, "key": "token"}
    if ep.kind == "dataarts":
        block: dict[str, Any] = {
            "dataArtsFabric": {
                "url": f"{base}/dataarts",
                "workspaceId": ep.account,
                "endpointId": ep.key,
                "credentialsSecretRef": ref,
            }
        }
    elif ep.kind == "friendli":
        block = {
            "friendli": {
                "endpointId": ep.key,
                "teamId": ep.account,
                "url": f"{base}/friendli",
                "credentialsSecretRef": ref,
            }
        }
    elif ep.kind in ("runpod-v1", "runpod-v2"):
        api = ep.kind.split("-")[1]
        block = {
            "runpod": {
                "endpointId": ep.key,
                "api": api,
                "url": f"{base}/runpod/{api}",
                "credentialsSecretRef": ref,
            }
        }
    elif ep.kind == "takeoff":
        block = {"takeoff": {"url": f"{base}/takeoff/{ep.key}"}}
    else:
        block = {"nsModelServer": {"url": f"{base}/ns/{ep.key}"}}
    return {"pollInterval": interval, **block}


def manifest(
    ep: endpoints.Endpoint, base: str, interval: str, *, via_provider: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceEndpoint",
        "metadata": {"name": ep.name, "namespace": ep.namespace},
        "spec": (spec_via_provider if via_provider else spec_of)(ep, base, interval),
    }


#: How K changed endpoints are changed (RUNNING -> something else), per kind.
def change_of(ep: endpoints.Endpoint) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The endpoint's key in the emulator and the fields to patch."""
    if ep.kind == "dataarts":
        return (ep.account, ep.key), {"status": "UPDATING"}
    if ep.kind == "friendli":
        return (ep.key,), {"status": "UPDATING"}
    if ep.kind in ("runpod-v1", "runpod-v2"):
        return (ep.key,), {"workers": []}  # -> Idle
    if ep.kind == "takeoff":
        return (ep.key,), {"live": [], "loading": ["llama-3-8b"]}  # -> Provisioning
    return (ep.key,), {"stage": "LOADING_MODEL", "progress": 40}  # -> Provisioning


def pick_changes(layout: Sequence[endpoints.Endpoint], k: int) -> list[endpoints.Endpoint]:
    """K endpoints spread over the kinds in proportion, evenly spaced within each kind."""
    by_kind: dict[str, list[endpoints.Endpoint]] = {}
    for ep in layout:
        by_kind.setdefault(ep.kind, []).append(ep)
    k = min(k, len(layout))
    counts = endpoints.split(k, {kind: float(len(eps)) for kind, eps in by_kind.items()})
    chosen: list[endpoints.Endpoint] = []
    for kind, eps in by_kind.items():
        m = counts.get(kind, 0)
        chosen += [eps[(i * len(eps)) // m] for i in range(m)] if m else []
    return chosen
