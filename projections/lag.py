"""How far the worker and the projections are behind the end of the topics they read
(``lifecert wait-idle``).

The worker's position is its consumer group's committed offset in each partition of the
events topic; the projections' is ``projection_offsets``. A partition is caught up when
that position (or, with none, the partition's first offset) is at its end. Ends are read
committed: a transaction still open is not yet "published".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.topics import EVENTS, TopicLayout
from projections.connection import connect
from projections.writer import read_topics

WORKER = "worker"
PROJECTIONS = "projections"


@dataclass(frozen=True)
class Lag:
    reader: str  # WORKER or PROJECTIONS
    topic: str
    partition: int
    position: int | None  # committed / stored offset, None when there is none
    start: int
    end: int

    @property
    def behind(self) -> int:
        at = self.position if self.position is not None else self.start
        return max(0, self.end - at)

    def describe(self) -> str:
        at = "none" if self.position is None else str(self.position)
        return (
            f"{self.reader:<12} {self.topic}[{self.partition}]  at {at}, end {self.end}: "
            f"{self.behind} behind"
        )


class LagProbe:
    """Kafka clients kept open between measurements."""

    def __init__(self, bootstrap: str, topics: TopicLayout, worker_group: str) -> None:
        self.topics = topics
        self.worker_group = worker_group
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="lifecert-wait-idle",
            **client_security().kafka_python(),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        self._admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, client_id="lifecert-wait-idle",
            **client_security().kafka_python(),
        )

    def close(self) -> None:
        self._consumer.close(autocommit=False)
        self._admin.close()

    def partitions(self, names: Iterable[str]) -> list[TopicPartition]:
        found: list[TopicPartition] = []
        for name in names:
            found.extend(TopicPartition(name, p) for p in sorted(self._partitions_of(name)))
        return found

    def _partitions_of(self, name: str) -> set[int]:
        return self._consumer.partitions_for_topic(name) or set()

    def _bounds(self, tps: list[TopicPartition]) -> tuple[dict, dict]:
        if not tps:
            return {}, {}
        return self._consumer.beginning_offsets(tps), self._consumer.end_offsets(tps)

    def worker(self) -> list[Lag]:
        """(a): the worker group's committed offsets against the events topic's ends.
        The ends are read first: what the worker committed after that only helps."""
        tps = self.partitions([self.topics[EVENTS].name])
        starts, ends = self._bounds(tps)
        committed = self._admin.list_group_offsets({self.worker_group: tps or None})
        offsets = committed.get(self.worker_group, {})
        return [
            _lag(WORKER, tp, _committed_offset(offsets.get(tp)), starts, ends) for tp in tps
        ]

    def projections(self, conn: psycopg2.extensions.connection) -> list[Lag]:
        """(b): the projections' stored offsets against the ends of every topic they read."""
        names = read_topics(self.topics)
        tps = self.partitions(names)
        starts, ends = self._bounds(tps)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('projection_offsets') IS NOT NULL")
            row = cur.fetchone()
            stored: dict[tuple[str, int], int] = {}
            if row is not None and row[0]:
                cur.execute(
                    'SELECT topic, "partition", next_offset FROM projection_offsets '
                    "WHERE topic = ANY(%s)",
                    (list(names),),
                )
                stored = {(t, p): o for t, p, o in cur.fetchall()}
        return [
            _lag(PROJECTIONS, tp, stored.get((tp.topic, tp.partition)), starts, ends)
            for tp in tps
        ]


def _committed_offset(meta: object) -> int | None:
    offset = getattr(meta, "offset", None)
    return offset if isinstance(offset, int) and offset >= 0 else None


def _lag(
    reader: str,
    tp: TopicPartition,
    position: int | None,
    starts: Mapping[TopicPartition, int],
    ends: Mapping[TopicPartition, int],
) -> Lag:
    return Lag(reader, tp.topic, tp.partition, position, starts.get(tp, 0), ends.get(tp, 0))


def backlog(bootstrap: str, names: Iterable[str]) -> int:
    """Records between the first and the end offset of every partition of ``names``
    (what a rebuild reads; compaction makes it an upper bound)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id="lifecert-projections-backlog", group_id=None,
        **client_security().kafka_python(),
        enable_auto_commit=False, isolation_level="read_committed",
    )
    try:
        tps = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        if not tps:
            return 0
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        return sum(max(0, ends[tp] - starts[tp]) for tp in tps)
    finally:
        consumer.close(autocommit=False)


@dataclass
class IdleResult:
    idle: bool
    lags: list[Lag]  # the partitions still behind at the last measurement
    error: str | None = None  # why the last measurement failed, if it did


def wait_idle(
    bootstrap: str,
    dsn: str,
    topics: TopicLayout,
    worker_group: str,
    timeout: float,
    interval: float = 0.5,
) -> IdleResult:
    """Measure every ``interval`` seconds until the worker and the projections are both
    at the end of what they read, or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    result = IdleResult(False, [], None)
    probe: LagProbe | None = None
    conn: psycopg2.extensions.connection | None = None
    try:
        while True:
            try:
                if probe is None:
                    probe = LagProbe(bootstrap, topics, worker_group)
                if conn is None or conn.closed:
                    conn = connect(dsn)
                behind = [lag for lag in probe.worker() if lag.behind]
                if not behind:  # the outputs of every input are published: now (b)
                    behind = [lag for lag in probe.projections(conn) if lag.behind]
                result = IdleResult(not behind, behind, None)
            except (psycopg2.Error, KafkaError) as exc:
                result = IdleResult(False, result.lags, f"{type(exc).__name__}: {exc}".strip())
                if conn is not None and not conn.closed:
                    conn.close()
                conn = None
            if result.idle or time.monotonic() + interval > deadline:
                return result
            time.sleep(interval)
    finally:
        if probe is not None:
            probe.close()
        if conn is not None:
            conn.close()
