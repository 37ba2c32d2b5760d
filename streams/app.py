"""The faust app of ``lifecert worker``: one agent over the events topic, one state table.

Faust choices that matter for correctness (see docs/pipeline.md, Delivery):

- **concurrency 1**: each partition is decided strictly in log order by one decision
  loop. The agent only hands the records it receives to that loop, which takes whatever
  has arrived (up to ``BATCH_MAX`` records) as one batch: decides it, sends all its
  outputs, waits for their acknowledgements once, then writes the batch's states
  (:mod:`streams.processor`). While it holds records it waits at most ``BATCH_WAIT`` for
  more, never for a record to arrive.
- **acks by hand**: faust acks a record in a ``finally`` when the agent's loop moves on,
  also when the body raised or was cancelled, and the offset is then committed. The agent
  switches that off (``stream.enable_acks = False``, as ``Stream.take`` does) and the
  decision loop acks a record only once its outputs are acknowledged by the broker and its
  state is in the changelog (acknowledged too) and the local store. faust's offset
  tracking commits only up to a record whose predecessors are all acked (and past an
  unacked one when a later one was acked first: faust-streaming issue 606), so records
  are acked in offset order. A rebalance waits until every record handed out is acked.
- **records in offset order**: faust 0.15 can lose records when it resumes a partition
  after recovering a table (:mod:`streams.faust_fixes` reorders that step); the decision
  loop also checks each partition's offsets are consecutive and stops rather than skip one
  (:mod:`streams.offsets`).
- **at-least-once**, not faust's exactly-once mode: the outputs carry deterministic event
  ids and their consumers dedupe by id. The table's changelog entries are sent by the
  worker with an explicit partition (a batch may hold several partitions; faust's
  ``table[key] = value`` takes the partition of the task's current event) and their
  acknowledgements are awaited before the records are acked, so a committed offset never
  runs ahead of the changelog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import faust
from faust.stores.base import SerializedStore
from faust.transport.consumer import Consumer
from faust.types import TP, EventT

from lifecert.domain.policy import load_policy
from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.topics import EVENTS, layout
from streams import faust_fixes
from streams import faust_internals as internals
from streams.offsets import OffsetGuard
from streams.partition_state import Step, TableValue
from streams.processor import AfterSend, Processor, Record
from streams.records import Position

log = logging.getLogger("lifecert.worker")

TABLE_NAME = "retiree-state"
FAULT_ENV = "LIFECERT_WORKER_FAULT"
EX_TEMPFAIL = 75  # the worker stopped itself and should be started again
# After a failure to send (broker unreachable past the producer's own retries), the record
# is decided again from the table's state after this many seconds, doubling up to the cap.
RETRY_FIRST, RETRY_CAP = 0.5, 30.0
# Records decided as one batch at most (outputs sent together, acknowledgements awaited
# once); and records received but not yet decided at most.
BATCH_MAX = int(os.environ.get("LIFECERT_WORKER_BATCH", "2000"))
INBOX_SIZE = 2 * BATCH_MAX
# A batch of fewer than BATCH_FILL records waits up to BATCH_WAIT seconds for more.
BATCH_FILL = BATCH_MAX // 4
BATCH_WAIT = float(os.environ.get("LIFECERT_WORKER_BATCH_WAIT", "0.05"))
# Seconds between two progress lines in the log (counts and offsets, no personal data).
REPORT_EVERY = float(os.environ.get("LIFECERT_WORKER_REPORT_EVERY", "30"))


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    bootstrap: str
    app_id: str
    data_dir: Path
    policy: str = "foshan-2017"
    topic_prefix: str | None = None  # None: LIFECERT_TOPIC_PREFIX, else no prefix
    store: str = "auto"  # auto (RocksDB when rocksdict imports), rocksdb, memory
    commit_interval: float = 2.8  # seconds between offset commits (faust's default)
    # A worker that stops heart-beating (killed) holds its partitions this long.
    session_timeout: float = 30.0
    # The table's changelog topic's replication: the events topic's, as the broker has it
    # (the worker reads it at start; topics.toml leaves replication to the cluster).
    changelog_replication: int = 1


def rocksdb_available() -> bool:
    try:
        import rocksdict  # noqa: F401
    except ImportError:
        return False
    return True


def store_url(choice: str) -> str:
    if choice == "auto":
        choice = "rocksdb" if rocksdb_available() else "memory"
    if choice not in ("rocksdb", "memory"):
        raise ValueError(f"unknown table store {choice!r}: rocksdb, memory or auto")
    return f"{choice}://"


def faust_app(app_id: str, bootstrap: str, data_dir: Path, **options: Any) -> faust.App:
    """A faust app reading raw records from the first offset, at least once, with
    :mod:`streams.faust_fixes` applied: the worker's, and the benchmark's floor
    (:mod:`streams.floor`). ``options``: further faust settings."""
    faust_fixes.apply()
    return faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        datadir=str(data_dir),
        autodiscover=False,
        web_enabled=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        broker_credentials=client_security().faust(),
        **options,
    )


def create_app(settings: WorkerSettings) -> tuple[faust.App, Processor]:
    policy = load_policy(settings.policy)
    topics = layout(settings.topic_prefix)
    events = topics[EVENTS]
    app = faust_app(
        settings.app_id,
        settings.bootstrap,
        settings.data_dir,
        store=store_url(settings.store),
        producer_acks=-1,
        # The changelog is co-partitioned with the events topic (faust checks it).
        topic_partitions=events.partitions,
        topic_replication_factor=settings.changelog_replication,
        table_standby_replicas=0,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
    )
    table = app.Table(
        TABLE_NAME,
        partitions=events.partitions,
        key_type=bytes,  # raw keys; values are JSON (the table's default)
        help="Per retiree: enrollment order and RetireeState; per partition: pending moments.",
    )

    async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        return await app.producer.send(topic, key, value, None, None, None)

    processor = Processor(policy, topics, send, FaustTable(app, table), _fault_from_env())
    source = app.topic(events.name, key_serializer="raw", value_serializer="raw")

    # faust's committed offsets as loaded at each assignment (None for offset 0 or none),
    # else the partition's first offset, where the fix's seek put the fetcher.
    def committed(tp: Any) -> int | None:
        consumer = app.consumer
        assert isinstance(consumer, Consumer)  # faust's base class, which keeps the offsets
        found = internals.committed_offset(consumer, tp)
        return found if found is not None else faust_fixes.first_offsets.get(tp)

    guard = OffsetGuard(committed)

    @app.agent(source, name="decide-events", concurrency=1)
    async def decide_events(stream: faust.StreamT) -> None:
        stream.enable_acks = False
        inbox: asyncio.Queue[EventT] = asyncio.Queue(maxsize=INBOX_SIZE)
        decider = asyncio.ensure_future(_decide_batches(processor, guard, stream, inbox))
        try:
            async for _ in stream:
                event = stream.current_event
                assert event is not None
                await inbox.put(event)
        finally:
            decider.cancel()
            with contextlib.suppress(BaseException):
                await decider

    # mode types a handler as (sender, *args): it cannot say that faust passes `revoked`.
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        mine = [tp for tp in revoked if tp.topic == events.name]
        guard.forget(mine)
        processor.forget(tp.partition for tp in mine)

    @app.timer(interval=REPORT_EVERY)
    async def report() -> None:
        c = processor.counters
        log.info(
            "decided %d records in %d batches: %d inputs (%d rejected), %d ticks, %d dead "
            "letters; sent %d outputs, %d verdicts, %d statuses; last offsets %s",
            c.records, c.batches, c.inputs, c.rejected, c.ticks, c.dead_letters, c.outputs,
            c.verdicts, c.statuses,
            " ".join(f"{p}@{o}" for p, o in sorted(processor.positions.items())) or "none",
        )

    return app, processor


# key and value as faust encodes them for the changelog (None only for a None input), and
# the value itself.
_Entry = tuple[bytes | None, bytes | None, TableValue]


class FaustTable:
    """The state table as :class:`streams.processor.Processor` writes it: the changelog
    entry sent straight to the producer, to the partition of the record that produced it
    (the processor awaits the acknowledgement), then the local store written.

    faust's own ``table[key] = value`` does neither: it takes the partition from the
    task's current event (a batch holds records of several partitions), and it queues the
    changelog entry in the producer's buffer, which sends one entry at a time and gives
    no acknowledgement to wait for (and holds back the consumer while it is full)."""

    def __init__(self, app: faust.App, table: Any) -> None:
        self._app = app
        self._table = table
        self._topic = table.changelog_topic.get_topic_name()
        serializers = app.serializers
        self._key = partial(serializers.dumps_key, table.key_type,
                            serializer=table.key_serializer)
        self._value = partial(serializers.dumps_value, table.value_type,
                              serializer=table.value_serializer)
        # RocksDB keeps the encoded bytes (the changelog's, encoded once); the memory
        # store keeps the values themselves.
        self._serialized = isinstance(table.data, SerializedStore)

    def entry(self, key: bytes, value: TableValue) -> _Entry:
        return self._key(key), self._value(value), value

    async def send(self, record: Record, entry: _Entry
                   ) -> Awaitable[Any]:
        key, value, _ = entry
        return await self._app.producer.send(
            self._topic, key, value, record.position.partition, None, None
        )

    def sent(self, acks: Iterable[Any]) -> None:
        """Record how far each changelog partition is written (the store resumes its
        recovery from there): faust does this in ``Collection._on_changelog_sent``."""
        last: dict[TP, int] = {}
        for metadata in acks:
            last[TP(metadata.topic, metadata.partition)] = metadata.offset
        data = self._table.data
        for tp, offset in last.items():
            data.set_persisted_offset(tp, offset)

    def store(self, record: Record, entry: _Entry) -> None:
        key, encoded, value = entry
        data = self._table.data
        # The RocksDB store files an entry under the current event's partition.
        with internals.current_event(record.token):
            if self._serialized:
                internals.store_encoded(data, key, encoded)
            else:
                data[key] = value

    def items(self) -> Iterable[tuple[bytes, TableValue]]:
        return self._table.items()


def _halt(reason: str) -> NoReturn:
    """Exit at once with EX_TEMPFAIL, for the supervisor to start the worker again.

    Not faust's graceful stop: it waits for every fetched record to be acknowledged, and
    the records after the hole never will be. Nothing is lost: offsets are committed only
    up to records decided, and the restarted worker rebuilds its state from the changelog
    (streams.worker drops the local store after an exit that is not clean)."""
    log.error("halting: %s", reason)
    logging.shutdown()
    os._exit(EX_TEMPFAIL)


def _fault_from_env() -> AfterSend | None:
    """``LIFECERT_WORKER_FAULT=exit-after-send:N``: exit the process abruptly after the
    records of the N-th step with outputs are acknowledged, before its state is written.
    For fault tests only: it is the crash the delivery contract must survive."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return None
    kind, _, count = spec.partition(":")
    if kind != "exit-after-send" or not count.isdigit():
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected exit-after-send:N")
    remaining = int(count)

    def exit_after_send(step: Step) -> None:
        nonlocal remaining
        if step.outputs:
            remaining -= 1
            if remaining <= 0:
                log.warning("%s: exiting after send, before the table write", FAULT_ENV)
                logging.shutdown()
                os._exit(70)

    return exit_after_send


