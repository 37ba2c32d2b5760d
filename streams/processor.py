"""The worker's procedure for a run of records, independent of faust's plumbing.

Records of the events topic come in batches (a run of what the consumer has fetched, in
arrival order; one batch may hold several partitions, each in its offset order). For a
batch (docs/pipeline.md, Delivery):

1. decide every record on its partition's in-memory campaign (built from the table the
   first time a partition is seen after an assignment), in order;
2. send all their output events, RetireeStatus records and DeadLetters without waiting
   between them, then wait for every acknowledgement of the broker;
3. only then send the new states to the table's changelog (the partition of each entry
   is the partition of the record that produced it) and wait for those acknowledgements;
4. then write the states to the local store; the caller acknowledges the records, which
   lets faust commit their offsets.

So an output is acknowledged before the state that produced it is stored, and a record's
offset is committed only once its state is in the changelog. A crash anywhere before 4
re-decides the batch from the old state after a restart, which re-sends the same records
with the same event ids; a crash after 3 finds the states stored (inputs decided already
by event id, moments already decided). The entries of a batch reach the changelog in the
order the records were decided, so a crash in the middle of 3 leaves a prefix of them.

If a send fails, the in-memory campaigns of every partition of the batch are dropped
(they are ahead of the table) and the error propagates: the caller decides the batch
again (from the table) rather than skip it. A record the domain cannot decide ends the
batch before it: the records decided before it are completed, and the next call starts
with it, sets it aside as a dead letter and decides on from the table.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lifecert.domain.policy import Policy
from lifecert.events import codec
from lifecert.pipeline.topics import DEAD_LETTERS, TopicLayout
from streams.partition_state import PartitionCampaign, Step, TableValue
from streams.records import Position, Tick, Unusable, cause_of, classify, dead_letter

log = logging.getLogger("lifecert.worker")

# (topic, key, value) -> a future resolved when the broker acknowledged the record.
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]
# Called after a step's records are acknowledged and before its state is written (tests
# use it to crash the worker exactly there).
AfterSend = Callable[[Step], None]


class SendCancelled(Exception):
    """The producer cancelled a send's acknowledgement (its batch was dropped)."""


@dataclass(slots=True)
class Record:
    """One record of the events topic; ``token`` is the caller's handle on it (the faust
    event), passed back with each table write the record causes."""

    position: Position
    key: bytes | None
    value: bytes | None
    token: Any = None


class StateTable(Protocol):
    """The worker's state table, written in two steps (changelog, then local store)."""

    def entry(self, key: bytes, value: TableValue) -> Any:
        """One entry as the table writes it (encoded once for both steps)."""

    async def send(self, record: Record, entry: Any) -> Awaitable[Any]:
        """Send an entry to the changelog (in ``record``'s partition); a future
        resolved once the broker acknowledged it."""

    def sent(self, acks: Iterable[Any]) -> None:
        """Every entry sent is acknowledged (``acks``: what their futures gave)."""

    def store(self, record: Record, entry: Any) -> None:
        """Write an entry to the local store (the changelog has it already)."""

    def items(self) -> Iterable[tuple[bytes, TableValue]]:
        """Every entry of the assigned partitions (to rebuild a campaign)."""


@dataclass(slots=True)
class Counters:
    records: int = 0
    inputs: int = 0
    ticks: int = 0
    rejected: int = 0
    dead_letters: int = 0
    outputs: int = 0
    statuses: int = 0
    verdicts: int = 0
    batches: int = 0


