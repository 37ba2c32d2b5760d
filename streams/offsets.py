"""Each partition's records must reach the worker one by one, in offset order.

The events topic has consecutive offsets (deletion by time is off and no producer writes
transactions), so a record whose offset is not the next one means the consumer skipped or
repeated records. A repeat (offset below the next expected, e.g. a re-seek to the
committed offset) was decided already: it is acknowledged and skipped. A hole (offset above)
means records were lost on the way (see :mod:`streams.faust_fixes`): deciding on would
decide later events without the missing ones, so the worker exits instead (code 75), and
the restarted worker reads again from the last committed offset, before the hole.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Literal

Verdict = Literal["next", "seen", "hole"]


class OffsetGuard:
    def __init__(self, committed: Callable[[Hashable], int | None]) -> None:
        """``committed(tp)``: the group's committed offset of ``tp`` (the next record to
        read), or None when unknown (then the first record seen sets the sequence)."""
        self._committed = committed
        self._next: dict[Hashable, int] = {}

    def check(self, tp: Hashable, offset: int) -> Verdict:
        expected = self._next.get(tp)
        if expected is None:
            expected = self._committed(tp)
            if expected is None:
                return "next"
        if offset == expected:
            return "next"
        return "seen" if offset < expected else "hole"

    def expected(self, tp: Hashable) -> int | None:
        found = self._next.get(tp)
        return found if found is not None else self._committed(tp)

    def done(self, tp: Hashable, offset: int) -> None:
        self._next[tp] = offset + 1

    def forget(self, tps: Iterable[Hashable]) -> None:
        """Partitions revoked: their sequence starts again from the committed offset."""
        for tp in tps:
            self._next.pop(tp, None)