def _timestamp_ms(timestamp: float | None) -> int | None:
    # faust gives the record's Kafka timestamp in seconds (a float).
    return None if timestamp is None else round(timestamp * 1000)


async def _decide_batches(
    processor: Processor, guard: OffsetGuard, stream: faust.StreamT,
    inbox: asyncio.Queue[EventT],
) -> None:
    """Take what the agent has received so far (up to BATCH_MAX records), decide it as
    one batch, acknowledge its records; again. While it holds records it waits at most
    BATCH_WAIT for more, never for a record to arrive: a rebalance waits until every
    record handed out is acknowledged, and records stop arriving meanwhile."""
    try:
        while True:
            events = [await inbox.get()]
            await _gather(inbox, events)
            batch = await _checked(guard, stream, events)
            done = 0
            while done < len(batch):
                completed = await _until_done(processor, batch[done:])
                for record in batch[done:done + completed]:
                    await stream.ack(record.token)
                done += completed
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the agent stops
        # Cancelled from within (an awaited future), not by the agent: ending here would
        # leave every partition unread while the agent fills the inbox and waits.
        log.exception("the decision loop was cancelled from within")
        _halt("the decision loop was cancelled from within")
    except BaseException as exc:  # a bug here must not leave the partitions unread
        log.exception("the decision loop failed")
        _halt(f"the decision loop failed: {type(exc).__name__}")


