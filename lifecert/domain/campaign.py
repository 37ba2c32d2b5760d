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

from lifecert.domain.clock import MomentClock
from lifecert.domain.fold import apply_moment, decide
from lifecert.domain.policy import DEADLINE, Moment, Policy
from lifecert.domain.state import RetireeState
from lifecert.events.catalogue import Event

# What deciding one input produced: the output events (clock moments it triggered first,
# then its own) and its rejection reason, or None when applied. A plain tuple: replay
# makes one per event, and a NamedTuple costs a Python-level constructor call.
Outcome = tuple[list[Event], str | None]


class Campaign:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        # Insertion order is enrollment order: clock moments visit retirees in it.
        self.retirees: dict[str, RetireeState] = {}
        self._clock = MomentClock(policy.moments)
        self._deadline_passed = False

    def decide(self, event: Event) -> Outcome:
        """Decide one input event: ``(outputs, rejection reason or None)``."""
        next_at = self._clock.next_at
        retiree_id = event["retiree_id"]
        known = self.retirees.get(retiree_id)
        if next_at is not None and event["recorded_at"] >= next_at:
            moments = self.advance_to(event["recorded_at"])
            state, outputs, rejection = decide(known, event, self.policy)
            outputs = moments + outputs
        else:
            state, outputs, rejection = decide(known, event, self.policy)
        if known is None and state is not None:
            state.deadline_passed = self._deadline_passed
            self.retirees[retiree_id] = state
        return outputs, rejection

    def advance_to(self, instant: datetime) -> list[Event]:
        """Decide every pending clock moment at or before ``instant``."""
        outputs: list[Event] = []
        for moment in self._clock.due(instant):
            if moment.kind == DEADLINE:
                self._deadline_passed = True
            for state in self.retirees.values():
                decided = apply_moment(state, moment, self.policy)
                if decided:
                    outputs.extend(decided)
        return outputs

    @property
    def pending_moments(self) -> tuple[Moment, ...]:
        return self._clock.pending

    def statuses(self) -> Iterator[tuple[str, str]]:
        """(retiree_id, status) for every enrolled retiree, in enrollment order."""
        for retiree_id, state in self.retirees.items():
            yield retiree_id, state.status()

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able snapshot from which ``restore`` continues exactly."""
        return {
            "policy": self.policy.name,
            "pending_moments": [m.kind for m in self._clock.pending],
            "retirees": [s.to_dict() for s in self.retirees.values()],
        }

    @classmethod
    def restore(cls, policy: Policy, snapshot: dict[str, Any]) -> Campaign:
        if snapshot["policy"] != policy.name:
            raise ValueError(
                f"snapshot was taken under policy {snapshot['policy']!r}, not {policy.name!r}"
            )
        campaign = cls(policy)
        pending = set(snapshot["pending_moments"])
        campaign._clock = MomentClock(
            policy.moments, fired=[m.kind for m in policy.moments if m.kind not in pending]
        )
        campaign._deadline_passed = any(
            m.kind == DEADLINE for m in policy.moments if m.kind not in pending
        )
        for data in snapshot["retirees"]:
            state = RetireeState.from_dict(data)
            state.deadline_passed = campaign._deadline_passed
            campaign.retirees[state.retiree_id] = state
        return campaign
