import httpx

from inferenceops.providers import Target
from inferenceops.providers.takeoff import PROVIDER, TakeoffConfig

from ..conformance import ConformanceCase


def _target(i: int) -> Target[TakeoffConfig]:
    return Target(key=f"ns/takeoff{i}", config=TakeoffConfig(url=f"http://takeoff{i}.test:3001"))


def _reader(name: str) -> dict[str, object]:
    return {
        "consumer_groups": ["primary"],
        "consumer_name": name,
        "device": "cuda",
        "model_name": "meta-llama/Llama-3.1-8B-Instruct",
        "model_type": "CAUSAL",
        "pids": [101],
    }


def _running(request: httpx.Request) -> httpx.Response:
    assert request.url.path == "/status"
    return httpx.Response(
        200,
        json={
            "config": {"management_port": 3001, "port": 3000},
            "status": {
                "live_readers": {"reader-a": _reader("reader-a")},
                "loading_readers": {},
                "dead_readers": {},
                "last_heartbeat": {},
                "reserved_consumers": ["primary"],
            },
        },
    )


CASE = ConformanceCase(provider=PROVIDER, make_target=_target, running=_running)
