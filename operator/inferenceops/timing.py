"""When to poll next and when a status goes stale: pure functions of state, interval and clock.

The scheduler asks; nothing here sleeps, reads a clock or touches I/O, so every rule is
unit-tested with plain numbers (tests/unit/test_timing.py). docs/operations.md explains the
factors to users.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .providers import ErrorReason, Phase
from .status import STALLED_REASONS, TRANSITIONAL_PHASES, stale_after

__all__ = ["PollPolicy", "stale_after"]


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How poll speed follows state (docs/operations.md); factors multiply `spec.pollInterval`."""

    transitional_factor: float = 1 / 3
    terminal_factor: float = 4.0
    not_found_factor: float = 4.0
    min_interval: float = 5.0
    #: First retry after a failed poll; doubles per failure, never beyond the interval.
    backoff_base: float = 2.0
    jitter: float = 0.1

    def interval_in(self, phase: Phase | None, interval: float) -> float:
        """The poll interval while in `phase`: faster while it moves, slower once it ended."""
        if phase in TRANSITIONAL_PHASES and phase is not Phase.PENDING:
            return max(self.min_interval, interval * self.transitional_factor)
        if phase is Phase.TERMINATED:
            return interval * self.terminal_factor
        return interval

    def after_success(self, phase: Phase, interval: float) -> float:
        return self.interval_in(phase, interval)

    def after_failure(
        self, reason: str, failures: int, interval: float, retry_after: float | None
    ) -> float:
        if reason == ErrorReason.NOT_FOUND:
            return interval * self.not_found_factor
        if reason in STALLED_REASONS:
            return interval
        backoff = min(interval, self.backoff_base * 2.0 ** max(0, failures - 1))
        return max(backoff, retry_after or 0.0)

    def after_restart(self, phase: Phase | None, interval: float, spread: float) -> float:
        """First poll of a resource that already has a status, after a restart: spread over
        its phase's own interval (a Provisioning endpoint is due within a third of it, not within
        the whole), so a restart neither stampedes the provider nor delays a change."""
        return random.uniform(0.0, self.interval_in(phase, interval) * spread)

    def jitter_factor(self) -> float:
        # Only ever earlier: a change must show within one interval, never 1.1 intervals.
        return random.uniform(1 - self.jitter, 1.0)
