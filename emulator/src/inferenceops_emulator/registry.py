"""The emulated providers, by the name of their block in an InferenceEndpoint's spec.

Adding a provider is one module that defines an `EMULATION` (see `_core.Emulation`) and one line
here; the server, the control API, seeds and faults pick it up from this mapping.
"""

from __future__ import annotations

from typing import Any

from . import dataarts, friendli, ns, runpod, takeoff
from ._core import Emulation

EMULATIONS: dict[str, Emulation[Any]] = {
    e.name: e
    for e in (
        friendli.EMULATION,
        runpod.EMULATION,
        takeoff.EMULATION,
        ns.EMULATION,
        dataarts.EMULATION,
    )
}


def emulation(name: str) -> Emulation[Any]:
    if name not in EMULATIONS:
        raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(EMULATIONS)}")
    return EMULATIONS[name]
