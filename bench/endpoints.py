"""The benchmark's endpoints: their kinds, the mix, the layout over namespaces and provider
accounts, and the emulator's bulk bodies that seed them (one source for run.py and the floor)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The benchmark's kinds of resource: a provider, and for RunPod the API version.
KINDS = ("dataarts", "friendli", "runpod-v1", "runpod-v2", "takeoff", "ns")
#: Kinds whose adapter answers a whole account with one paged list.
LIST_KINDS = ("dataarts", "friendli", "runpod-v1")
DEFAULT_MIX = "dataarts=30,friendli=25,runpod-v1=20,runpod-v2=5,takeoff=10,ns=10"
#: The emulator's name for each kind's provider (the name of its block in the spec).
PROVIDER_OF_KIND = {
    "dataarts": "dataArtsFabric",
    "friendli": "friendli",
    "runpod-v1": "runpod",
    "runpod-v2": "runpod",
    "takeoff": "takeoff",
    "ns": "nsModelServer",
}
#: The kind of each provider but RunPod, whose kind depends on the API version of the path.
KIND_OF_PROVIDER = {v: k for k, v in PROVIDER_OF_KIND.items() if v != "runpod"}
DATAARTS_PREFIX = "bench-dataarts-endpoint-"  # + "w{i}-" + 6 digits: 33 chars (32-36 allowed)


@dataclass(frozen=True, slots=True)
class Endpoint:
    kind: str
    #: Resource name (DNS-1123).
    name: str
    namespace: str
    #: The emulator's endpoint id / instance name.
    key: str
    #: DataArts workspace or Friendli team; "" for the others.
    account: str = ""


def parse_mix(text: str) -> dict[str, float]:
    """`dataarts=30,friendli=25,...` -> weights (any scale; normalised by `split`)."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        kind, _, weight = part.partition("=")
        kind = kind.strip()
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} in --mix; expected {', '.join(KINDS)}")
        value = float(weight)
        if value < 0:
            raise ValueError(f"negative weight for {kind}")
        mix[kind] = value
    if not mix or sum(mix.values()) <= 0:
        raise ValueError("--mix needs at least one positive weight")
    return mix


def split(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of n over the weights (sums to n exactly)."""
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    rest = n - sum(counts.values())
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[:rest]:
        counts[k] += 1
    return counts


def make_layout(
    n: int,
    mix: Mapping[str, float],
    *,
    workspaces: int = 3,
    teams: int = 2,
    namespaces: int = 4,
) -> list[Endpoint]:
    """N endpoints over the kinds; DataArts over `workspaces`, Friendli over `teams` (one API key
    each, so one account each). Each list account lives in one namespace (round robin); the
    self-hosted and RunPod v2 endpoints are spread over all namespaces."""
    counts = split(n, mix)
    out: list[Endpoint] = []
    account_ns = iter(range(1_000_000))

    def ns(i: int) -> str:
        return f"bench-{i % namespaces}"

    for kind in KINDS:
        count = counts.get(kind, 0)
        if count == 0:
            continue
        if kind == "dataarts":
            for w, part in enumerate(
                split(count, {str(i): 1.0 for i in range(workspaces)}).values()
            ):
                where = ns(next(account_ns))
                for i in range(part):
                    key = f"{DATAARTS_PREFIX}w{w}-{i:06d}"
                    out.append(Endpoint(kind, f"da-w{w}-{i:06d}", where, key, f"bench-ws-{w}"))
        elif kind == "friendli":
            for t, part in enumerate(split(count, {str(i): 1.0 for i in range(teams)}).values()):
                where = ns(next(account_ns))
                for i in range(part):
                    key = f"fr-t{t}-{i:06d}"
                    out.append(Endpoint(kind, key, where, key, f"team-{t}"))
        elif kind == "runpod-v1":
            where = ns(next(account_ns))
            out += [Endpoint(kind, f"rp1-{i:06d}", where, f"rp1-{i:06d}") for i in range(count)]
        else:
            short = {"runpod-v2": "rp2", "takeoff": "tk", "ns": "nsm"}[kind]
            out += [
                Endpoint(kind, f"{short}-{i:06d}", ns(i), f"{short}-{i:06d}") for i in range(count)
            ]
    return out


def bulk_bodies(layout: Sequence[Endpoint]) -> list[dict[str, Any]]:
    """Emulator `POST /_emulator/bulk` bodies that create every endpoint of the layout in a
    steady RUNNING state (keys are `{prefix}{i:06d}`, as make_layout names them)."""
    groups: dict[tuple[str, str], int] = defaultdict(int)
    for ep in layout:
        groups[(ep.kind, ep.account)] += 1
    bodies: list[dict[str, Any]] = []
    for (kind, account), count in groups.items():
        if kind == "dataarts":
            w = account.rsplit("-", 1)[1]
            body = {
                "provider": "dataArtsFabric",
                "prefix": f"{DATAARTS_PREFIX}w{w}-",
                "workspace": account,
                "fields": {"status": "RUNNING"},
            }
        elif kind == "friendli":
            t = account.rsplit("-", 1)[1]
            body = {
                "provider": "friendli",
                "prefix": f"fr-t{t}-",
                "fields": {"status": "RUNNING", "team": account},
            }
        elif kind in ("runpod-v1", "runpod-v2"):
            body = {
                "provider": "runpod",
                "prefix": "rp1-" if kind == "runpod-v1" else "rp2-",
                "fields": {"workers": ["RUNNING"]},
            }
        elif kind == "takeoff":
            body = {"provider": "takeoff", "prefix": "tk-", "fields": {"live": ["llama-3-8b"]}}
        else:
            body = {"provider": "nsModelServer", "prefix": "nsm-", "fields": {"stage": "READY"}}
        bodies.append({**body, "count": count})
    return bodies
