"""Takeoff adapter: the reader-count mapping, consumer groups, and the documented failure modes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from inferenceops.providers import ErrorReason, Observation, Phase, ProviderError, Target, Workers
from inferenceops.providers.takeoff import PROVIDER, TakeoffConfig, TakeoffProvider

from .support import official

URL = "http://takeoff.ml.svc:3001"
#: The documented defaults of the required `config` object (the page gives no example body).
CONFIG = official("takeoff")["config_defaults"]
#: What takeoff-config 0.5.5 (an older server) has of it: 9 of the 14 fields.
OLD_CONFIG = {
    k: CONFIG[k]
    for k in (
        "echo",
        "port",
        "enable_metrics",
        "heartbeat_check_interval",
        "management_port",
        "vertex_port",
        "repository_path",
        "body_size_limit_bytes",
        "allow_remote_images",
    )
}


def _reader(*groups: str) -> dict[str, Any]:
    return {
        "consumer_groups": list(groups),
        "consumer_name": "c",
        "device": "cuda",
        "model_name": "llama",
        "model_type": "CAUSAL",
        "pids": [1],
    }


def _readers(n: int, prefix: str, *groups: str) -> dict[str, Any]:
    return {f"{prefix}{i}": _reader(*(groups or ("primary",))) for i in range(n)}


def _body(live: int = 0, loading: int = 0, dead: int = 0) -> dict[str, Any]:
    return {
        "config": CONFIG,
        "status": {
            "live_readers": _readers(live, "live-"),
            "loading_readers": _readers(loading, "loading-"),
            "dead_readers": _readers(dead, "dead-"),
            "last_heartbeat": {},
            "reserved_consumers": ["primary"],
        },
    }


async def _poll(
    body: Any = None,
    *,
    status: int = 200,
    consumer_group: str | None = None,
    seen: list[httpx.Request] | None = None,
) -> Observation | ProviderError:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body)

    config = TakeoffConfig(url=URL, consumer_group=consumer_group)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        results = await PROVIDER.observe(client, [Target(key="k", config=config)])
    return results["k"]


async def _observe(body: Any, **kwargs: Any) -> Observation:
    result = await _poll(body, **kwargs)
    assert isinstance(result, Observation), result
    return result


@pytest.mark.parametrize(
    ("live", "loading", "dead", "phase"),
    [
        (2, 0, 0, Phase.RUNNING),
        (1, 3, 0, Phase.RUNNING),
        (2, 0, 1, Phase.DEGRADED),
        (1, 1, 1, Phase.DEGRADED),
        (0, 2, 0, Phase.PROVISIONING),
        (0, 1, 1, Phase.PROVISIONING),
        (0, 0, 2, Phase.FAILED),
        (0, 0, 0, Phase.PROVISIONING),
    ],
)
async def test_mapping(live: int, loading: int, dead: int, phase: Phase) -> None:
    obs = await _observe(_body(live, loading, dead))
    assert obs.phase is phase
    assert obs.provider_status.startswith(f"live={live} loading={loading} dead={dead}")
    assert obs.workers == Workers(ready=live, total=live + loading + dead)
    assert obs.provider_phase is None


async def test_running_status_is_exactly_the_counts() -> None:
    obs = await _observe(_body(live=2))
    assert obs.provider_status == "live=2 loading=0 dead=0"
    assert obs.error_code is None
    assert obs.error_message is None


async def test_only_dead_readers_is_failed_with_readers_dead() -> None:
    obs = await _observe(_body(dead=2))
    assert obs.phase is Phase.FAILED
    assert obs.error_code == "ReadersDead"
    assert obs.error_message is not None
    assert "dead-0" in obs.error_message
    assert "dead-1" in obs.error_message


async def test_degraded_names_the_dead_reader_without_error_code() -> None:
    obs = await _observe(_body(live=1, dead=1))
    assert obs.error_code is None
    assert obs.error_message is not None
    assert "1 of 2" in obs.error_message
    assert "dead-0" in obs.error_message


#: The poll's wall clock (Unix seconds) in the heartbeat tests.
NOW = 1_780_000_000.0


def _beating(body: dict[str, Any], wait: float = 10, **ages: float) -> dict[str, Any]:
    """`body` with a heartbeat for each named reader, `ages[reader]` seconds before NOW."""
    body["status"]["last_heartbeat"] = {
        reader: {"heartbeat_timestamp": int(NOW - age), "heartbeat_wait_interval": wait}
        for reader, age in ages.items()
    }
    return body


async def _observe_at(body: Any, now: float = NOW, **kwargs: Any) -> Observation:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    config = TakeoffConfig(url=URL, **kwargs)
    provider = TakeoffProvider(clock=lambda: now)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = (await provider.observe(client, [Target(key="k", config=config)]))["k"]
    assert isinstance(result, Observation), result
    return result


async def test_live_reader_without_a_heartbeat_for_three_intervals_is_degraded() -> None:
    obs = await _observe_at(_beating(_body(live=2), wait=20, **{"live-0": 1, "live-1": 61}))
    assert obs.phase is Phase.DEGRADED
    assert obs.provider_status == "live=2 loading=0 dead=0"
    assert obs.error_message == "1 of 2 live readers without a heartbeat: live-1"
    assert obs.error_code is None
    assert obs.workers == Workers(ready=1, total=2)


@pytest.mark.parametrize(
    ("wait", "age", "phase"),
    [
        (20, 60, Phase.RUNNING),  # three intervals late is not yet silent
        (20, 61, Phase.DEGRADED),
        (1, 30, Phase.RUNNING),  # 3 x 1 s would be 3 s: the 30 s floor absorbs clock skew
        (1, 31, Phase.DEGRADED),
        (10, -120, Phase.RUNNING),  # the Takeoff host's clock runs ahead of ours
    ],
)
async def test_silence_threshold(wait: float, age: float, phase: Phase) -> None:
    obs = await _observe_at(_beating(_body(live=1), wait=wait, **{"live-0": age}))
    assert obs.phase is phase


async def test_heartbeat_in_milliseconds_is_read_as_such() -> None:
    body = _body(live=2)
    body["status"]["last_heartbeat"] = {
        "live-0": {"heartbeat_timestamp": int((NOW - 5) * 1000), "heartbeat_wait_interval": 10},
        "live-1": {"heartbeat_timestamp": int((NOW - 90) * 1000), "heartbeat_wait_interval": 10},
    }
    obs = await _observe_at(body)
    assert obs.error_message == "1 of 2 live readers without a heartbeat: live-1"


async def test_the_message_does_not_change_while_the_reader_stays_silent() -> None:
    body = _beating(_body(live=2), **{"live-0": 1, "live-1": 100})
    first = await _observe_at(body)
    later = await _observe_at(body, now=NOW + 3600)
    # live-0 is silent by then too; until that changes nothing does (no ages in the status).
    assert later.error_message == "2 of 2 live readers without a heartbeat: live-0, live-1"
    assert await _observe_at(body, now=NOW + 20) == first


async def test_every_live_reader_silent_is_still_degraded_with_none_ready() -> None:
    # Takeoff still routes to them, so Degraded (it may serve); none is counted ready.
    obs = await _observe_at(_beating(_body(live=2), **{"live-0": 300, "live-1": 300}))
    assert obs.phase is Phase.DEGRADED
    assert obs.workers == Workers(ready=0, total=2)


async def test_dead_and_silent_readers_are_both_named() -> None:
    obs = await _observe_at(_beating(_body(live=2, dead=1), **{"live-1": 100, "dead-0": 900}))
    assert obs.phase is Phase.DEGRADED
    assert obs.error_message == (
        "1 of 3 readers dead: dead-0; 1 of 2 live readers without a heartbeat: live-1"
    )


async def test_only_live_readers_heartbeats_count() -> None:
    # A loading or dead reader's old heartbeat says nothing new: they are not serving anyway.
    body = _beating(_body(live=1, loading=1), **{"live-0": 1, "loading-0": 900})
    assert (await _observe_at(body)).phase is Phase.RUNNING


async def test_live_reader_without_a_heartbeat_entry_is_not_silent() -> None:
    body = _beating(_body(live=2), **{"live-0": 1})
    body["status"]["last_heartbeat"]["live-1"] = {"heartbeat_timestamp": int(NOW - 900)}
    assert (await _observe_at(body)).phase is Phase.RUNNING


async def test_silent_reader_outside_the_consumer_group_does_not_count() -> None:
    body = _beating(_grouped_body(), **{"b-live": 900})
    assert (await _observe_at(body, consumer_group="alpha")).error_message == (
        "1 of 3 readers dead: a-dead"
    )


async def test_no_readers_says_so() -> None:
    obs = await _observe(_body())
    assert obs.phase is Phase.PROVISIONING
    assert obs.provider_status == "live=0 loading=0 dead=0 (no readers)"


async def test_null_status_is_provisioning() -> None:
    obs = await _observe({"config": CONFIG, "status": None})
    assert obs.phase is Phase.PROVISIONING
    assert obs.provider_status == "status=null"
    assert obs.workers is None


async def test_config_only_answer_is_provisioning() -> None:
    # Valid by the contract (`status` is optional): the server runs, no reader state yet.
    obs = await _observe({"config": CONFIG})
    assert obs.phase is Phase.PROVISIONING
    assert obs.provider_status == "no status"
    assert obs.workers is None


async def test_older_servers_smaller_config_is_accepted() -> None:
    body = _body(live=1) | {"config": OLD_CONFIG}
    assert (await _observe(body)).phase is Phase.RUNNING


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": None},
        {"status": _body(live=1)["status"]},
        {"config": None, "status": None},
        {"config": "port=3000", "status": None},
        [CONFIG],
    ],
)
async def test_body_without_config_object_is_bad_response(body: Any) -> None:
    # `config` is what the contract requires: without it, it is not Takeoff (`{}` must not read
    # as "starting").
    result = await _poll(body)
    assert isinstance(result, ProviderError)
    assert result.reason is ErrorReason.BAD_RESPONSE


async def test_missing_or_null_reader_maps_count_as_empty() -> None:
    body = {"config": CONFIG, "status": {"live_readers": {"a": _reader()}, "dead_readers": None}}
    obs = await _observe(body)
    assert obs.phase is Phase.RUNNING
    assert obs.provider_status == "live=1 loading=0 dead=0"


async def test_reader_without_consumer_groups_is_tolerated() -> None:
    obs = await _observe({"config": CONFIG, "status": {"live_readers": {"a": {"model_name": "m"}}}})
    assert obs.phase is Phase.RUNNING


async def test_503_is_unreachable() -> None:
    result = await _poll({"message": "server not available"}, status=503)
    assert isinstance(result, ProviderError)
    assert result.reason is ErrorReason.UNREACHABLE
    assert "503" in result.message


def _grouped_body() -> dict[str, Any]:
    return {
        "config": CONFIG,
        "status": {
            "live_readers": {
                "a-live": _reader("alpha"),
                "b-live": _reader("beta"),
                "ab-live": _reader("alpha", "beta"),
            },
            "loading_readers": {"b-loading": _reader("beta")},
            "dead_readers": {"a-dead": _reader("alpha"), "c-dead": _reader("gamma")},
        },
    }


async def test_consumer_group_filters_readers() -> None:
    alpha = await _observe(_grouped_body(), consumer_group="alpha")
    assert alpha.phase is Phase.DEGRADED
    assert alpha.provider_status == "live=2 loading=0 dead=1"
    assert alpha.workers == Workers(ready=2, total=3)
    assert alpha.error_message is not None
    assert "a-dead" in alpha.error_message
    assert "c-dead" not in alpha.error_message

    beta = await _observe(_grouped_body(), consumer_group="beta")
    assert beta.phase is Phase.RUNNING
    assert beta.provider_status == "live=2 loading=1 dead=0"

    gamma = await _observe(_grouped_body(), consumer_group="gamma")
    assert gamma.phase is Phase.FAILED
    assert gamma.error_code == "ReadersDead"


async def test_without_consumer_group_all_readers_count() -> None:
    obs = await _observe(_grouped_body())
    assert obs.provider_status == "live=3 loading=1 dead=2"
    assert obs.phase is Phase.DEGRADED


async def test_consumer_group_without_readers_is_provisioning_and_says_so() -> None:
    obs = await _observe(_grouped_body(), consumer_group="delta")
    assert obs.phase is Phase.PROVISIONING
    assert obs.provider_status == "live=0 loading=0 dead=0 (no readers in consumer group 'delta')"
    assert obs.workers == Workers(ready=0, total=0)


async def test_request_is_get_status_without_credentials() -> None:
    seen: list[httpx.Request] = []
    await _observe(_body(live=1), seen=seen)
    assert len(seen) == 1
    assert seen[0].method == "GET"
    assert str(seen[0].url) == f"{URL}/status"
    assert "authorization" not in seen[0].headers


async def test_trailing_slash_in_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_body(live=1))

    target = Target(key="k", config=TakeoffConfig(url=URL + "/"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await PROVIDER.observe(client, [target])
    assert seen[0].url.path == "/status"


def test_config_from_camel_case_yaml() -> None:
    config = TakeoffConfig.model_validate({"url": URL, "consumerGroup": "primary"})
    assert config.consumer_group == "primary"
    assert PROVIDER.endpoint_label(config) == f"{URL}#primary"
    assert PROVIDER.endpoint_label(TakeoffConfig(url=URL)) == URL
    assert PROVIDER.account_key(config) == ("takeoff", URL)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"url": "takeoff.ml.svc:3001"},
        {"url": "ftp://takeoff"},
        {"url": URL, "consumerGroup": ""},
        {"url": URL, "consumerGroup": "has space"},
        {"url": URL, "consumerGroup": "a/b"},
        {"url": URL, "consumerGroup": "x" * 129},
    ],
)
def test_config_rejects(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TakeoffConfig.model_validate(spec)


@pytest.mark.parametrize("group", ["primary", "A.b_c-9", "x" * 128])
def test_config_accepts_consumer_groups(group: str) -> None:
    assert (
        TakeoffConfig.model_validate({"url": URL, "consumerGroup": group}).consumer_group == group
    )


def test_registered() -> None:
    from inferenceops.providers import get

    assert get("takeoff") is PROVIDER
    assert PROVIDER.display_name == "Takeoff"
