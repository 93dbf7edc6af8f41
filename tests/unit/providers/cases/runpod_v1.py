import httpx

from inferenceops.providers import Target
from inferenceops.providers.runpod import PROVIDER, RunPodConfig

from ..conformance import SECRET, ConformanceCase


def _target(i: int) -> Target[RunPodConfig]:
    config = RunPodConfig(
        endpoint_id=f"ep{i}", api="v1", credentials_secret_ref={"name": "runpod", "key": "token"}
    )
    return Target(key=f"ns/runpod-v1-{i}", config=config, credential=SECRET)


def _endpoint(endpoint_id: str) -> dict[str, object]:
    return {
        "id": endpoint_id,
        "workersMin": 0,
        "workersMax": 3,
        "workers": [{"id": "w1", "desiredStatus": "RUNNING"}],
    }


def _running(request: httpx.Request) -> httpx.Response:
    assert request.url.host == "rest.runpod.io"
    assert request.url.params.get("includeWorkers") == "true"
    parts = request.url.path.split("/")
    match parts:
        case ["", "v1", "endpoints"]:
            return httpx.Response(200, json=[_endpoint(f"ep{i}") for i in range(10)])
        case ["", "v1", "endpoints", endpoint_id]:
            return httpx.Response(200, json=_endpoint(endpoint_id))
    raise AssertionError(f"unexpected request {request.url}")


# The same provider as cases/runpod.py, over the deprecated v1 API.
CASE = ConformanceCase(
    provider=PROVIDER, make_target=_target, running=_running, auth_header="authorization"
)
