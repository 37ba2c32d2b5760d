"""The campaign clock: a policy's moments, and the rule that fires them.

A clock moment (the home-visit sweep, the deadline) is decided before the first event, in
log order, whose ``recorded_at`` is at or after it (docs/rules.md, "Time"). The campaign
(replay, the worker) and the scheduler (``lifecert publish``, ``lifecert clock``) share this
one implementation of that rule.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime

from lifecert.domain.policy import Moment
from lifecert.events.time import end_of_day, to_utc


class MomentClock:
    """The pending clock moments of a policy, and the rule that fires them.

    ``next_at`` is the instant of the next pending moment (``None`` when none is left):
    an event with ``recorded_at >= next_at`` makes :meth:`due` return the moments to
    decide before it. Cheap enough to ask per event (one comparison)."""

    __slots__ = ("_pending", "next_at")

    def __init__(self, moments: Iterable[Moment], *, fired: Collection[str] = ()) -> None:
        self._pending = sorted((m for m in moments if m.kind not in fired), key=lambda m: m.at)
        self.next_at: datetime | None = self._pending[0].at if self._pending else None

    @property
    def pending(self) -> tuple[Moment, ...]:
        return tuple(self._pending)

    def due(self, instant: datetime) -> list[Moment]:
        """Fire and return, in time order, every pending moment at or before ``instant``
        (the ``recorded_at`` of the next event, or the end of a run)."""
        fired: list[Moment] = []
        while self.next_at is not None and self.next_at <= instant:
            fired.append(self._pending.pop(0))
            self.next_at = self._pending[0].at if self._pending else None
        return fired


def cutoff(day: date) -> datetime:
    """The instant ``day`` ends in Asia/Shanghai (00:00 of the next day), in UTC: moments
    at or before it are due by the end of ``day`` (replay's ``--until``)."""
    return to_utc(end_of_day(day))


