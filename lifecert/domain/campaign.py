"""A campaign: the fold over every retiree plus the campaign clock, in log order.

``Campaign`` is what ``lifecert replay`` drives, and what a worker drives for the retirees
of its partitions: feed it events in log order with ``decide``; it decides each clock
moment before the first event recorded at or after it, and ``advance_to`` decides the
moments due by an instant (the end of a replay, or a clock event from the scheduler).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from lifecert.domain.fold import apply_moment, decide
from lifecert.domain.policy import Moment, Policy
from lifecert.domain.state import RetireeState

Event = dict[str, Any]


# What deciding one input produced: the output events (clock moments it triggered first,
# then its own) and its rejection reason, or None when applied. A plain tuple: replay
# makes one per event, and a NamedTuple costs a Python-level constructor call.
Outcome = tuple[list[Event], str | None]


class Campaign:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        # Insertion order is enrollment order: clock moments visit retirees in it.
        self.retirees: dict[str, RetireeState] = {}
        self._pending: list[Moment] = list(policy.moments)
        self._next_at: datetime | None = self._pending[0].at if self._pending else None

    def decide(self, event: Event) -> Outcome:
        """Decide one input event: ``(outputs, rejection reason or None)``."""
        next_at = self._next_at
        retiree_id = event["retiree_id"]
        known = self.retirees.get(retiree_id)
        if next_at is not None and event["recorded_at"] >= next_at:
            moments = self.advance_to(event["recorded_at"])
            state, outputs, rejection = decide(known, event, self.policy)
            outputs = moments + outputs
        else:
            state, outputs, rejection = decide(known, event, self.policy)
        if known is None and state is not None:
            self.retirees[retiree_id] = state
        return outputs, rejection

    def advance_to(self, instant: datetime) -> list[Event]:
        """Decide every pending clock moment at or before ``instant``."""
        outputs: list[Event] = []
        while self._next_at is not None and self._next_at <= instant:
            moment = self._pending.pop(0)
            self._next_at = self._pending[0].at if self._pending else None
            for state in self.retirees.values():
                decided = apply_moment(state, moment, self.policy)
                if decided:
                    outputs.extend(decided)
        return outputs

    @property
    def pending_moments(self) -> tuple[Moment, ...]:
        return tuple(self._pending)

    def statuses(self) -> Iterator[tuple[str, str]]:
        """(retiree_id, status) for every enrolled retiree, in enrollment order."""
        for retiree_id, state in self.retirees.items():
            yield retiree_id, state.status()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able snapshot from which ``restore`` continues exactly."""
        return {
            "policy": self.policy.name,
            "pending_moments": [m.kind for m in self._pending],
            "retirees": [s.to_dict() for s in self.retirees.values()],
        }

    @classmethod
    def restore(cls, policy: Policy, snapshot: dict[str, Any]) -> Campaign:
        if snapshot["policy"] != policy.name:
            raise ValueError(
                f"snapshot was taken under policy {snapshot['policy']!r}, not {policy.name!r}"
            )
        campaign = cls(policy)
        campaign._pending = [m for m in policy.moments if m.kind in snapshot["pending_moments"]]
        campaign._next_at = campaign._pending[0].at if campaign._pending else None
        for data in snapshot["retirees"]:
            state = RetireeState.from_dict(data)
            campaign.retirees[state.retiree_id] = state
        return campaign
