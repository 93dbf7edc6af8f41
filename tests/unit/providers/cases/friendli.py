import httpx

from inferenceops.providers import Target
from inferenceops.providers.friendli import PROVIDER, FriendliConfig

from ..conformance import SECRET, ConformanceCase

_PREFIX = "/dedicated/beta/endpoint"


def _target(i: int) -> Target[FriendliConfig]:
    config = FriendliConfig(
        endpoint_id=f"ep-{i}", credentials_secret_ref={"name": "friendli", "key": "token"}
    )
    return Target(key=f"ns/friendli{i}", config=config, credential=SECRET)


def _status(status: str = "RUNNING") -> dict[str, object]:
    return {"status": status, "createdAt": "2025-01-01T00:00:00Z", "phase": None}


def _running(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == _PREFIX:
        return httpx.Response(
            200, json={"data": {f"ep-{i}": _status() for i in range(10)}, "nextCursor": None}
        )
    if path.startswith(_PREFIX + "/") and path.endswith("/status"):
        return httpx.Response(200, json=_status())
    if path.startswith(_PREFIX + "/"):
        return httpx.Response(
            200,
            json={
                "currReplicaCnt": 1,
                "desiredReplicaCnt": 1,
                "autoscalingMin": 1,
                "autoscalingMax": 2,
            },
        )
    raise AssertionError(f"unexpected request {request.url}")


CASE = ConformanceCase(
    provider=PROVIDER,
    make_target=_target,
    running=_running,
    auth_header="authorization",
    notes={"failures": "injected into every request; only the status call's errors count"},
)
