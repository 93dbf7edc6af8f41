"""Running a due group of endpoints: its batches through the poll slots (`gates.PollSlots`), a
Retry-After pause answered without sending, the outcome told to the provider object, and each
result handed to `recorder.Recorder` (as kopf's `processing.py` to the scheduler's `queueing.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from . import status as st
from .accounts import AccountPool
from .aiotasks import concurrently
from .api import ParsedSpec
from .clock import Clock
from .endpoints import Endpoint, Key
from .gates import PollSlots, host_of
from .poller import WAITING, Batch, Poller
from .providers import ErrorReason, Observation
from .recorder import Recorder
from .timestamps import format_timestamp
from .workqueue import ScheduledQueue

__all__ = ["AccountOutcome", "PollRunner"]

log = logging.getLogger(__name__)

#: Told a provider object's account outcome: (parsed spec, failure reason or None for accepted,
#: message, paused until).
AccountOutcome = Callable[[ParsedSpec | None, str | None, str, datetime | None], None]


class PollRunner:
    def __init__(
        self,
        poller: Poller,
        recorder: Recorder,
        polls: ScheduledQueue[Key],
        accounts: AccountPool,
        slots: PollSlots,
        clock: Clock,
        account_outcome: AccountOutcome,
        *,
        share: Callable[[Endpoint], float] = lambda entry: 1.0,
    ) -> None:
        self._poller = poller
        self._recorder = recorder
        self._polls = polls
        self._accounts = accounts
        self._slots = slots
        self._clock = clock.monotonic
        self._wallclock = clock.now
        self._account_outcome = account_outcome
        #: The share of an endpoint's account budget this member may use (members divide it).
        self._share = share

    async def run(self, entries: list[Endpoint]) -> None:
        """Poll a due group: its early outcomes recorded, its batches polled concurrently."""
        in_flight = self._accounts.metrics.polls_in_flight
        in_flight.inc(len(entries))
        try:
            batches, early = self._poller.batches(entries)
            for entry, outcome in early:
                if outcome is not WAITING:  # a Secret being read: its arrival re-polls
                    if outcome.reason in (st.SECRET_MISSING, st.INSECURE_URL):
                        self._account_outcome(entry.parsed, outcome.reason, outcome.message, None)
                    await self._recorder.record(entry, outcome)
            if batches:
                await concurrently([self._batch(batch) for batch in batches])
        except Exception:
            # A bug must be loud, not a silent "Unknown"; the resources are retried later.
            log.exception("poll of %d resource(s) failed unexpectedly", len(entries))
            for entry in entries:
                failure = st.Failure(
                    st.INTERNAL_ERROR, "the operator failed to process the poll; see its logs"
                )
                await self._recorder.record(entry, failure)
        finally:
            in_flight.dec(len(entries))

    async def _batch(self, batch: Batch[Endpoint]) -> None:
        paused = self._poller.paused_for(batch)
        if paused is not None:
            # The provider asked this account to wait: say so and until when, and come back
            # then, instead of holding poll slots while its requests sleep.
            until = self._wallclock() + timedelta(seconds=paused)
            failure = st.Failure(
                ErrorReason.RATE_LIMITED.value,
                "the provider asked this account to wait (Retry-After); polling resumes at "
                + format_timestamp(until),
            )
            self._account_outcome(batch.parsed, failure.reason, failure.message, until)
            for entry, _ in batch.members:
                if not self._polls.is_dirty(entry.key):
                    await self._recorder.record(entry, failure, at=self._clock() + paused)
            return
        host = host_of(batch.account, batch.provider)
        lane = self._accounts.lane(batch.account, host)
        async with self._slots.held(batch.provider, host, lane):
            results = await self._poller.observe(batch, share=self._share(batch.members[0][0]))
        if batch.parsed.account is not None:
            self._report_call(batch, [r for _, r in results])
        # One clock reading and one jitter draw for the batch: its members stay due together
        # (so the next cycle is one listing again), however long their writes take.
        timing = self._recorder.timing()
        recordings = []
        for entry, result in results:
            if isinstance(result, Observation) and self._recorder.unchanged(entry, result, timing):
                continue
            recordings.append(self._recorder.record(entry, result, timing=timing))
        if recordings:
            await concurrently(recordings)

    def _report_call(self, batch: Batch[Endpoint], results: list[Observation | st.Failure]) -> None:
        """A provider object's account was called: any answer means its credentials were
        accepted; else the first failure says why (and until when, if it was a 429)."""
        failures = [r for r in results if isinstance(r, st.Failure)]
        if len(failures) < len(results):
            self._account_outcome(batch.parsed, None, "", None)
        elif failures:
            left = self._poller.paused_for(batch)
            until = self._wallclock() + timedelta(seconds=left) if left else None
            self._account_outcome(batch.parsed, failures[0].reason, failures[0].message, until)
