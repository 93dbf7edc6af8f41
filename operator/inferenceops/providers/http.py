"""One GET that every adapter uses: status codes, time-outs and bodies become `ProviderError`s.

Keeping this in one place means every provider answers 401/404/408/429/5xx, a dropped
connection, a 20 MB body or an HTML error page the same way.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

import httpx
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from .base import ErrorReason, ProviderError
from .sanitize import active_redactor, clean
from .wire import ParseContext

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_LISTING_BYTES",
    "MAX_PAGE_BYTES",
    "MAX_RETRY_AFTER_SECONDS",
    "SAFE_ID_PATTERN",
    "URL_PATTERN",
    "USERINFO_MESSAGE",
    "ProviderURL",
    "error_for_status",
    "excerpt",
    "get_json",
    "parse_retry_after",
    "validation_summary",
]

#: An http(s) base URL with a host and an optional path: no query, fragment or whitespace.
URL_PATTERN = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"
#: A URL whose authority holds `user:password@`. Refused: the URL is shown verbatim in
#: `status.endpoint` and `kubectl get -o wide`, and credentials belong in Secrets. No quotes or
#: backslashes, so it goes into the CEL rule as it is.
_USERINFO_PATTERN = r"^https?://[^/?#]*@"
USERINFO_MESSAGE = (
    "url must not contain user:password@ (userinfo): it is shown in status; "
    "credentials belong in a Secret"
)


def _no_userinfo(url: str) -> str:
    if re.match(_USERINFO_PATTERN, url):
        raise ValueError(USERINFO_MESSAGE)
    return url


#: Every provider URL field: http(s), at most 2048 characters, no userinfo. The rule is checked
#: by the API server (CEL, with the message) and by pydantic for specs that bypassed it.
ProviderURL = Annotated[
    str,
    Field(
        pattern=URL_PATTERN,
        max_length=2048,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"!self.matches('{_USERINFO_PATTERN}')", "message": USERINFO_MESSAGE}
            ]
        },
    ),
    AfterValidator(_no_userinfo),
]
#: An id that is safe to put in a URL path segment (no "/", "..", "%" or whitespace).
SAFE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"

#: One endpoint's status (and every error body): a few KiB in every official example, the largest
#: RunPod's v1 endpoint with its workers at 3.5 KiB. Anything near this is not a status document.
MAX_BODY_BYTES = 256 * 1024
#: A page of a paged listing (FriendliAI, DataArts: 100 entries a page, 0.1-1 KiB each in the
#: official examples): 10 KiB an entry.
MAX_PAGE_BYTES = 1024 * 1024
#: RunPod's listings, which have no pages: the account's every endpoint in one document (the
#: benchmark's 2,000 v1 endpoints with a worker each are 2.5 MB). A larger account's listing is
#: refused and its endpoints are asked for one by one.
MAX_LISTING_BYTES = 4 * 1024 * 1024
#: Bytes of the cap per JSON token (`,` `:` `{` `[`) a body may hold. pydantic-core holds every
#: item of a declared list (and every member of the objects in it) while it validates them,
#: ~50 bytes a token, so a cap in bytes alone lets `[{},{},…]` (1.5 bytes a token) cost 35 times
#: its size. The official examples and the emulator's listings spend 9-10 bytes a token.
_BYTES_PER_TOKEN = 12
_EXCERPT_CHARS = 120
_EXCERPT_WINDOW = 64 * 1024
#: The longest wait a provider's `Retry-After` can impose (docs/operations.md). A provider asking
#: for more (or for `inf`) would otherwise freeze the account and, with it, the status of every
#: endpoint on it; past this the poll is retried and, if still refused, the wait asked again.
MAX_RETRY_AFTER_SECONDS = 300.0

M = TypeVar("M", bound=BaseModel)

#: Lets an adapter read a provider-specific error body (DataArts says "not found" with a 400).
ErrorClassifier = Callable[[int, bytes], ProviderError | None]


def excerpt(body: bytes | str, limit: int = _EXCERPT_CHARS) -> str:
    """A short single-line excerpt of a body, safe to put in a condition message: the poll's
    credential is masked in the body before the excerpt is cut (sanitize.redacting), so a token
    echoed across the cut leaves no prefix behind."""
    # More than `clean` reads of it (a few KiB at most): a 4 MB body is not decoded whole.
    window = body[:_EXCERPT_WINDOW]
    text = window.decode("utf-8", "replace") if isinstance(window, bytes) else window
    return clean(" ".join(text.split()), limit, active_redactor())


def parse_retry_after(
    value: str | None, now: float | None = None, *, limit: float = MAX_RETRY_AFTER_SECONDS
) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), at most `limit`;
    a NaN reads as 0, `inf` as `limit`."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return 0.0
    return min(limit, max(0.0, seconds))


def error_for_status(
    status: int, body: bytes | str, headers: httpx.Headers, *, limit: int = _EXCERPT_CHARS
) -> ProviderError:
    """The error an unsuccessful answer means, with an excerpt of `body` (an adapter may pass
    the body's readable parts instead, from a provider-specific error shape)."""
    detail = excerpt(body, limit)
    suffix = f": {detail}" if detail else ""
    if status in (401, 403):
        return ProviderError(
            ErrorReason.UNAUTHORIZED,
            f"provider rejected the credential (HTTP {status}){suffix}",
            http_status=status,
        )
    if status == 404:
        return ProviderError(
            ErrorReason.NOT_FOUND,
            f"provider has no such endpoint (HTTP 404){suffix}",
            http_status=404,
        )
    if status == 408:
        return ProviderError(
            ErrorReason.TIMEOUT, f"provider timed out (HTTP 408){suffix}", http_status=408
        )
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        wait = f", retry after {retry_after:g}s" if retry_after is not None else ""
        return ProviderError(
            ErrorReason.RATE_LIMITED,
            f"provider is rate limiting (HTTP 429{wait})",
            retry_after=retry_after,
            http_status=429,
        )
    if status >= 500:
        return ProviderError(
            ErrorReason.UNREACHABLE, f"provider failed (HTTP {status}){suffix}", http_status=status
        )
    return ProviderError(
        ErrorReason.BAD_RESPONSE, f"unexpected HTTP {status}{suffix}", http_status=status
    )


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ProviderError(
            ErrorReason.BAD_RESPONSE,
            f"response body of {int(declared)} bytes is larger than the {_size(limit)} limit "
            "(not read)",
            http_status=response.status_code,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"response body is larger than the {_size(limit)} limit (not parsed)",
                http_status=response.status_code,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _check_tokens(body: bytes, max_bytes: int, status: int) -> None:
    """Refuse, unparsed, a body denser in JSON structure than a status document or listing is."""
    limit = max_bytes // _BYTES_PER_TOKEN
    if len(body) <= limit:
        return  # cannot hold more tokens than bytes: every small body, uncounted
    tokens = body.count(b",") + body.count(b":") + body.count(b"{") + body.count(b"[")
    if tokens > limit:
        raise ProviderError(
            ErrorReason.BAD_RESPONSE,
            f"response body holds {tokens} JSON separators and brackets, more than the "
            f"{limit} allowed within its {_size(max_bytes)} limit (not parsed)",
            http_status=status,
        )


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit}-byte"


def validation_summary(err: ValidationError, within: str = "") -> str:
    """The first thing pydantic refused, on one line: `where: what`. `where` is the dotted path to
    it, under `within` when given (a spec block's name), or `body` when it is the whole."""
    first = err.errors()[0]
    path = [str(p) for p in first["loc"]]
    where = ".".join([within, *path] if within else path) or "body"
    return f"{where}: {first['msg']}"


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    model: type[M],
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
    classify_error: ErrorClassifier | None = None,
    max_bytes: int = MAX_BODY_BYTES,
    extensions: Mapping[str, Any] | None = None,
    context: ParseContext | None = None,
) -> M:
    """GET `url` and parse the JSON body into `model`, or raise `ProviderError`.

    A body over `max_bytes`, or holding more JSON tokens than one per `_BYTES_PER_TOKEN` of it, is
    refused unparsed. `context`: a listing's wanted ids (and what it counted), for the models'
    `wanted_entry` filters.

    Never lets an httpx or pydantic exception escape, and never puts request headers (where
    credentials live) into a message.
    """
    try:
        async with client.stream(
            "GET", url, headers=headers, params=params, extensions=dict(extensions or {})
        ) as response:
            body = await _read_capped(response, max_bytes)
    except httpx.TimeoutException as err:
        raise ProviderError(
            ErrorReason.TIMEOUT, f"no answer from {_where(url)} in time ({type(err).__name__})"
        ) from None
    except httpx.TransportError as err:
        raise ProviderError(
            ErrorReason.UNREACHABLE, f"cannot reach {_where(url)} ({type(err).__name__})"
        ) from None
    status = response.status_code
    if not 200 <= status < 300:
        special = classify_error(status, body) if classify_error else None
        raise special or error_for_status(status, body, response.headers)
    _check_tokens(body, max_bytes, status)
    try:
        # Parsed straight into the model by pydantic-core: no intermediate dicts and lists, which
        # were the largest single cost of a steady poll at 10,000 (docs/performance.md).
        return model.model_validate_json(body, context=context)
    except ValidationError as err:
        if _is_not_json(err):
            raise ProviderError(
                ErrorReason.BAD_RESPONSE,
                f"response is not JSON: {excerpt(body) or '(empty body)'}",
                http_status=status,
            ) from None
        raise ProviderError(
            ErrorReason.BAD_RESPONSE,
            f"response is not the documented shape ({validation_summary(err)}): "
            f"{excerpt(body, 80)}",
            http_status=status,
        ) from None


def _is_not_json(err: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in err.errors(include_url=False))


def _where(url: str) -> str:
    # Scheme, host and port only: paths and queries can carry ids users did not ask to publish.
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
