"""One partition's campaign, and what each of its records changes.

A worker holds a :class:`PartitionCampaign` per assigned partition of the events topic: the
domain's :class:`~lifecert.domain.campaign.Campaign` over the retirees whose records are in
that partition. Deciding a record returns a :class:`Step` (the output events, the
RetireeStatus records, and the table writes that make the new state durable); the caller
sends the records, waits for the broker's acks, and only then applies the writes.

A decision touches the input's retiree and every retiree a clock moment gave an output to.
Each touched retiree whose state changed is written; a RetireeStatus is sent for the
input's retiree when its reported fields changed (enrollment included), and for every
retiree with an output.

The durable form lives in a key-value table, one entry per retiree plus one per partition:

- ``b"<partition>/<retiree id>"`` -> ``{"seq": n, "state": RetireeState.to_dict()}``
  (``seq`` is the enrollment order, which clock moments follow);
- ``b"<partition>/"`` -> ``{"policy": name, "pending_moments": [kind, ...]}`` (absent
  until the partition's first moment is decided: then every moment is pending).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lifecert.domain.campaign import Campaign
from lifecert.domain.policy import Policy
from lifecert.domain.state import RetireeState
from lifecert.domain.verdicts import verdict
from lifecert.events.catalogue import Event
from streams.records import retiree_status, status_fields

TableValue = dict[str, Any]


def state_key(partition: int, retiree_id: str) -> bytes:
    return f"{partition}/{retiree_id}".encode()


def meta_key(partition: int) -> bytes:
    return f"{partition}/".encode()


def partition_prefix(partition: int) -> bytes:
    return f"{partition}/".encode()


@dataclass(slots=True)
class Step:
    """The effects of one decided record, in the order they must be made durable."""

    outputs: list[Event] = field(default_factory=list)
    statuses: list[Event] = field(default_factory=list)
    writes: list[tuple[bytes, TableValue]] = field(default_factory=list)
    rejection: str | None = None
    # The EventRejected of the rejection (as replay makes it), when it is reported.
    verdicts: list[Event] = field(default_factory=list)


class PartitionCampaign:
    def __init__(
        self, policy: Policy, partition: int, campaign: Campaign, seqs: dict[str, int]
    ) -> None:
        self.policy = policy
        self.partition = partition
        self.campaign = campaign
        self._seqs = seqs
        self._next_seq = max(seqs.values(), default=-1) + 1

    @classmethod
    def fresh(cls, policy: Policy, partition: int) -> PartitionCampaign:
        return cls(policy, partition, Campaign(policy), {})

    @classmethod
    def restore(
        cls, policy: Policy, partition: int, items: Iterable[tuple[bytes, TableValue]]
    ) -> PartitionCampaign:
        """Rebuild from the table entries of ``partition`` (others are ignored)."""
        prefix, meta = partition_prefix(partition), meta_key(partition)
        pending = [m.kind for m in policy.moments]
        entries: list[tuple[int, dict[str, Any]]] = []
        for key, value in items:
            if not key.startswith(prefix):
                continue
            if key == meta:
                if value.get("policy") != policy.name:
                    raise ValueError(
                        f"partition {partition}'s state was decided under policy "
                        f"{value.get('policy')!r}, not {policy.name!r}: use another app id"
                    )
                pending = list(value["pending_moments"])
            else:
                entries.append((int(value["seq"]), value["state"]))
        entries.sort(key=lambda entry: entry[0])
        snapshot = {
            "policy": policy.name,
            "pending_moments": pending,
            "retirees": [state for _, state in entries],
        }
        seqs = {state["retiree_id"]: seq for seq, state in entries}
        return cls(policy, partition, Campaign.restore(policy, snapshot), seqs)

    def __len__(self) -> int:
        return len(self.campaign.retirees)

    def decide(self, event: Event, cause: str) -> Step:
        """Decide one input event (and any clock moment due before it)."""
        retirees = self.campaign.retirees
        retiree_id = event["retiree_id"]
        known = retirees.get(retiree_id)
        before = known.to_dict() if known is not None else None
        before_status = status_fields(known) if known is not None else None
        pending = len(self.campaign.pending_moments)
        outputs, rejection = self.campaign.decide(event)
        step = Step(outputs=outputs, rejection=rejection)
        if rejection is not None:
            judged = verdict(event, rejection, self.policy)
            if judged is not None:
                step.verdicts.append(judged)
        at = event["recorded_at"]
        # Retirees a clock moment (decided first) gave an output to, then the event's own.
        touched = dict.fromkeys(o["retiree_id"] for o in outputs if o["retiree_id"] != retiree_id)
        for other in touched:
            self._record(step, retirees[other], at, cause)
        state = retirees.get(retiree_id)
        if state is not None:
            changed = state.to_dict()
            if changed != before or retiree_id in (o["retiree_id"] for o in outputs):
                self._record(step, state, at, cause, state_dict=changed,
                             report=status_fields(state) != before_status)
        if len(self.campaign.pending_moments) != pending:
            step.writes.append(self._meta())
        return step

    def tick(self, tick: Event, cause: str) -> Step:
        """Decide a ClockTick: every pending moment at or before its instant (a tick of
        another policy, or for a moment already decided, changes nothing)."""
        if tick["policy"] != self.policy.name:
            return Step()
        pending = len(self.campaign.pending_moments)
        outputs = self.campaign.advance_to(tick["at"])
        step = Step(outputs=outputs)
        retirees = self.campaign.retirees
        for retiree_id in dict.fromkeys(o["retiree_id"] for o in outputs):
            self._record(step, retirees[retiree_id], tick["at"], cause)
        if len(self.campaign.pending_moments) != pending:
            step.writes.append(self._meta())
        return step

    def _record(
        self,
        step: Step,
        state: RetireeState,
        at: datetime,
        cause: str,
        *,
        state_dict: dict[str, Any] | None = None,
        report: bool = True,
    ) -> None:
        seq = self._seqs.get(state.retiree_id)
        if seq is None:
            seq = self._seqs[state.retiree_id] = self._next_seq
            self._next_seq += 1
        value = {"seq": seq, "state": state_dict if state_dict is not None else state.to_dict()}
        step.writes.append((state_key(self.partition, state.retiree_id), value))
        if report:
            step.statuses.append(retiree_status(self.policy.name, state, at, cause))

    def _meta(self) -> tuple[bytes, TableValue]:
        return meta_key(self.partition), {
            "policy": self.policy.name,
            "pending_moments": [m.kind for m in self.campaign.pending_moments],
        }
