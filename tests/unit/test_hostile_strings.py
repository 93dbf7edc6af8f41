"""Provider strings are hostile input: bounded before they reach status, Events or logs, and no
credential (nor a fragment of one) survives into any of them (providers/sanitize.py, applied by
the poller and by http.excerpt)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from inferenceops import status as st
from inferenceops.api.crd import all_crds
from inferenceops.kube.secrets import SecretCache
from inferenceops.providers import CREDENTIAL_SEPARATOR, Observation, Phase, Workers
from inferenceops.providers.http import error_for_status, excerpt
from inferenceops.providers.sanitize import (
    FRAGMENT_CHARS,
    MESSAGE_CHARS,
    WORD_CHARS,
    clean,
    clean_observation,
    redacting,
    redactor_for,
)

from .support import FakeWriter, VirtualClock, body, scheduling

IAM_TOKEN = "MIIZkQYJKoZIhvcNAQcCoIIZgjCCGX4CAQExDTALBglghkgBZQMEAgEwghen"
FRIENDLI_TOKEN = "flp_test-Zq8rT2vX9mK4pL7nW3sY6hJ1"  # fake; the dash keeps it from looking real
#: What `.status` must stay under, whatever a provider answers (etcd's objects are small).
STATUS_BUDGET = 32 * 1024


def leaks(secret: str, text: str) -> list[str]:
    """Every piece of `secret` of FRAGMENT_CHARS characters found in `text`."""
    pieces = (secret[i : i + FRAGMENT_CHARS] for i in range(len(secret) - FRAGMENT_CHARS + 1))
    return [p for p in pieces if p in text]


# --- clean: one printable line, bounded ---------------------------------------------------------


def test_clean_makes_one_printable_bounded_line() -> None:
    hostile = "line one\nline two\t\x1b[31mred\x1b[0m \u202eevil\u2028end"
    assert clean(hostile, WORD_CHARS) == "line one line two ?[31mred?[0m ?evil end"
    huge = "x" * 1_000_000
    cut = clean(huge, MESSAGE_CHARS)
    assert len(cut) == MESSAGE_CHARS and cut.endswith("…")
    ordinary = "Reading model weights (3/8)"
    assert clean(ordinary, WORD_CHARS) is ordinary, "fit text is passed through, not copied"


def test_a_steady_observation_is_passed_through_unchanged() -> None:
    """The scheduler compares each poll's Observation with the last one: a steady poll must
    come out as the very same object, at the cost of a few checks."""
    obs = Observation(Phase.RUNNING, "RUNNING", "serving", workers=Workers(1, 1))
    assert clean_observation(obs, redactor_for(FRIENDLI_TOKEN)) is obs
    assert clean_observation(obs, None) is obs


def test_every_observation_string_is_cut() -> None:
    obs = Observation(
        Phase.FAILED,
        provider_status="S" * 10_000,
        provider_phase="P\n" * 10_000,
        error_code="C" * 10_000,
        error_message="M" * 1_000_000,
    )
    cleaned = clean_observation(obs, None)
    assert len(cleaned.provider_status) <= WORD_CHARS
    assert cleaned.provider_phase is not None and len(cleaned.provider_phase) <= WORD_CHARS
    assert "\n" not in cleaned.provider_phase
    assert cleaned.error_code is not None and len(cleaned.error_code) <= WORD_CHARS
    assert cleaned.error_message is not None and len(cleaned.error_message) <= MESSAGE_CHARS


# --- redaction ----------------------------------------------------------------------------------


def test_the_credential_and_its_fragments_are_masked() -> None:
    redact = redactor_for(FRIENDLI_TOKEN)
    assert redact is not None
    assert redact(f"bad token {FRIENDLI_TOKEN}!") == "bad token ***!"
    fragment = FRIENDLI_TOKEN[6:16]  # 10 characters from the middle
    assert redact(f"key …{fragment}… rejected") == "key …***… rejected"
    # A provider echoing a masked prefix, as consoles show keys.
    assert redact(f"token {FRIENDLI_TOKEN[:12]}… is revoked") == "token ***… is revoked"
    # Seven characters are not a fragment worth masking (the CRD's own words would go).
    assert redact(f"ends in {FRIENDLI_TOKEN[-7:]}") == f"ends in {FRIENDLI_TOKEN[-7:]}"
    assert redact("the provider rejected the credential") == (
        "the provider rejected the credential"
    )


def test_both_keys_of_an_access_key_pair_are_masked() -> None:
    ak, sk = "HPUAEXAMPLEACCESSKEY", "exampleSecretKey0123456789abcdefghijklmn"
    redact = redactor_for(f"{ak}{CREDENTIAL_SEPARATOR}{sk}")
    assert redact is not None
    text = redact(f"signature by {ak[:10]} with {sk[12:22]} mismatched; AK={ak}")
    assert not leaks(ak, text) and not leaks(sk, text)
    assert text == "signature by *** with *** mismatched; AK=***"


def test_a_short_credential_is_masked_where_it_appears_whole() -> None:
    redact = redactor_for("s3cr3t")
    assert redact is not None and redact("key s3cr3t refused") == "key *** refused"


def test_the_body_is_masked_before_the_excerpt_is_cut() -> None:
    """A token echoed across the 120-character cut: masking after the cut (as before) left
    its first characters in the message."""
    body = ("e" * 100 + " token: " + IAM_TOKEN + " was refused").encode()
    assert body.index(IAM_TOKEN.encode()) in range(100, 120)
    with redacting(redactor_for(IAM_TOKEN)):
        cut = excerpt(body)
        message = error_for_status(401, body, httpx.Headers()).message
    assert not leaks(IAM_TOKEN, cut) and not leaks(IAM_TOKEN, message)
    assert cut.endswith("token: ***") or "***" in cut


# --- end to end: status, Events and logs ----------------------------------------------------


@pytest.fixture
async def run(
    caplog: pytest.LogCaptureFixture, clock: VirtualClock
) -> AsyncIterator[Callable[..., Any]]:
    """Poll one endpoint of `spec` once against `handler`; its status patch, Events and logs."""
    caplog.set_level(logging.DEBUG)
    async with contextlib.AsyncExitStack() as running:

        async def poll(
            handler: Callable[[httpx.Request], httpx.Response],
            spec: dict[str, Any],
            secret: dict[str, str] | None = None,
        ) -> tuple[dict[str, Any], FakeWriter, str]:
            writer, secrets = FakeWriter(), SecretCache()
            if secret:
                encoded = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
                secrets.put("ml", "creds", encoded)
            sched = await running.enter_async_context(
                scheduling(handler, writer, secrets, clock=clock)
            )
            sched.upsert(body("hostile", spec))
            await writer.wait_for(1)
            logs = "\n".join(r.getMessage() for r in caplog.records)
            return writer.patches[0][1], writer, logs

        yield poll


def _friendli_spec() -> dict[str, Any]:
    return {
        "friendli": {
            "endpointId": "ep1",
            "url": "https://friendli.test",
            "credentialsSecretRef": {"name": "creds", "key": "token"},
        }
    }


async def test_a_token_echoed_across_the_cut_never_leaves(run: Callable[..., Any]) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(500, text="x" * 110 + token + " is not allowed here")

    patch, writer, logs = await run(echo, _friendli_spec(), {"token": FRIENDLI_TOKEN})
    synced = st.condition(patch, "Synced")
    assert synced is not None and synced["reason"] == "Unreachable"
    events = repr(writer.events)
    assert "HTTP 500" in synced["message"] and "HTTP 500" in events and "HTTP 500" in logs
    for shown in (repr(patch), events, logs):
        assert not leaks(FRIENDLI_TOKEN, shown), shown


def _dataarts_spec(credential: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataArtsFabric": {
            "url": "https://fabric.test",
            "workspaceId": "ws-1",
            "endpointId": "0b5633ba2b904511ad514346f4000001",
            **credential,
        }
    }


def _failed_listing(error_code: str, error_msg: str) -> httpx.Response:
    entry = {
        "id": "0b5633ba2b904511ad514346f4000001",
        "status": "CREATE_FAILED",
        "error_code": error_code,
        "error_msg": error_msg,
    }
    return httpx.Response(200, json={"total": 1, "endpoints": [entry]})


async def test_a_successful_poll_is_redacted_too(run: Callable[..., Any]) -> None:
    """The provider answered (HTTP 200) and quotes the token, and a fragment of it, in its own
    error fields: status shows neither."""
    fragment = IAM_TOKEN[20:30]

    def answer(request: httpx.Request) -> httpx.Response:
        return _failed_listing(f"APIG.{fragment}", f"token {IAM_TOKEN} has no quota")

    spec = _dataarts_spec({"credentialsSecretRef": {"name": "creds", "key": "token"}})
    patch, writer, logs = await run(answer, spec, {"token": IAM_TOKEN})
    assert patch["phase"] == "Failed"
    assert patch["errorCode"] == "APIG.***" and patch["errorMessage"] == "token *** has no quota"
    for shown in (repr(patch), repr(writer.events), logs):
        assert not leaks(IAM_TOKEN, shown), shown


async def test_both_keys_of_a_pair_are_redacted_from_status(run: Callable[..., Any]) -> None:
    ak, sk = "HPUAEXAMPLEACCESSKEY", "exampleSecretKey0123456789abcdefghijklmn"

    def answer(request: httpx.Request) -> httpx.Response:
        return _failed_listing("APIG.0301", f"AK {ak[:10]}… and SK …{sk[8:18]}… do not match")

    spec = _dataarts_spec({"accessKeySecretRef": {"name": "creds"}})
    patch, writer, logs = await run(answer, spec, {"accessKeyId": ak, "secretAccessKey": sk})
    assert patch["errorMessage"] == "AK ***… and SK …***… do not match"
    for shown in (repr(patch), repr(writer.events), logs):
        assert not leaks(ak, shown) and not leaks(sk, shown), shown


async def test_a_huge_error_message_is_cut_everywhere(run: Callable[..., Any]) -> None:
    # ~200 kB: as long as a status body may be (256 KiB, docs/providers.md "Hostile bodies").
    cause = "the model server says: " + "a very long complaint\n" * 9_000

    def answer(request: httpx.Request) -> httpx.Response:
        data = {"stage": "FAILED", "errors": [{"errorType": "E" * 5000, "cause": cause}]}
        return httpx.Response(200, json={"data": data})

    spec = {"nsModelServer": {"url": "http://ns.test:8080"}}
    patch, writer, logs = await run(answer, spec)
    assert len(patch["errorMessage"]) <= MESSAGE_CHARS and "\n" not in patch["errorMessage"]
    assert len(patch["errorCode"]) <= WORD_CHARS and len(patch["error"]) <= WORD_CHARS
    assert all(len(c["message"]) <= MESSAGE_CHARS for c in patch["conditions"])
    assert writer.events and all(len(e.message) <= MESSAGE_CHARS for _, e in writer.events)
    lines = [line for line in logs.splitlines() if "complaint" in line]
    assert lines and all(len(line) <= MESSAGE_CHARS + 100 for line in lines)
    assert len(json.dumps(patch, ensure_ascii=False).encode()) < STATUS_BUDGET


# --- the size of .status ---------------------------------------------------------------------


def _largest(schema: dict[str, Any], where: str) -> Any:
    """The largest value `schema` admits; fails on a string or list with no bound."""
    kind = schema.get("type")
    if kind == "object":
        assert "additionalProperties" not in schema, f"{where}: a map has no size bound"
        return {k: _largest(v, f"{where}.{k}") for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        assert "maxItems" in schema, f"{where}: no maxItems"
        items = [_largest(schema["items"], f"{where}[]") for _ in range(schema["maxItems"])]
        for i, item in enumerate(items):  # a list-map's keys differ
            for key in schema.get("x-kubernetes-list-map-keys", []):
                item[key] = f"{i:02d}{item[key][2:]}"
        return items
    if kind == "string":
        if "enum" in schema:
            return max(schema["enum"], key=len)
        assert "maxLength" in schema, f"{where}: no maxLength"
        return "x" * schema["maxLength"]
    if kind == "integer":
        return -(2**63)
    if kind == "boolean":
        return False
    raise AssertionError(f"{where}: unexpected schema {schema}")


@pytest.mark.parametrize("kind", sorted(all_crds()))
def test_the_largest_status_the_crd_admits_is_under_32_kib(kind: str) -> None:
    """Every string of `.status` has a maxLength and every list a maxItems; at their maximum
    (every condition present, each message at its limit) the status is still small."""
    schema = all_crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    largest = _largest(schema["properties"]["status"], "status")
    assert len(json.dumps(largest).encode()) < STATUS_BUDGET


def test_hostile_strings_make_a_small_status() -> None:
    """Through the pipeline's own steps: every provider string at a megabyte of 4-byte
    characters (the CRD counts characters; etcd stores bytes)."""
    wide = "\U0001f600" * 1_000_000
    obs = clean_observation(
        Observation(Phase.FAILED, wide, wide, error_code=wide, error_message=wide), None
    )
    res = st.Resource(1, "friendli", "ep1", 30.0, datetime(2026, 1, 1, tzinfo=UTC))
    status = st.after_observation(None, obs, res)
    failure = st.Failure("Unreachable", clean(wide, MESSAGE_CHARS))
    status = st.after_failure(status, failure, res)
    assert len(json.dumps(status, ensure_ascii=False).encode()) < STATUS_BUDGET
