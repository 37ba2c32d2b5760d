"""The worker's per-record procedure, independent of faust's plumbing.

For each record of the events topic, in partition order (docs/pipeline.md, Delivery):

1. decide it on the partition's in-memory campaign (built from the table the first time a
   partition is seen after an assignment);
2. send the output events, the RetireeStatus records (or the DeadLetter) and wait for the
   broker's acks;
3. only then write the new state to the table.

A crash between 2 and 3 re-decides the record from the old state after a restart, which
re-sends the same records with the same event ids. If sending fails, the partition's
in-memory campaign is dropped (it is ahead of the table) and the error propagates: the
caller decides the record again (from the table) rather than skip it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from lifecert.domain.policy import Policy
from lifecert.events import codec
from lifecert.pipeline.topics import DEAD_LETTERS, TopicLayout
from streams.partition_state import PartitionCampaign, Step, TableValue
from streams.records import Position, Tick, Unusable, cause_of, classify, dead_letter

log = logging.getLogger("lifecert.worker")

# (topic, key, value) -> a future resolved when the broker acknowledged the record.
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]
TableItems = Callable[[], Iterable[tuple[bytes, TableValue]]]
# Called after a step's records are acknowledged and before its state is written (tests
# use it to crash the worker exactly there).
AfterSend = Callable[[Step], None]


@dataclass(slots=True)
class Counters:
    records: int = 0
    inputs: int = 0
    ticks: int = 0
    rejected: int = 0
    dead_letters: int = 0
    outputs: int = 0
    statuses: int = 0


class Processor:
    def __init__(
        self,
        policy: Policy,
        topics: TopicLayout,
        send: Send,
        table: MutableMapping[bytes, TableValue],
        table_items: TableItems,
        after_send: AfterSend | None = None,
    ) -> None:
        self.policy = policy
        self.topics = topics
        self._send = send
        self._table = table
        self._table_items = table_items
        self._after_send = after_send
        self.campaigns: dict[int, PartitionCampaign] = {}
        self.counters = Counters()
        # Partition -> offset of the last record processed (for the progress report).
        self.positions: dict[int, int] = {}

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop in-memory campaigns (partitions revoked, or state no longer trusted)."""
        for partition in partitions:
            if self.campaigns.pop(partition, None) is not None:
                log.info("partition %d: campaign dropped from memory", partition)

    def campaign(self, partition: int) -> PartitionCampaign:
        found = self.campaigns.get(partition)
        if found is None:
            found = PartitionCampaign.restore(self.policy, partition, self._table_items())
            self.campaigns[partition] = found
            log.info(
                "partition %d: campaign restored from the table (%d retirees, pending %s)",
                partition, len(found),
                ",".join(m.kind for m in found.campaign.pending_moments) or "none",
            )
        return found

    async def process(self, position: Position, key: bytes | None, value: bytes | None) -> None:
        self.counters.records += 1
        self.positions[position.partition] = position.offset
        record = classify(key, value)
        if isinstance(record, Unusable):
            await self._dead_letter(position, key, value, record.reason)
            return
        part = self.campaign(position.partition)
        try:
            if isinstance(record, Tick):
                self.counters.ticks += 1
                step = part.tick(record.tick, cause_of(record.tick, position))
            else:
                self.counters.inputs += 1
                step = part.decide(record.event, cause_of(record.event, position))
        except Exception as exc:  # a record the domain cannot decide must not stop the rest
            # The fold updates states in place: what it did before failing is not trusted.
            self.forget([position.partition])
            log.exception("%s: the domain failed to decide the record", position.label())
            await self._dead_letter(
                position, key, value, f"not decidable: {type(exc).__name__}: {exc}"
            )
            return
        if step.rejection is not None:
            self.counters.rejected += 1
        try:
            await self._send_all(self._records_of(step))
        except BaseException:
            self.forget([position.partition])
            raise
        if self._after_send is not None:
            self._after_send(step)
        for table_key, table_value in step.writes:
            self._table[table_key] = table_value

    def _records_of(self, step: Step) -> list[tuple[str, bytes | None, bytes]]:
        records = [
            (self.topics.for_type(event["type"]).name, event["retiree_id"].encode(),
             codec.encode(event))
            for event in (*step.outputs, *step.statuses)
        ]
        self.counters.outputs += len(step.outputs)
        self.counters.statuses += len(step.statuses)
        return records

    async def _dead_letter(
        self, position: Position, key: bytes | None, value: bytes | None, reason: str
    ) -> None:
        self.counters.dead_letters += 1
        # The reason may quote a decoded field; keep it out of the log (personal data).
        log.warning("%s: set aside as a dead letter", position.label())
        event = dead_letter(position, key, value, reason)
        await self._send_all([(self.topics[DEAD_LETTERS].name, key, codec.encode(event))])

    async def _send_all(self, records: list[tuple[str, bytes | None, bytes]]) -> None:
        pending = [await self._send(topic, key, value) for topic, key, value in records]
        for ack in pending:
            await ack
