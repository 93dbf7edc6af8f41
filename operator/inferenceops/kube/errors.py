"""What the API server answered, as types a caller can catch (after kopf's clients/errors.py).

Callers decide by type: a 404 on a status write means the object is gone, a 410 on a watch means
list again, a 401 was already retried once with fresh credentials (kube/client.py), a 429 was
already retried with its Retry-After; anything else is logged and retried with backoff.
"""

from __future__ import annotations

import json

import aiohttp

__all__ = [
    "ApiConflict",
    "ApiError",
    "ApiForbidden",
    "ApiGone",
    "ApiNotFound",
    "ApiServerError",
    "ApiTooManyRequests",
    "ApiUnauthorized",
    "check",
]


class ApiError(RuntimeError):
    """An error answer of the API server; `status` is its HTTP status."""

    status = 0

    def __init__(self, what: str, status: int, message: str = "", reason: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        detail = f": {reason}" if reason else ""
        detail += f" ({message})" if message else ""
        super().__init__(f"{what}: HTTP {status}{detail}")


class ApiUnauthorized(ApiError):
    """401: the credentials were refused, even after logging in again."""


class ApiForbidden(ApiError):
    """403: RBAC does not allow it."""


class ApiNotFound(ApiError):
    """404: the object (or its namespace, or the resource type) does not exist."""


class ApiConflict(ApiError):
    """409: the object changed meanwhile, or already exists."""


class ApiGone(ApiError):
    """410: the resourceVersion is older than the API server's history; list again."""


class ApiTooManyRequests(ApiError):
    """429: still refused after the Retry-After pauses kube/client.py allows."""


class ApiServerError(ApiError):
    """5xx: the API server (or what is behind it, etcd) failed."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: ApiUnauthorized,
    403: ApiForbidden,
    404: ApiNotFound,
    409: ApiConflict,
    410: ApiGone,
    429: ApiTooManyRequests,
}


def error_for(what: str, status: int, body: str = "") -> ApiError:
    """The typed error for an HTTP status, with the reason and message of a Status body."""
    reason = message = ""
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    if isinstance(parsed, dict):
        reason, message = str(parsed.get("reason") or ""), str(parsed.get("message") or "")
    kind = _BY_STATUS.get(status) or (ApiServerError if status >= 500 else ApiError)
    return kind(what, status, message[:300], reason)


async def check(response: aiohttp.ClientResponse, what: str) -> None:
    """Raise the typed error for an error response; nothing for a success."""
    if response.status < 400:
        return
    raise error_for(what, response.status, (await response.text())[:2000])
