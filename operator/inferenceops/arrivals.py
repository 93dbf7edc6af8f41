"""New or edited resources of a listing provider's group arriving in bursts (a start-up listing,
a GitOps sync): the group's first poll waits until the burst is over, so thousands cost a few
listings, not one each (`scheduler.SchedulerSettings.arrival_quiet`)."""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Arrivals"]


class Arrivals:
    """New or edited resources of listing groups arriving in bursts: a group's first poll waits
    until none has arrived for `arrival_quiet` seconds, at most `arrival_max_wait` after the
    first (see `SchedulerSettings`)."""

    def __init__(self, quiet: float, max_wait: float) -> None:
        self._quiet, self._max_wait = quiet, max_wait
        #: (first, last) arrival time of each group's burst.
        self._bursts: dict[Hashable, tuple[float, float]] = {}

    def arrived(self, group: Hashable, now: float) -> float:
        """One more of `group` arrived at `now`: when the group's poll is due."""
        first, _ = self._bursts.get(group, (now, now))
        self._bursts[group] = (first, now)
        return self._due(first, now)

    def holding(self, group: Hashable, now: float) -> float | None:
        """When `group`'s poll is due if its burst is still arriving at `now`; else None (and
        the burst, if any, is over)."""
        burst = self._bursts.get(group)
        if burst is None:
            return None
        due = self._due(*burst)
        if now < due:
            return due
        del self._bursts[group]
        return None

    def end(self, group: Hashable) -> None:
        self._bursts.pop(group, None)

    def _due(self, first: float, last: float) -> float:
        return min(last + self._quiet, first + self._max_wait)
