"""The projections' consumer: the status and output topics into PostgreSQL.

It reads with manual assignment (no consumer group): the consumed offsets live in
``projection_offsets`` and are written in the same transaction as the rows they account
for, so a batch is either wholly applied with its offsets or not at all. On start, and
after any database trouble, it reads the stored offsets and seeks there.

- Undecodable records (and records of a type their topic does not carry) go to the
  dead-letter topic, acknowledged by the broker before the offsets that skip them commit.
- A lost connection is retried with exponential backoff, forever (until stopped); the
  batch in flight is dropped and read again from the stored offsets.
- ``stop()`` (from a signal handler or another thread) ends the run after the batch in
  flight; ``until_idle`` ends it once every partition is read to its end.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.topics import (
    ASSISTANCE_RESULTS,
    CONNECTOR_STATUS,
    CONSULAR_CASES,
    DEAD_LETTERS,
    EVENTS,
    HOME_VISIT_REPORTS,
    STATUS,
    TopicLayout,
    layout,
)
from projections.connection import connect
from projections.dead_letters import DeadLetterSender
from projections.migrate import migrate
from projections.records import Batch, BatchBuilder, TopicPartitionKey
from projections.store import OffsetsMoved, Store

log = logging.getLogger("lifecert.projections")

_DB_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)


def read_topics(topics: TopicLayout) -> tuple[str, ...]:
    """The topics the projections read: status, the output topics, then the input log (for
    the contact read model), the consular cases, the assistance cases, the home-visit
    teams' reports, then the dead letters and the connectors' heartbeats (the dashboard's
    connectors panel)."""
    return (topics[STATUS].name, *(topics[role].name for role in topics.output_roles),
            topics[EVENTS].name, topics[CONSULAR_CASES].name, topics[ASSISTANCE_RESULTS].name,
            topics[HOME_VISIT_REPORTS].name, topics[DEAD_LETTERS].name,
            topics[CONNECTOR_STATUS].name)


@dataclass(frozen=True)
class WriterOptions:
    batch_records: int = 20_000  # at most this many records per transaction
    # and gathered for at most this long: while records keep coming, a batch is held this
    # long before its commit, so it bounds the latency the writer adds (a backlog fills
    # batches by count much sooner)
    batch_seconds: float = 0.1
    poll_ms: int = 200
    until_idle: bool = False  # stop once every partition is read to its end
    backoff_initial: float = 0.2  # seconds before the first reconnection attempt
    backoff_max: float = 10.0
    refresh_seconds: float = 30.0  # look for new partitions this often


@dataclass
class WriterStats:
    records: int = 0
    batches: int = 0
    new_instructions: int = 0
    statuses: int = 0
    dead_letters: int = 0
    reconnects: int = 0
    kafka_reconnects: int = 0
    offset_conflicts: int = 0


class _Stopped(Exception):
    pass


class ProjectionWriter:
    def __init__(
        self,
        dsn: str,
        bootstrap: str,
        topics: TopicLayout | None = None,
        options: WriterOptions | None = None,
        *,
        on_batch: Callable[[int], None] | None = None,
        on_commit: Callable[[Batch], None] | None = None,
    ) -> None:
        self.dsn = dsn
        self.bootstrap = bootstrap
        self.topics = topics if topics is not None else layout()
        self.options = options or WriterOptions()
        self.on_batch = on_batch
        self.on_commit = on_commit  # each batch right after its transaction committed
        self.stats = WriterStats()
        self._names = read_topics(self.topics)
        self._stop = threading.Event()
        self._conn: psycopg2.extensions.connection | None = None
        self._expected: dict[TopicPartitionKey, int] = {}
        self._missing: list[str] = []  # topics not found yet (logged once)
        self._dead = DeadLetterSender(bootstrap, self.topics[DEAD_LETTERS].name)

    def stop(self) -> None:
        """End the run after the batch in flight (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ the loop
    def run(self) -> WriterStats:
        """Project until stopped (or, with ``until_idle``, caught up). A broker outage is
        waited out with backoff: the consumer is made anew and seeks to the offsets stored
        in PostgreSQL, so nothing is lost or doubled."""
        delay = self.options.backoff_initial
        try:
            while True:
                try:
                    self._consume()
                    break
                except KafkaError as exc:
                    if self._stop.is_set():
                        break
                    self.stats.kafka_reconnects += 1
                    log.warning("Kafka unavailable (%s); retrying in %.1fs", _one_line(exc), delay)
                    self._dead.close()
                    if self._stop.wait(delay):
                        break
                    delay = min(delay * 2, self.options.backoff_max)
        except _Stopped:
            pass
        finally:
            self._dead.close()
            self._close_quietly()
        return self.stats

    def _consume(self) -> None:
        consumer: KafkaConsumer | None = None
        try:
            self._recover(None, migrate_schema=True)
            consumer = self._consumer()
            complete = self._assign(consumer)
            refreshed = time.monotonic()
            while not self._stop.is_set():
                if not consumer.assignment():
                    if self.options.until_idle or self._stop.wait(self.options.poll_ms / 1000):
                        break
                    complete = self._assign(consumer)
                    continue
                batch = self._collect(consumer)
                if batch.records:
                    self._write(consumer, batch)
                    continue
                if self._stop.is_set():
                    break
                if self._catch_up(consumer) and self.options.until_idle:
                    break
                if not complete or time.monotonic() - refreshed > self.options.refresh_seconds:
                    complete = self._assign(consumer)
                    refreshed = time.monotonic()
        finally:
            if consumer is not None:
                with contextlib.suppress(Exception):  # the broker may be gone
                    consumer.close(autocommit=False)

    def _consumer(self) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id="lifecert-projections",
            **client_security().kafka_python(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.options.batch_records,
            fetch_max_wait_ms=min(self.options.poll_ms, 500),
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    def _collect(self, consumer: KafkaConsumer) -> Batch:
        builder = BatchBuilder(self.topics)
        batch = builder.batch
        deadline = time.monotonic() + self.options.batch_seconds
        timeout = self.options.poll_ms
        while batch.records < self.options.batch_records and not self._stop.is_set():
            polled = consumer.poll(
                timeout_ms=timeout, max_records=self.options.batch_records - batch.records
            )
            if not polled:
                break
            for records in polled.values():
                for record in records:
                    builder.add(record)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            timeout = int(min(50, left * 1000))
        return batch

    def _write(self, consumer: KafkaConsumer, batch: Batch) -> None:
        if batch.rejected:
            for rejected in batch.rejected:
                log.warning(
                    "dead letter: %s[%d]@%d: %s",
                    rejected.topic, rejected.partition, rejected.offset, rejected.reason,
                )
            self._dead.send(batch.rejected)
        store = self._store()
        try:
            applied = store.apply(batch, self._expected)
        except OffsetsMoved as exc:
            self.stats.offset_conflicts += 1
            log.warning("%s; reading the stored offsets again", exc)
            self._recover(consumer)
            return
        except _DB_ERRORS as exc:
            self._lost(consumer, exc)
            return
        if self.on_commit is not None:
            self.on_commit(batch)
        self._expected.update(batch.next_offsets)
        stats = self.stats
        stats.records += batch.records
        stats.batches += 1
        stats.new_instructions += applied.new_instructions
        stats.statuses += applied.statuses
        stats.dead_letters += len(batch.rejected)
        if self.on_batch is not None:
            self.on_batch(batch.records)

    def _catch_up(self, consumer: KafkaConsumer) -> bool:
        """After an empty poll: store positions the consumer moved to without records
        (control records, a compacted or empty partition's start); True when every
        assigned partition is read to its end."""
        assigned = list(consumer.assignment())
        positions = {tp: consumer.position(tp) for tp in assigned}
        moved = {
            (tp.topic, tp.partition): pos
            for tp, pos in positions.items()
            if pos is not None and pos > self._expected.get((tp.topic, tp.partition), -1)
        }
        if moved:
            try:
                self._store().advance(moved, self._expected)
            except OffsetsMoved as exc:
                self.stats.offset_conflicts += 1
                log.warning("%s; reading the stored offsets again", exc)
                self._recover(consumer)
                return False
            except _DB_ERRORS as exc:
                self._lost(consumer, exc)
                return False
            self._expected.update(moved)
        if not self.options.until_idle:
            return False
        ends = consumer.end_offsets(assigned)
        return all((positions[tp] or 0) >= ends[tp] for tp in assigned)

    # --------------------------------------------------------------- partitions
    def _assign(self, consumer: KafkaConsumer) -> bool:
        """Assign every partition of the topics read (seeking new ones to their stored
        offsets); True when all the topics exist."""
        wanted: set[TopicPartition] = set()
        missing: list[str] = []
        for name in self._names:
            partitions = consumer.partitions_for_topic(name)
            if not partitions:
                missing.append(name)
                continue
            wanted.update(TopicPartition(name, p) for p in partitions)
        if missing and missing != self._missing:
            log.info("waiting for topics: %s", ", ".join(missing))
        self._missing = missing
        current = set(consumer.assignment())
        if wanted and wanted != current:
            consumer.assign(sorted(wanted))
            self._seek(consumer, wanted)
        return not missing

    def _seek(self, consumer: KafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            stored = self._expected.get((tp.topic, tp.partition))
            if stored is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, stored)

    # ----------------------------------------------------------------- database
    def _store(self) -> Store:
        assert self._conn is not None
        return Store(self._conn)

    def _lost(self, consumer: KafkaConsumer, exc: Exception) -> None:
        self.stats.reconnects += 1
        log.warning("PostgreSQL: %s; reconnecting", _one_line(exc))
        self._recover(consumer)

    def _recover(self, consumer: KafkaConsumer | None, migrate_schema: bool = False) -> None:
        """(Re)connect if needed, read the stored offsets and seek every partition there;
        retries with backoff until it succeeds or the writer is stopped."""
        delay = self.options.backoff_initial
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.dsn)
                if migrate_schema:
                    for migration in migrate(self._conn):
                        log.info("applied migration %s_%s", migration.version, migration.name)
                    migrate_schema = False
                self._expected = Store(self._conn).offsets(self._names)
                break
            except _DB_ERRORS as exc:
                log.warning(
                    "PostgreSQL unavailable (%s); retrying in %.1fs", _one_line(exc), delay,
                )
                self._close_quietly()
                if self._stop.wait(delay):
                    raise _Stopped from None
                delay = min(delay * 2, self.options.backoff_max)
        if consumer is not None:
            self._seek(consumer, consumer.assignment())

    def _close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken
                conn.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run_until_idle(
    dsn: str, bootstrap: str, topics: TopicLayout | None = None, **options: Any
) -> WriterStats:
    """Project everything published so far, then return (tests, `rebuild`)."""
    opts = WriterOptions(until_idle=True, **options)
    return ProjectionWriter(dsn, bootstrap, topics, opts).run()
