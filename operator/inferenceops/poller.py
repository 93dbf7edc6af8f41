"""One poll, from Secret to written status: the pipeline `run` (through the scheduler) and
`probe` share, so the two cannot drift.

    credential (Secret)  →  account  →  adapter.observe  →  clean  →  status.py  →  write + Events

The scheduler decides *when* and *which* endpoints go together; this module decides nothing about
time. Each step is a method so the scheduler can stop between them (a Secret still being read,
an account paused by a provider's Retry-After) without holding a poll slot.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from . import status as st
from .accounts import AccountPool, account_label, credential_fingerprint
from .api import ParsedSpec
from .api.v1alpha1 import DEFAULT_POLL_INTERVAL_SECONDS, RECONCILE_TOKEN_CHARS
from .kube.secrets import SecretMissing, SecretPending
from .kube.writer import StatusSink, WriteError
from .providers import (
    CREDENTIAL_SEPARATOR,
    ErrorReason,
    Observation,
    ProviderError,
    SecretKeyRef,
    Target,
)
from .providers.sanitize import MESSAGE_CHARS, clean, clean_observation, redacting, redactor_for

__all__ = ["WAITING", "Batch", "Credentials", "Polled", "Poller", "Written"]

log = logging.getLogger(__name__)


class Credentials(Protocol):
    """Where credentials come from: the SecretCache in `run`, the environment in `probe`.
    Raises `SecretMissing` (or `SecretPending` while the Secret is being read)."""

    def lookup(self, namespace: str, ref: SecretKeyRef) -> str: ...


class Polled(Protocol):
    """What the pipeline reads of one endpoint (the scheduler's entry; the probe's stand-in)."""

    namespace: str
    name: str
    uid: str
    generation: int
    parsed: ParsedSpec | None
    spec_error: str | None
    #: The Synced reason when `parsed` is None: InvalidSpec, or why its providerRef is unusable.
    spec_reason: str
    status: dict[str, Any]
    reconcile_token: str | None
    last_success: datetime | None
    tracked_since: datetime | None


P = TypeVar("P", bound=Polled)


class _Waiting(enum.Enum):
    WAITING = "waiting"


#: The endpoint's Secret exists and is being read: no result yet, the Secret's arrival re-polls.
WAITING = _Waiting.WAITING


@dataclass(slots=True)
class Batch(Generic[P]):
    """Endpoints of one provider account sharing one credential: one `observe` call."""

    account: Hashable
    provider: str
    parsed: ParsedSpec
    credential: str | None
    members: list[tuple[P, Target[Any]]]


class Written(enum.Enum):
    UNCHANGED = "unchanged"  # nothing worth a write
    WRITTEN = "written"
    GONE = "gone"  # the object was deleted meanwhile
    FAILED = "failed"  # the API server refused; the status in memory was not changed


class Poller:
    def __init__(
        self,
        accounts: AccountPool,
        credentials: Credentials,
        sink: StatusSink,
        *,
        poll_time_refresh: timedelta | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        self.accounts = accounts
        self._credentials = credentials
        self._sink = sink
        self._poll_time_refresh = poll_time_refresh
        self._allow_insecure_http = allow_insecure_http

    def refusal(self, parsed: ParsedSpec) -> st.Failure | None:
        """Why a poll of `parsed` must not start at all, before its Secret is even read: a
        credential bound for a plain http:// URL would cross the network readable by anyone on
        the path (and an endpoint author could pick such a URL to harvest a Secret)."""
        if self._allow_insecure_http or not parsed.config.secret_refs():
            return None
        block = parsed.provider.name
        for alias, url in parsed.config.destinations().items():
            if not url.startswith("https://"):
                where = (
                    f" (from {parsed.account.kind} {parsed.account.name})" if parsed.account else ""
                )
                return st.Failure(
                    st.INSECURE_URL,
                    f"{block}.{alias} {url}{where} is not https: the credential would be sent "
                    "unencrypted; use an https:// URL, or allow it with "
                    "--allow-insecure-http (local emulators and tests only)",
                )
        return None

    # --- credential → account ----------------------------------------------------------

    def batches(
        self, items: Sequence[P]
    ) -> tuple[list[Batch[P]], list[tuple[P, st.Failure | _Waiting]]]:
        """Split `items` into account batches; those that cannot be polled get their outcome."""
        early: list[tuple[P, st.Failure | _Waiting]] = []
        batches: dict[Hashable, Batch[P]] = {}
        for item in items:
            parsed = item.parsed
            if parsed is None:
                early.append((item, st.Failure(item.spec_reason, item.spec_error or "")))
                continue
            if (refused := self.refusal(parsed)) is not None:
                early.append((item, refused))
                continue
            credential = None
            if refs := parsed.config.secret_refs():
                # A provider object's Secrets live where it says, never where the endpoint is.
                namespace = parsed.account.secret_namespace if parsed.account else item.namespace
                try:
                    credential = CREDENTIAL_SEPARATOR.join(
                        self._credentials.lookup(namespace, ref) for ref in refs
                    )
                except SecretPending:
                    early.append((item, WAITING))
                    continue
                except SecretMissing as err:
                    early.append((item, st.Failure(st.SECRET_MISSING, str(err))))
                    continue
            provider = parsed.provider
            # One group of the scheduler can hold endpoints whose Secrets hold other credentials.
            # A provider object's account is its own (its budget), even on shared credentials.
            account = (
                provider.account_key(parsed.config),
                credential_fingerprint(credential),
                parsed.account,
            )
            batch = batches.get(account)
            if batch is None:
                batch = batches[account] = Batch(account, provider.name, parsed, credential, [])
            target = Target(
                key=f"{item.namespace}/{item.name}", config=parsed.config, credential=credential
            )
            batch.members.append((item, target))
        return list(batches.values()), early

    def paused_for(self, batch: Batch[Any]) -> float | None:
        """Seconds left of a provider's Retry-After pause of the batch's account, if one is on:
        polling now would only wait, holding a poll slot."""
        return self.accounts.paused_for(batch.account)

    # --- observe → redact ---------------------------------------------------------------

    async def observe(
        self, batch: Batch[P], *, share: float = 1.0
    ) -> list[tuple[P, Observation | st.Failure]]:
        """`share`: the part of the account's budget this member may use (membership.py)."""
        provider = batch.parsed.provider
        source = batch.parsed.account
        account = self.accounts.get(
            batch.provider,
            batch.account,
            requests_per_second=source.requests_per_second if source else None,
            burst=source.burst if source else None,
            label=account_label(source, batch.account),
            share=share,
        )
        targets = [target for _, target in batch.members]
        # Every string the provider sent is bounded and has the credential (and any fragment of
        # it) masked here, where it enters: status, Events and logs only see what this lets by.
        # Bodies are masked before an excerpt is cut from them (http.excerpt).
        redactor = redactor_for(batch.credential)
        try:
            with redacting(redactor):
                results: Mapping[str, Observation | ProviderError] = await provider.observe(
                    account.client, targets
                )
        except ProviderError as err:
            results = {t.key: err for t in targets}
        out: list[tuple[P, Observation | st.Failure]] = []
        for item, target in batch.members:
            result = results.get(target.key) or ProviderError(
                ErrorReason.BAD_RESPONSE, "the provider adapter returned no result"
            )
            if isinstance(result, ProviderError):
                message = clean(result.message, MESSAGE_CHARS, redactor)
                out.append((item, st.Failure(result.reason.value, message, result.retry_after)))
            else:
                out.append((item, clean_observation(result, redactor)))
        return out

    # --- status → write + Events ---------------------------------------------------------

    @staticmethod
    def resource_of(item: Polled, now: datetime) -> st.Resource:
        parsed = item.parsed
        return st.Resource(
            generation=item.generation,
            provider=parsed.provider.name if parsed else None,
            endpoint=parsed.provider.endpoint_label(parsed.config) if parsed else None,
            poll_interval=parsed.poll_interval if parsed else DEFAULT_POLL_INTERVAL_SECONDS,
            now=now,
            last_success=max(
                (t for t in (item.last_success, item.tracked_since) if t is not None),
                default=None,
            ),
            # A user's annotation: its value is shown back in status, bounded like the rest.
            reconcile_token=item.reconcile_token
            and clean(item.reconcile_token, RECONCILE_TOKEN_CHARS),
        )

    @classmethod
    def status_after(
        cls, item: Polled, result: Observation | st.Failure, now: datetime
    ) -> dict[str, Any]:
        resource = cls.resource_of(item, now)
        if isinstance(result, Observation):
            return st.after_observation(item.status, result, resource)
        return st.after_failure(item.status, result, resource)

    async def write(self, item: Polled, new: dict[str, Any], now: datetime) -> Written:
        """Write what changed of `new` and post an Event per transition; on WRITTEN the caller
        sets `item.status = new`."""
        patch = st.status_patch(item.status, new, now, self._poll_time_refresh)
        if patch is None:
            return Written.UNCHANGED
        try:
            alive = await self._sink.patch_status(item, patch)
        except WriteError as err:
            log.warning("%s", err)
            return Written.FAILED
        if not alive:
            return Written.GONE
        for event in st.events_between(item.status, new):
            # One line per transition is what an operator's log should carry at info level.
            log.info("%s/%s: %s: %s", item.namespace, item.name, event.reason, event.message)
            await self._sink.emit(item, event)
        return Written.WRITTEN
