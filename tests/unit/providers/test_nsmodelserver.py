"""NS model server adapter: every documented stage, from the document's own examples."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from inferenceops.providers import ErrorReason, Phase, PollResult, Target, Workers
from inferenceops.providers.nsmodelserver import PROVIDER, NSModelServerConfig

from .support import failed, official, ok

OFFICIAL = official("nsModelServer")
DOCUMENTED_STAGE_PHASES = {
    "GETTING_RESOURCES": Phase.PROVISIONING,
    "STARTING": Phase.PROVISIONING,
    "LOADING_MODEL": Phase.PROVISIONING,
    "BUILDING_API": Phase.PROVISIONING,
    "READY": Phase.RUNNING,
    "FAILED": Phase.FAILED,
}


async def observe(body: Any) -> PollResult:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/status"
        return httpx.Response(200, json=body)

    target = Target(key="k", config=NSModelServerConfig(url="http://ns.ml.svc:8080"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return (await PROVIDER.observe(client, [target]))["k"]


def test_every_documented_stage_has_a_row() -> None:
    assert set(OFFICIAL["stage"]) == set(DOCUMENTED_STAGE_PHASES)


@pytest.mark.parametrize("stage", OFFICIAL["stage"])
async def test_each_documented_stage(stage: str) -> None:
    body = official("nsModelServer")["examples"]["READY"]
    body["data"] |= {"stage": stage, "progress": 40}
    obs = ok(await observe(body))
    assert obs.phase is DOCUMENTED_STAGE_PHASES[stage]
    assert obs.provider_status == stage
    assert obs.progress == 40
    assert obs.workers == Workers(ready=1 if stage == "READY" else 0, total=1)


async def test_official_ready_example() -> None:
    obs = ok(await observe(OFFICIAL["examples"]["READY"]))
    assert (obs.phase, obs.progress, obs.error_code) == (Phase.RUNNING, 100, None)


async def test_official_failed_example_names_the_first_error() -> None:
    obs = ok(await observe(OFFICIAL["examples"]["FAILED"]))
    assert obs.phase is Phase.FAILED
    assert obs.error_code == "INVALID_MODEL"
    assert obs.error_message == "Unexpected error during loadModel"


async def test_failed_without_errors_still_has_a_code() -> None:
    body = official("nsModelServer")["examples"]["FAILED"]
    del body["data"]["errors"]
    obs = ok(await observe(body))
    assert (obs.phase, obs.error_code, obs.error_message) == (Phase.FAILED, "FAILED", None)


async def test_undocumented_stage_is_unknown() -> None:
    obs = ok(await observe({"data": {"stage": "WARMING_UP"}}))
    assert (obs.phase, obs.provider_status) == (Phase.UNKNOWN, "WARMING_UP")


@pytest.mark.parametrize(
    "body", [{}, {"data": {}}, {"data": {"stage": "READY", "progress": 101}}, {"stage": "READY"}]
)
async def test_unreadable_body_is_bad_response(body: Any) -> None:
    assert failed(await observe(body)).reason is ErrorReason.BAD_RESPONSE


async def test_loading_reports_the_last_message_as_the_sub_phase() -> None:
    # The official READY example's messages, cut to where the server is still reading the model.
    body = official("nsModelServer")["examples"]["READY"]
    body["data"] |= {"stage": "LOADING_MODEL", "progress": 40}
    body["data"]["messages"] = body["data"]["messages"][:2]
    obs = ok(await observe(body))
    assert (obs.phase, obs.provider_phase) == (Phase.PROVISIONING, "Reading model...")


@pytest.mark.parametrize("example", ["READY", "FAILED"])
async def test_messages_are_not_the_sub_phase_once_loading_is_over(example: str) -> None:
    obs = ok(await observe(OFFICIAL["examples"][example]))
    assert obs.provider_phase is None


async def test_loading_without_messages_has_no_sub_phase() -> None:
    body = official("nsModelServer")["examples"]["READY"]
    body["data"] = {"stage": "STARTING", "messages": []}
    assert ok(await observe(body)).provider_phase is None


async def test_a_long_message_is_cut_to_one_short_line() -> None:
    body = official("nsModelServer")["examples"]["READY"]
    body["data"] = {"stage": "LOADING_MODEL", "messages": ["Reading\nmodel " + "x" * 500]}
    said = ok(await observe(body)).provider_phase
    assert said is not None and len(said) == 200 and said.startswith("Reading model x")
