"""The same failure cases, run over every provider adapter (see conformance.py)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from inferenceops.providers import (
    ErrorReason,
    Observation,
    PollResult,
    Provider,
    ProviderError,
    Target,
    all_providers,
)

from . import cases
from .conformance import SECRET, ConformanceCase, Handler


def _load_cases() -> list[ConformanceCase]:
    found = []
    for info in pkgutil.iter_modules(cases.__path__):
        module = importlib.import_module(f"{cases.__name__}.{info.name}")
        found.append(module.CASE)
    return found


CASES = _load_cases()


def test_every_registered_provider_has_a_case() -> None:
    assert {c.provider.name for c in CASES} == {p.name for p in all_providers()}


@pytest.fixture(params=CASES, ids=lambda c: c.provider.name)
def case(request: pytest.FixtureRequest) -> ConformanceCase:
    return request.param  # type: ignore[no-any-return]


def test_batching_is_declared_exactly_where_observe_is_overridden(case: ConformanceCase) -> None:
    # The scheduler coalesces an account's due endpoints only for adapters declaring `batches`:
    # a declaration drifting from the code would cost a request per endpoint where one listing
    # answers them all, or hold polls back to coalesce them for an adapter that asks one by one.
    overrides_observe = type(case.provider).observe is not Provider.observe
    assert case.provider.batches is overrides_observe


async def _observe(
    case: ConformanceCase, handler: Handler, targets: Sequence[Target[Any]] | None = None
) -> dict[str, PollResult]:
    targets = list(targets or [case.make_target(1)])
    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
        results = await case.provider.observe(client, targets)
    assert set(results) == {t.key for t in targets}, "one result per target key"
    return dict(results)


def _only(results: dict[str, PollResult]) -> PollResult:
    assert len(results) == 1
    return next(iter(results.values()))


def _failing(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers)

    return handler


def _error(result: PollResult) -> ProviderError:
    assert isinstance(result, ProviderError), f"expected an error, got {result!r}"
    assert SECRET not in result.message
    assert SECRET not in repr(result)
    return result


async def test_running(case: ConformanceCase) -> None:
    result = _only(await _observe(case, case.running))
    assert isinstance(result, Observation), result
    assert result.phase is case.running_phase
    assert result.provider_status


async def test_sends_credential(case: ConformanceCase) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return case.running(request)

    await _observe(case, handler)
    assert seen
    for request in seen:
        if case.auth_header is None:
            assert "authorization" not in request.headers
        else:
            assert SECRET in request.headers[case.auth_header]


async def test_many_targets_one_result_each(case: ConformanceCase) -> None:
    targets = [case.make_target(i) for i in range(5)]
    results = await _observe(case, case.running, targets)
    assert all(isinstance(r, Observation) for r in results.values())


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, ErrorReason.UNAUTHORIZED),
        (403, ErrorReason.UNAUTHORIZED),
        (408, ErrorReason.TIMEOUT),
        (500, ErrorReason.UNREACHABLE),
        (502, ErrorReason.UNREACHABLE),
        (503, ErrorReason.UNREACHABLE),
    ],
)
async def test_http_errors(case: ConformanceCase, status: int, reason: ErrorReason) -> None:
    # Echoed credentials in error bodies are redacted by the core, which knows the credential.
    err = _error(_only(await _observe(case, _failing(status, b'{"message": "nope"}'))))
    assert err.reason is reason
    assert str(status) in err.message


async def test_not_found(case: ConformanceCase) -> None:
    err = _error(_only(await _observe(case, _failing(404, b'{"detail": "Not Found"}'))))
    assert err.reason is ErrorReason.NOT_FOUND


async def test_rate_limited_honours_retry_after(case: ConformanceCase) -> None:
    err = _error(_only(await _observe(case, _failing(429, b"{}", {"Retry-After": "17"}))))
    assert err.reason is ErrorReason.RATE_LIMITED
    assert err.retry_after == 17


async def test_timeout(case: ConformanceCase) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    assert _error(_only(await _observe(case, handler))).reason is ErrorReason.TIMEOUT


async def test_connection_refused(case: ConformanceCase) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert _error(_only(await _observe(case, handler))).reason is ErrorReason.UNREACHABLE


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b'{"status": "RUNN',
        b"",
        b'["a", "list"]',
        b'{"data": 42, "status": 42, "workers": "many", "endpoints": "x", "summary": 1}',
    ],
    ids=["html", "truncated", "empty", "list", "wrong-types"],
)
async def test_garbage_is_bad_response(case: ConformanceCase, body: bytes) -> None:
    err = _error(_only(await _observe(case, _failing(200, body))))
    assert err.reason is ErrorReason.BAD_RESPONSE
    assert len(err.message) < 300
    # What is wrong is named: not JSON at all, or JSON of another shape.
    not_json = not body or body.startswith((b"<", b'{"status": "RUNN'))
    assert ("not JSON" in err.message) is not_json, err.message
    assert ("not the documented shape" in err.message) is not not_json, err.message


async def test_huge_body_is_bad_response(case: ConformanceCase) -> None:
    huge = b'{"pad": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    err = _error(_only(await _observe(case, _failing(200, huge))))
    assert err.reason is ErrorReason.BAD_RESPONSE
    assert "limit" in err.message


def _cap(case: ConformanceCase) -> tuple[str, int]:
    """The byte cap and the JSON token budget of the case's single-endpoint request: 256 KiB,
    except DataArts, whose single endpoint is read as a (filtered) listing page of 1 MiB."""
    if case.provider.name == "dataArtsFabric":
        return "1024 KiB", 1024 * 1024 // 12
    return "256 KiB", 256 * 1024 // 12


async def test_body_over_the_byte_cap_is_refused_unparsed(case: ConformanceCase) -> None:
    # A single endpoint's status is a few KiB; the 4 MiB that RunPod's listings may need is not
    # for it.
    big = b'{"pad": "' + b"x" * (1100 * 1024) + b'"}'
    err = _error(_only(await _observe(case, _failing(200, big))))
    assert err.reason is ErrorReason.BAD_RESPONSE
    assert f"larger than the {_cap(case)[0]} limit" in err.message, err.message


async def test_flood_of_tiny_values_is_refused_unparsed(case: ConformanceCase) -> None:
    # 150 kB, within the byte cap, but 100,000 JSON values: what pydantic-core would hold for a
    # declared list (~50 bytes a value) is 35 times the body.
    flood = b'{"pad": [' + b"{}," * 49_999 + b"{}]}"
    err = _error(_only(await _observe(case, _failing(200, flood))))
    assert err.reason is ErrorReason.BAD_RESPONSE
    budget = _cap(case)[1]
    assert f"JSON separators and brackets, more than the {budget} allowed" in err.message, (
        err.message
    )
