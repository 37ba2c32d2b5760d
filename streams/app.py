"""The faust app of ``lifecert worker``: the events topic decided a fetch at a time, one
state table.

Choices that matter for correctness (see docs/pipeline.md, Delivery):

- **faust is the control plane, not the data plane** (:mod:`streams.dataplane`): the
  consumer's fetch loop hands each fetch of the events topic to :class:`DecisionPlane`,
  which decides it in batches of up to ``BATCH_MAX`` records (each partition in offset
  order), sends all their outputs, waits for their acknowledgements once, then writes the
  batch's states (:mod:`streams.processor`). One fetch loop: each partition is decided
  strictly in log order.
- **acks when done**: a record is acknowledged to faust only once its outputs are
  acknowledged by the broker and its state is in the changelog (acknowledged too) and the
  local store. faust's offset tracking commits only up to a record whose predecessors are
  all acked (and past an unacked one when a later one was acked first: faust-streaming
  issue 606), so records are acked in offset order. A rebalance waits until every record
  handed out is acked, and no batch is begun once it has stopped the flow.
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
import logging
import os
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import faust
from faust.stores.base import SerializedStore
from faust.transport.consumer import Consumer
from faust.types import TP

from lifecert.domain.policy import load_policy
from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.topics import EVENTS, layout
from streams import faust_fixes
from streams import faust_internals as internals
from streams.dataplane import SCHEME, BatchConsumer, BatchHandler
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
# once); a fetch holding more is decided in several.
BATCH_MAX = int(os.environ.get("LIFECERT_WORKER_BATCH", "2000"))
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


class WorkerApp(faust.App):
    """A faust app that may hand the records of some topics to a batch handler
    (:mod:`streams.dataplane`) instead of faust's streams."""

    data_plane: BatchHandler | None = None


def faust_app(app_id: str, bootstrap: str, data_dir: Path, *, scheme: str = "kafka",
              **options: Any) -> WorkerApp:
    """A faust app reading raw records from the first offset, at least once, with
    :mod:`streams.faust_fixes` applied: the worker's (``scheme`` ``lifecert``: the batch
    data plane's transport), and the benchmark's floor (:mod:`streams.floor`: faust's own
    ``kafka``). ``options``: further faust settings."""
    faust_fixes.apply()
    return WorkerApp(
        app_id,
        broker=f"{scheme}://{bootstrap}",
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


def create_app(settings: WorkerSettings) -> tuple[WorkerApp, Processor]:
    policy = load_policy(settings.policy)
    topics = layout(settings.topic_prefix)
    events = topics[EVENTS]
    app = faust_app(
        settings.app_id,
        settings.bootstrap,
        settings.data_dir,
        scheme=SCHEME,
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

    # Subscribed without an agent: the data plane takes its records (streams.dataplane).
    app.topics.add(source)
    app.data_plane = DecisionPlane(processor, guard, events.name)

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


class DecisionPlane:
    """The worker's :class:`streams.dataplane.BatchHandler`: each fetch of the events
    topic, checked for sequence, decided in batches of up to BATCH_MAX records, each
    record acknowledged once its batch is complete."""

    def __init__(self, processor: Processor, guard: OffsetGuard, topic: str) -> None:
        self.topics = frozenset({topic})
        self._processor = processor
        self._guard = guard

    async def handle(self, consumer: BatchConsumer, fetched: Mapping[TP, Sequence[Any]]
                     ) -> None:
        try:
            await self._decide(consumer, fetched)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the fetcher stops (the worker stops)
            # Cancelled from within (an awaited future), not by the fetcher: carrying on
            # could skip the batch; stopping leaves it to the restarted worker.
            log.exception("the decision loop was cancelled from within")
            _halt("the decision loop was cancelled from within")
        except BaseException as exc:  # a bug here must not leave the partitions unread
            log.exception("the decision loop failed")
            _halt(f"the decision loop failed: {type(exc).__name__}")

    async def _decide(self, consumer: BatchConsumer, fetched: Mapping[TP, Sequence[Any]]
                      ) -> None:
        generation = consumer.app.consumer_generation_id
        queued = [(tp, record) for tp, records in fetched.items() for record in records]
        for start in range(0, len(queued), BATCH_MAX):
            chunk = queued[start:start + BATCH_MAX]
            await self._find_starts(consumer, {tp for tp, _ in chunk})
            # Checked after the last await before the records are handed over: a
            # rebalance that began meanwhile found nothing to wait for.
            if not consumer.still_fetching(generation):
                return  # a rebalance: the rest is fetched again from the commits
            batch = self._checked(consumer, chunk)
            done = 0
            while done < len(batch):
                completed = await _until_done(self._processor, batch[done:])
                for record in batch[done:done + completed]:
                    consumer.acknowledge(record.token)
                done += completed

    async def _find_starts(self, consumer: BatchConsumer, tps: set[TP]) -> None:
        """For a partition with nothing committed and no seek seen yet: where it starts,
        so that a record lost before its first one is a hole, not the start."""
        for tp in tps:
            if self._guard.expected(tp) is None:
                starts = await consumer.earliest_offsets(tp)
                faust_fixes.first_offsets[tp] = starts.get(tp, 0)

    def _checked(self, consumer: BatchConsumer, fetched: list[tuple[TP, Any]]
                 ) -> list[Record]:
        """The records of ``fetched`` in sequence, handed over (no await: a rebalance
        cannot begin in between); a repeat is acknowledged and dropped, a hole stops the
        worker."""
        guard = self._guard
        records = []
        for tp, raw in fetched:
            verdict = guard.check(tp, raw.offset)
            if verdict == "seen":
                consumer.acknowledge(consumer.deliver(tp, raw))
                continue
            if verdict == "hole":
                _halt(f"{tp.topic}/{tp.partition}: got offset {raw.offset}, expected "
                      f"{guard.expected(tp)}; records were skipped on the way, stopping "
                      f"before deciding past them")
            guard.done(tp, raw.offset)
            position = Position(tp.topic, tp.partition, raw.offset, raw.timestamp)
            records.append(Record(position, raw.key, raw.value, consumer.deliver(tp, raw)))
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
