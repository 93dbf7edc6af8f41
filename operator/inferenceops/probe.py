"""`inferenceops probe`: one endpoint polled once, through the operator's own poll pipeline, with
its credential from the environment and its status printed instead of written."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from .accounts import AccountSettings
from .api import InvalidSpecError, ParsedSpec, parse_spec
from .cli import EXIT_OK, EXIT_PROVIDER, EXIT_USAGE, TOKEN_ENV, _fail, _with_transport_flags
from .providers import SecretKeyRef

__all__ = ["probe", "secret_env"]


def _read_manifest(filename: str) -> dict[str, Any]:
    try:
        if filename == "-":
            text = sys.stdin.read()
        else:
            with open(filename, encoding="utf-8") as f:
                text = f.read()
    except OSError as err:
        raise ValueError(f"cannot read {filename}: {err.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as err:
        raise ValueError(f"{filename} is not YAML or JSON: {str(err).splitlines()[0]}") from None
    endpoints = [d for d in docs if isinstance(d, dict) and d.get("kind") == "InferenceEndpoint"]
    if len(endpoints) != 1:
        raise ValueError(
            f"{filename} must hold exactly one InferenceEndpoint (found {len(endpoints)})"
        )
    return endpoints[0]


@dataclasses.dataclass(eq=False)
class _ProbedEndpoint:
    """The endpoint of a `probe`, as the poll pipeline sees one (poller.Polled)."""

    name: str
    parsed: ParsedSpec | None
    namespace: str = "probe"
    uid: str = ""
    generation: int = 1
    spec_error: str | None = None
    spec_reason: str = "InvalidSpec"
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    reconcile_token: str | None = None
    last_success: datetime | None = None
    tracked_since: datetime | None = None


def secret_env(key: str) -> str:
    """The variable `probe` reads a Secret key from when the spec names several (an access key
    pair): INFERENCEOPS_SECRET_ and the key in capitals, other characters as _."""
    return "INFERENCEOPS_SECRET_" + re.sub(r"[^A-Z0-9]", "_", key.upper())


class _EnvironmentCredential:
    """`probe`'s credential source: the environment instead of the Secret the spec names —
    $INFERENCEOPS_SECRET_<KEY> for that key, else $INFERENCEOPS_TOKEN."""

    def lookup(self, namespace: str, ref: SecretKeyRef) -> str:
        return os.environ.get(secret_env(ref.key), os.environ.get(TOKEN_ENV, "")).strip()


class _NoWrites:
    """`probe` prints the status instead of writing it."""

    async def patch_status(self, ref: Any, patch: Mapping[str, Any]) -> bool:
        return True

    async def emit(self, ref: Any, event: Any) -> None:
        return None


async def probe(args: argparse.Namespace) -> int:
    """`inferenceops probe ARGS`: its exit code."""
    from .accounts import AccountPool
    from .poller import Poller
    from .providers import Observation

    try:
        settings = _with_transport_flags(args, AccountSettings(read_timeout=args.timeout))
        manifest = _read_manifest(args.filename)
        parsed = parse_spec(manifest.get("spec"))
    except (ValueError, InvalidSpecError) as err:
        return _fail(EXIT_USAGE, str(err))
    accounts = AccountPool(settings)
    poller = Poller(
        accounts,
        _EnvironmentCredential(),
        _NoWrites(),
        allow_insecure_http=args.allow_insecure_http,
    )
    if (refused := poller.refusal(parsed)) is not None:
        # Before the credential is even looked for, as the operator does.
        return _fail(EXIT_USAGE, f"{refused.reason}: {refused.message}")
    refs = parsed.config.secret_refs()
    if len(refs) > 1:
        unset = [secret_env(r.key) for r in refs if not os.environ.get(secret_env(r.key))]
        if unset:
            return _fail(EXIT_USAGE, f"{parsed.provider.name} needs {', '.join(unset)}")
    elif refs and not _EnvironmentCredential().lookup("", refs[0]):
        return _fail(EXIT_USAGE, f"{parsed.provider.name} needs a credential: set {TOKEN_ENV}")
    endpoint = _ProbedEndpoint(str((manifest.get("metadata") or {}).get("name", "probe")), parsed)
    try:
        # The same steps as the operator's poll: credential, account, adapter, redaction.
        (batch,), _ = poller.batches([endpoint])
        ((_, result),) = await poller.observe(batch)
    finally:
        await accounts.aclose()
    if not isinstance(result, Observation):
        return _fail(EXIT_PROVIDER, f"{result.reason}: {result.message}")
    status = poller.status_after(endpoint, result, datetime.now(UTC))
    shown = {
        k: status[k]
        for k in (
            "phase",
            "providerStatus",
            "providerPhase",
            "errorCode",
            "errorMessage",
            "progress",
            "workers",
        )
        if k in status
    }
    if args.output == "json":
        sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(shown, sort_keys=False))
    return EXIT_OK
