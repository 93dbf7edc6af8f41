"""The group's Leases as one member's watch shows them (membership.py): who renewed when.

As client-go's leader election judges a Lease, a renewal counts from the local monotonic time
at which the Lease's renewTime was seen to change, so no other host's clock is trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Peers", "Seen"]


@dataclass(slots=True)
class Seen:
    renewed: str
    observed_at: float
    duration: float
    view: str
    #: Its Lease was deleted by someone else: live until it would have expired, then forgotten.
    deleted: bool = False


class Peers:
    """The group's Leases as this member's watch shows them. A renewal counts from the local
    monotonic time it was seen to change; a Lease deleted by someone else stays until it would
    have expired (its member may still be polling)."""

    def __init__(self, me: str, duration: float) -> None:
        self._me, self._duration = me, duration
        self.seen: dict[str, Seen] = {}
        #: When our own renewals were last seen through the watch: if the watch stops, others'
        #: silence means nothing and nobody is dropped on it.
        self.self_seen_at = -float("inf")

    def renewed(self, member: str, spec: Mapping[str, Any], view: str, now: float) -> None:
        renewed = str(spec.get("renewTime") or "")
        duration = float(spec.get("leaseDurationSeconds") or self._duration)
        seen = self.seen.get(member)
        if seen is None or seen.renewed != renewed:
            seen = self.seen[member] = Seen(renewed, now, duration, view)
            if member == self._me:
                self.self_seen_at = now
        seen.view, seen.duration = view, duration

    def left(self, member: str) -> None:
        self.seen.pop(member, None)

    def deleted(self, member: str) -> None:
        if (seen := self.seen.get(member)) is not None:
            seen.deleted = True

    def live_others(self, now: float, view: Sequence[str]) -> set[str]:
        expired = [
            m for m, s in self.seen.items() if s.deleted and s.observed_at + s.duration <= now
        ]
        for member in expired:
            del self.seen[member]
        if now - self.self_seen_at < self._duration:
            return {
                m
                for m, s in self.seen.items()
                if m != self._me and s.observed_at + s.duration > now
            }
        # Our own renewals do not show in the watch: others' silence means nothing. Keep whom the
        # last view had (and is not deleted); drop no one, bring no one back.
        return {m for m in view if m != self._me and m in self.seen}

    def expiries(self) -> list[float]:
        return [s.observed_at + s.duration for m, s in self.seen.items() if m != self._me]
