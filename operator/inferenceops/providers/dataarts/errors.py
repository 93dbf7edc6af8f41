"""DataArts Fabric's error bodies in words, and which errors hold for a whole workspace."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from ..base import ErrorReason, ProviderError
from ..http import error_for_status, excerpt
from .config import DataArtsFabricConfig
from .responses import Tolerant

__all__ = ["classify_error", "not_found", "workspace_wide"]

# DataArts error codes are "<service>.<8 digits>"; only the digits are stable across services.
_CODE_NOT_EXIST = "00010009"
_CODE_WORKSPACE_NOT_EXIST = "00010003"
_CODE_BUSY = "00000001"


class _ErrorBody(Tolerant):
    error_code: str | None = None
    error_msg: str | None = None
    solution_msg: str | None = None

    def readable(self) -> str:
        """What went wrong and what to do about it, for the Synced message: `solution_msg` is
        DataArts' advice to the user, the part most worth reading."""
        said = ": ".join(x for x in (self.error_code, self.error_msg) if x)
        return f"{said}; solution: {self.solution_msg}" if self.solution_msg else said


class _WorkspaceMissing(ProviderError):
    """NotFound for the workspace itself, so it holds for every endpoint in it."""


def classify_error(
    status: int, body: bytes, workspace_id: str | None = None, endpoint_id: str | None = None
) -> ProviderError | None:
    """The DataArts error bodies that mean something other than their HTTP status says, and
    every other DataArts error body told in its own words (code, message and solution) rather
    than as raw JSON.

    The ids only name things in the message; pass the ones the request was about.
    """
    try:
        # Straight from the bytes: members it does not declare are skipped, not built.
        parsed = _ErrorBody.model_validate_json(body)
    except ValidationError:
        return None
    code = parsed.error_code or ""
    readable = excerpt(parsed.readable(), 300)
    detail = f" ({readable})"
    if status == 400 and code.endswith(_CODE_NOT_EXIST):
        what = f"endpoint {endpoint_id}" if endpoint_id else "endpoint"
        return ProviderError(
            ErrorReason.NOT_FOUND, f"{what} does not exist (HTTP 400){detail}", http_status=400
        )
    if status == 400 and code.endswith(_CODE_WORKSPACE_NOT_EXIST):
        what = f"workspace {workspace_id}" if workspace_id else "workspace"
        return _WorkspaceMissing(
            ErrorReason.NOT_FOUND, f"{what} does not exist (HTTP 400){detail}", http_status=400
        )
    if status == 500 and code.endswith(_CODE_BUSY):
        return ProviderError(
            ErrorReason.UNREACHABLE, f"provider is busy, retry (HTTP 500){detail}", http_status=500
        )
    if status == 429 or not readable:
        # A 429's Retry-After is in the headers, which only the generic path reads.
        return None
    return error_for_status(status, readable, httpx.Headers(), limit=300)


def workspace_wide(err: ProviderError) -> bool:
    """Whether a failed workspace listing would fail the same way for each endpoint's own request.

    Retrying those per endpoint only multiplies requests (and 429s) against the same account.
    """
    if err.reason in (ErrorReason.UNAUTHORIZED, ErrorReason.RATE_LIMITED):
        return True
    # The filtered request uses the very same path, so a missing workspace or path is missing
    # for it too.
    return isinstance(err, _WorkspaceMissing) or (
        err.reason is ErrorReason.NOT_FOUND and err.http_status == 404
    )


def not_found(config: DataArtsFabricConfig) -> ProviderError:
    return ProviderError(
        ErrorReason.NOT_FOUND,
        f"endpoint {config.endpoint_id} not found in workspace {config.workspace_id}",
    )