async def _gather(inbox: asyncio.Queue[EventT], events: list[EventT]) -> None:
    """Add to ``events`` what the inbox holds, waiting up to BATCH_WAIT seconds (from
    now) for the batch to reach BATCH_FILL records. The wait costs a busy worker nothing
    (the agent receives records meanwhile) and spreads each batch's fixed costs (two
    round trips to the broker) over more records; it bounds what an idle worker adds to
    a record's latency."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BATCH_WAIT
    while len(events) < BATCH_MAX:
        if not inbox.empty():
            events.append(inbox.get_nowait())
            continue
        left = deadline - loop.time()
        if len(events) >= BATCH_FILL or left <= 0:
            return
        await asyncio.sleep(min(left, 0.002))


async def _checked(
    guard: OffsetGuard, stream: faust.StreamT, events: list[EventT]
) -> list[Record]:
    """The records of ``events`` in sequence; a repeat is acknowledged and dropped, a hole
    stops the worker."""
    records = []
    for event in events:
        message = event.message
        if guard.expected(message.tp) is None:
            # Nothing committed and no seek seen yet: the partition starts at its first
            # offset, so that a record lost before this one is a hole, not the start.
            starts = await stream.app.consumer.earliest_offsets(message.tp)
            faust_fixes.first_offsets[message.tp] = starts.get(message.tp, 0)
        verdict = guard.check(message.tp, message.offset)
        if verdict == "seen":
            await stream.ack(event)
            continue
        if verdict == "hole":
            _halt(f"{message.tp.topic}/{message.partition}: got offset {message.offset}, "
                  f"expected {guard.expected(message.tp)}; records were skipped on the "
                  f"way, stopping before deciding past them")
        guard.done(message.tp, message.offset)
        position = Position(message.topic, message.partition, message.offset,
                            _timestamp_ms(message.timestamp))
        records.append(Record(position, message.key, message.value, event))
    return records


async def _until_done(processor: Processor, records: list[Record]) -> int:
    """Process a batch (a prefix of it: the number done); after a failure, decide it again
    from the table's state.

    Giving up is not an option: the records would be lost once a later one is committed."""
    delay = RETRY_FIRST
    while True:
        try:
            return await processor.process(records)
        except Exception:
            first, last = records[0].position, records[-1].position
            log.exception("%s..%d (%d records): could not complete; retrying in %.1fs",
                          first.label(), last.offset, len(records), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP)
