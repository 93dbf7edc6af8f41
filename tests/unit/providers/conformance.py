"""What every provider adapter must do, whatever its API looks like.

Each provider contributes a `ConformanceCase` in `cases/<provider>.py`: how to build a target,
and a handler that answers the adapter's requests with a healthy, running endpoint. The suite then
replaces those answers with each failure a real provider produces and checks the adapter reports
it the same way as every other adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from inferenceops.providers import Phase, Provider, Target

Handler = Callable[[httpx.Request], httpx.Response]

#: Every credential used in conformance cases; the suite checks it never leaks into a message.
SECRET = "sk-conformance-SECRET-0123456789"


@dataclass(frozen=True)
class ConformanceCase:
    provider: Provider[Any]
    #: Builds a target for endpoint number `i` (distinct ids/URLs), with `SECRET` as credential
    #: if the provider needs one.
    make_target: Callable[[int], Target[Any]]
    #: Answers every request the adapter makes for a set of targets with a RUNNING endpoint.
    running: Handler
    #: The phase `running` maps to.
    running_phase: Phase = Phase.RUNNING
    #: Name of the header that must carry the credential, or None for unauthenticated providers.
    auth_header: str | None = None
    #: Extra notes, e.g. which request the failure injection should target.
    notes: dict[str, str] = field(default_factory=dict)