@dataclass(slots=True)
class _Run:
    """What deciding a run of records produced, before anything is sent."""

    records: list[Record] = field(default_factory=list)
    sends: list[tuple[str, bytes | None, bytes]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    writes: list[tuple[Record, Any]] = field(default_factory=list)  # (record, entry)
    partitions: set[int] = field(default_factory=set)


class Processor:
    def __init__(
        self,
        policy: Policy,
        topics: TopicLayout,
        send: Send,
        table: StateTable,
        after_send: AfterSend | None = None,
    ) -> None:
        self.policy = policy
        self.topics = topics
        self._send = send
        self._table = table
        self._after_send = after_send
        self.campaigns: dict[int, PartitionCampaign] = {}
        self.counters = Counters()
        # Partition -> offset of the last record decided (for the progress report).
        self.positions: dict[int, int] = {}
        # A record the domain failed to decide, to set aside when the next call starts
        # with it (its partition's campaign was dropped when it failed).
        self._undecidable: tuple[Position, str] | None = None

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop in-memory campaigns (partitions revoked, or state no longer trusted)."""
        for partition in partitions:
            if self.campaigns.pop(partition, None) is not None:
                log.info("partition %d: campaign dropped from memory", partition)

    def campaign(self, partition: int) -> PartitionCampaign:
        found = self.campaigns.get(partition)
        if found is None:
            found = PartitionCampaign.restore(self.policy, partition, self._table.items())
            self.campaigns[partition] = found
            log.info(
                "partition %d: campaign restored from the table (%d retirees, pending %s)",
                partition, len(found),
                ",".join(m.kind for m in found.campaign.pending_moments) or "none",
            )
        return found

    async def process(self, records: Sequence[Record]) -> int:
        """Decide and complete a prefix of ``records`` (all of them unless the domain
        fails on one); the number completed, at least 1. Raises when sending failed:
        nothing of the batch is stored then, and it must be processed again."""
        if not records:
            return 0
        undecidable, self._undecidable = self._undecidable, None
        if undecidable is None or undecidable[0] != records[0].position:
            run = self._decide(records)
            if run.records:
                return await self._complete(run)
            undecidable, self._undecidable = self._undecidable, None
            assert undecidable is not None  # only a failure decides no record
        await self._set_aside(records[0], f"not decidable: {undecidable[1]}")
        return 1

    async def _complete(self, run: _Run) -> int:
        try:
            await self._send_all(run.sends)
            if self._after_send is not None:
                for step in run.steps:
                    self._after_send(step)
            await self._send_state(run.writes)
        except BaseException:
            self.forget(run.partitions)
            raise
        store = self._table.store
        for record, entry in run.writes:
            store(record, entry)
        self.counters.batches += 1
        return len(run.records)

    def _decide(self, records: Sequence[Record]) -> _Run:
        run = _Run()
        counters = self.counters
        entry = self._table.entry
        for record in records:
            position = record.position
            classified = classify(record.key, record.value)
            if isinstance(classified, Unusable):
                self._count(position)
                run.records.append(record)
                run.sends.append(self._dead_letter(record, classified.reason))
                continue
            part = self.campaign(position.partition)
            run.partitions.add(position.partition)
            try:
                if isinstance(classified, Tick):
                    step = part.tick(classified.tick, cause_of(classified.tick, position))
                else:
                    step = part.decide(classified.event, cause_of(classified.event, position))
            except Exception as exc:  # a record the domain cannot decide must not stop the rest
                # The fold updates states in place: what it did before failing is not
                # trusted. The records decided before it took their states as copies.
                self.forget([position.partition])
                log.exception("%s: the domain failed to decide the record", position.label())
                self._undecidable = (position, f"{type(exc).__name__}: {exc}")
                break
            self._count(position)
            if isinstance(classified, Tick):
                counters.ticks += 1
            else:
                counters.inputs += 1
            if step.rejection is not None:
                counters.rejected += 1
            run.records.append(record)
            run.steps.append(step)
            run.sends.extend(self._records_of(step))
            run.writes.extend((record, entry(key, value)) for key, value in step.writes)
        return run

    def _count(self, position: Position) -> None:
        self.counters.records += 1
        self.positions[position.partition] = position.offset

    def _records_of(self, step: Step) -> list[tuple[str, bytes | None, bytes]]:
        for_type = self.topics.for_type
        records = [
            (for_type(event["type"]).name, event["retiree_id"].encode(), codec.encode(event))
            for event in (*step.outputs, *step.verdicts, *step.statuses)
        ]
        self.counters.outputs += len(step.outputs)
        self.counters.verdicts += len(step.verdicts)
        self.counters.statuses += len(step.statuses)
        return records

    def _dead_letter(self, record: Record, reason: str) -> tuple[str, bytes | None, bytes]:
        self.counters.dead_letters += 1
        # The reason may quote a decoded field; keep it out of the log (personal data).
        log.warning("%s: set aside as a dead letter", record.position.label())
        event = dead_letter(record.position, record.key, record.value, reason)
        return self.topics[DEAD_LETTERS].name, record.key, codec.encode(event)

    async def _set_aside(self, record: Record, reason: str) -> None:
        self._count(record.position)
        await self._send_all([self._dead_letter(record, reason)])

    async def _send_all(self, records: list[tuple[str, bytes | None, bytes]]) -> None:
        send = self._send
        pending = [await send(topic, key, value) for topic, key, value in records]
        await _all_acknowledged(pending)

    async def _send_state(self, writes: list[tuple[Record, Any]]) -> None:
        send = self._table.send
        pending = [await send(record, entry) for record, entry in writes]
        self._table.sent(await _all_acknowledged(pending))


async def _all_acknowledged(pending: list[Awaitable[Any]]) -> list[Any]:
    """Wait for every acknowledgement; their results. The first failure is raised once
    all are done. Unlike ``gather``, a cancelled wait leaves the producer's futures alone."""
    if not pending:
        return []
    futures = [asyncio.ensure_future(ack) for ack in pending]
    # One at a time: the broker acknowledges a produce request's records together, so
    # most are done once an earlier one is (asyncio.wait over thousands of futures costs
    # a callback on each: 5 % of the worker's time).
    for future in futures:
        if not future.done():
            await asyncio.wait((future,))
    cancelled = sum(future.cancelled() for future in futures)
    if cancelled:
        # The producer's future, not this task, was cancelled: a failed send, to be
        # decided again (a CancelledError here would end the decision loop unnoticed).
        raise SendCancelled(f"{cancelled} of {len(futures)} sends were cancelled")
    # Retrieve every failure (else asyncio logs each as never retrieved); raise the first.
    failures = [exc for exc in (future.exception() for future in futures) if exc is not None]
    if failures:
        raise failures[0]
    return [future.result() for future in futures]
