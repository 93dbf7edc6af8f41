"""Huawei Cloud's SDK-HMAC-SHA256 request signing (AK/SK), with Huawei's own signer.

`sign_request` signs an httpx request in place; `verify` is the server side (the emulator's):
the same canonical request recomputed from what arrived, compared in constant time, and the
`X-Sdk-Date` checked against a clock. Both go through `huaweicloudsdkcore`'s `Signer`, so the
canonical form (sorted query, trailing slash on the path, signed header list) is Huawei's, not
our reading of their documentation. Its import costs about 35 ms, so it happens on first use:
an operator without access keys never pays it.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

__all__ = [
    "ALGORITHM",
    "DATE_FORMAT",
    "MAX_SKEW",
    "SIGN_EXTENSION",
    "sign_request",
    "signature",
    "verify",
]

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: How far X-Sdk-Date may be from the server's clock (Huawei's API gateway allows 15 minutes).
MAX_SKEW = timedelta(minutes=15)
#: The httpx request extension holding a request's signer: the account's transport calls it
#: after the request budget's wait, so a request queued for long is not sent with an old date.
SIGN_EXTENSION = "inferenceops.sign"

_AUTHORIZATION = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<headers>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]+)$"
)


class _Credentials:
    """The two attributes Huawei's Signer reads."""

    def __init__(self, ak: str, sk: str) -> None:
        self.ak, self.sk = ak, sk


def signature(
    ak: str,
    sk: str,
    method: str,
    host: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    """The Authorization header value for a request with exactly these signed `headers` (which
    must hold X-Sdk-Date; Host is added when absent)."""
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    request: Any = SdkRequest(
        method=method.upper(),
        schema="https",
        host=host,
        resource_path=path or "/",
        query_params=list(query),
        header_params=dict(headers),
        body=body,
    )
    Signer(_Credentials(ak, sk)).sign(request)
    return str(request.header_params["Authorization"])


def sign_request(request: httpx.Request, ak: str, sk: str, now: datetime | None = None) -> None:
    """Set X-Sdk-Date, Host and Authorization on `request` (signing Host and X-Sdk-Date)."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    date = when.strftime(DATE_FORMAT)
    host = request.url.netloc.decode("ascii")
    signed = {"Host": host, "X-Sdk-Date": date}
    request.headers["X-Sdk-Date"] = date
    request.headers["Authorization"] = signature(
        ak,
        sk,
        request.method,
        host,
        request.url.path,
        request.url.params.multi_items(),
        signed,
        request.content,
    )


def signer(
    ak: str, sk: str, clock: Callable[[], datetime] | None = None
) -> Callable[[httpx.Request], None]:
    """A signer to put under SIGN_EXTENSION."""

    def sign(request: httpx.Request) -> None:
        sign_request(request, ak, sk, clock() if clock else None)

    return sign


def verify(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    secret_key_of: Callable[[str], str | None],
    now: datetime,
) -> str | None:
    """None when the request's signature is valid and recent; else why not (safe to return to
    the client: it names no key material)."""
    lower = {k.lower(): v for k, v in headers.items()}
    match = _AUTHORIZATION.match(lower.get("authorization", "").strip())
    if match is None:
        return "missing or malformed SDK-HMAC-SHA256 Authorization header"
    signed_names = match["headers"].split(";")
    if "x-sdk-date" not in signed_names or "host" not in signed_names:
        return "the signature must cover host and x-sdk-date"
    try:
        when = datetime.strptime(lower.get("x-sdk-date", ""), DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return "X-Sdk-Date is not a date like 20261201T150000Z"
    if abs(now - when) > MAX_SKEW:
        return "X-Sdk-Date is too far from the server's time"
    sk = secret_key_of(match["ak"])
    if sk is None:
        return "unknown access key"
    missing = [n for n in signed_names if n not in lower]
    if missing:
        return f"signed header {missing[0]} is not in the request"
    expected = signature(
        match["ak"],
        sk,
        method,
        lower["host"],
        path,
        query,
        {n: lower[n] for n in signed_names},
        body,
    )
    if not hmac.compare_digest(expected, lower["authorization"].strip()):
        return "signature does not match"
    return None
