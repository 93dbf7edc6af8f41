import httpx

from inferenceops.providers import Target
from inferenceops.providers.nsmodelserver import PROVIDER, NSModelServerConfig

from ..conformance import ConformanceCase


def _target(i: int) -> Target[NSModelServerConfig]:
    return Target(key=f"ns/ep{i}", config=NSModelServerConfig(url=f"http://ns{i}.test:8080"))


def _running(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/status"
    return httpx.Response(
        200, json={"data": {"stage": "READY", "progress": 100, "messages": []}, "server": {}}
    )


CASE = ConformanceCase(provider=PROVIDER, make_target=_target, running=_running)
