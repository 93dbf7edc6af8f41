"""`validation_summary`: the one line a refused response body, listing entry or provider block is
told in (providers/http.py; used by get_json, DataArts' entries and provider_objects.py)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from inferenceops.providers.http import validation_summary


class _Inner(BaseModel):
    count: int


class _Body(BaseModel):
    inner: _Inner


def _refusal(body: bytes) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        _Body.model_validate_json(body)
    return refused.value


def test_names_the_dotted_path_to_the_first_refusal() -> None:
    err = _refusal(b'{"inner": {"count": "many"}}')
    assert validation_summary(err) == (
        "inner.count: Input should be a valid integer, unable to parse string as an integer"
    )


def test_within_prefixes_the_path() -> None:
    err = _refusal(b'{"inner": {}}')
    assert validation_summary(err, within="friendli") == "friendli.inner.count: Field required"


def test_a_refused_whole_is_the_body_or_the_block() -> None:
    err = _refusal(b"[]")
    assert validation_summary(err) == "body: Input should be an object"
    assert validation_summary(err, within="friendli") == "friendli: Input should be an object"
