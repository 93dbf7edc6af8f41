import httpx

from inferenceops.providers import Target
from inferenceops.providers.runpod import PROVIDER, RunPodConfig

from ..conformance import SECRET, ConformanceCase


def _target(i: int) -> Target[RunPodConfig]:
    config = RunPodConfig(
        endpoint_id=f"ep{i}", credentials_secret_ref={"name": "runpod", "key": "token"}
    )
    return Target(key=f"ns/runpod{i}", config=config, credential=SECRET)


def _endpoint(endpoint_id: str) -> dict[str, object]:
    return {"id": endpoint_id, "name": endpoint_id, "workers": {"min": 0, "max": 3}}


def _running(request: httpx.Request) -> httpx.Response:
    assert request.url.host == "api.runpod.io"
    parts = request.url.path.split("/")
    match parts:
        case ["", "v2", "serverless"]:
            return httpx.Response(200, json={"endpoints": [_endpoint(f"ep{i}") for i in range(10)]})
        case ["", "v2", "serverless", endpoint_id]:
            return httpx.Response(200, json=_endpoint(endpoint_id))
        case ["", "v2", "serverless", _, "workers"]:
            summary = {
                "running": 1,
                "idle": 1,
                "initializing": 0,
                "throttled": 0,
                "unhealthy": 0,
                "total": 2,
            }
            return httpx.Response(200, json={"workers": [], "summary": summary})
    raise AssertionError(f"unexpected request {request.url}")


CASE = ConformanceCase(
    provider=PROVIDER, make_target=_target, running=_running, auth_header="authorization"
)
