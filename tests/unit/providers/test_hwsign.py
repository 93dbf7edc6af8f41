"""SDK-HMAC-SHA256 signing (providers/hwsign.py): fixed vectors, the verifier, and a DataArts
poll with an access key pair through a real account (the signer runs in its transport)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from inferenceops.accounts import AccountPool
from inferenceops.providers import CREDENTIAL_SEPARATOR, ErrorReason, Observation, Target
from inferenceops.providers.dataarts import PROVIDER, AccessKeySecretRef, DataArtsFabricConfig
from inferenceops.providers.hwsign import sign_request, signature, verify

AK, SK = "HPUAEXAMPLEACCESSKEY", "exampleSecretKey0123456789abcdefghijklmn"
WHEN = datetime(2026, 12, 1, 15, 0, 0, tzinfo=UTC)
HOST = "fabric.cn-north-4.myhuaweicloud.com"
PATH = "/v1/workspaces/ws-1/endpoints"
QUERY = [("offset", "0"), ("limit", "100"), ("endpoint_id", "abc")]
HEADERS = {"Host": HOST, "X-Sdk-Date": "20261201T150000Z"}
#: Computed once with huaweicloudsdkcore 3.1.219 and checked against the hand-written
#: canonical request below: a new SDK version that signs differently fails here.
VECTOR = (
    "SDK-HMAC-SHA256 Access=HPUAEXAMPLEACCESSKEY, SignedHeaders=host;x-sdk-date, "
    "Signature=d9f294d99c30f8e577fd9efacb3c3f25da713f0aa5a5ca5314931ed4ac7c09bc"
)


def by_hand(sk: str, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> str:
    """The documented algorithm, independently of the SDK: canonical request (method, path with
    a trailing slash, sorted query, signed headers, body hash), string to sign, HMAC."""
    canonical = "\n".join(
        [
            method,
            path + "/",
            "&".join(f"{k}={v}" for k, v in sorted(query)),
            f"host:{HOST}\nx-sdk-date:20261201T150000Z\n",
            "host;x-sdk-date",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    to_sign = "\n".join(
        [
            "SDK-HMAC-SHA256",
            "20261201T150000Z",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    return hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def sig(**changes: Any) -> str:
    args: dict[str, Any] = {
        "ak": AK,
        "sk": SK,
        "method": "GET",
        "host": HOST,
        "path": PATH,
        "query": QUERY,
        "headers": HEADERS,
        "body": b"",
    }
    args.update(changes)
    return signature(**args)


def test_fixed_vector_is_the_documented_algorithm() -> None:
    assert sig() == (
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, "
        f"Signature={by_hand(SK, 'GET', PATH, QUERY, b'')}"
    )


def test_fixed_vector() -> None:
    assert sig() == VECTOR


def test_same_request_same_signature() -> None:
    assert sig() == sig(query=list(reversed(QUERY)))  # the query is canonically sorted


@pytest.mark.parametrize(
    "change",
    [
        {"headers": {**HEADERS, "X-Sdk-Date": "20261201T150001Z"}},
        {"headers": {**HEADERS, "Host": "evil.example"}},
        {"query": [*QUERY[:2], ("endpoint_id", "abd")]},
        {"body": b"{}"},
        {"method": "DELETE"},
        {"path": PATH + "x"},
        {"sk": SK + "x"},
    ],
    ids=["time", "host", "query", "body", "method", "path", "secret key"],
)
def test_any_change_changes_the_signature(change: dict[str, Any]) -> None:
    assert sig(**change) != sig()


def signed(now: datetime = WHEN, sk: str = SK) -> httpx.Request:
    request = httpx.Request("GET", f"https://{HOST}{PATH}", params=QUERY)
    sign_request(request, AK, sk, now)
    return request


def check(request: httpx.Request, now: datetime = WHEN, **known: str) -> str | None:
    keys = known or {AK: SK}
    return verify(
        request.method,
        request.url.path,
        request.url.params.multi_items(),
        dict(request.headers),
        request.content,
        keys.get,
        now,
    )


def test_verifier_accepts_what_the_signer_signs() -> None:
    assert check(signed()) is None
    assert check(signed(), WHEN + timedelta(minutes=14)) is None


def test_verifier_rejects_a_bad_signature_and_a_stale_date() -> None:
    assert check(signed(sk="wrong")) == "signature does not match"
    assert check(signed(), WHEN + timedelta(minutes=16)) == (
        "X-Sdk-Date is too far from the server's time"
    )
    assert check(signed(), **{"OTHER": SK}) == "unknown access key"
    tampered = signed()
    tampered.url = tampered.url.copy_merge_params({"limit": "1"})
    assert check(tampered) == "signature does not match"
    bare = httpx.Request("GET", f"https://{HOST}{PATH}")
    assert check(bare) == "missing or malformed SDK-HMAC-SHA256 Authorization header"


def config() -> DataArtsFabricConfig:
    return DataArtsFabricConfig(
        url=f"https://{HOST}",
        workspace_id="ws-1",
        endpoint_id="0b5633ba2b904511ad514346f4000001",
        access_key_secret_ref=AccessKeySecretRef(name="aksk"),
    )


async def poll(credential: str) -> Any:
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        why = check(request, datetime.now(UTC))
        if why is not None:
            return httpx.Response(401, json={"error_code": "APIGW.0301", "error_msg": why})
        assert "X-Auth-Token" not in request.headers
        endpoint = {"id": "0b5633ba2b904511ad514346f4000001", "status": "RUNNING"}
        return httpx.Response(200, json={"total": 1, "endpoints": [endpoint]})

    pool = AccountPool(transport=httpx.MockTransport(server))
    try:
        account = pool.get("dataArtsFabric", "k")
        target = Target(key="ns/ep", config=config(), credential=credential)
        return (await PROVIDER.observe(account.client, [target]))["ns/ep"], seen
    finally:
        await pool.aclose()


async def test_dataarts_signs_with_an_access_key_pair() -> None:
    result, seen = await poll(CREDENTIAL_SEPARATOR.join([AK, SK]))
    assert isinstance(result, Observation) and result.provider_status == "RUNNING"
    assert seen[0].headers["Authorization"].startswith(f"SDK-HMAC-SHA256 Access={AK}, ")
    assert SK not in str(seen[0].headers)


async def test_dataarts_with_a_wrong_secret_key_is_unauthorized() -> None:
    result, _ = await poll(CREDENTIAL_SEPARATOR.join([AK, "not-the-secret-key"]))
    assert not isinstance(result, Observation) and result.reason is ErrorReason.UNAUTHORIZED


def test_config_takes_exactly_one_credential() -> None:
    refs = config().secret_refs()
    assert [(r.name, r.key) for r in refs] == [("aksk", "accessKeyId"), ("aksk", "secretAccessKey")]
    with pytest.raises(ValueError, match="exactly one"):
        DataArtsFabricConfig(
            url=f"https://{HOST}",
            workspace_id="ws-1",
            endpoint_id="0b5633ba2b904511ad514346f4000001",
        )


async def test_the_account_signs_after_the_budget_wait() -> None:
    """A request queued behind the request budget is signed when it leaves, not when built."""
    order: list[str] = []
    pool = AccountPool(transport=httpx.MockTransport(lambda r: httpx.Response(204)))
    try:
        account = pool.get("dataArtsFabric", "k")
        waited = account.bucket.acquire

        async def acquire() -> None:
            await waited()
            order.append("budget")

        account.bucket.acquire = acquire  # type: ignore[method-assign]
        await account.client.get(
            f"https://{HOST}/", extensions={"inferenceops.sign": lambda r: order.append("sign")}
        )
    finally:
        await pool.aclose()
    assert order == ["budget", "sign"]
