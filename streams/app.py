"""The faust app of ``lifecert worker``: one agent over the events topic, one state table.

Faust choices that matter for correctness (see docs/pipeline.md, Delivery):

- **concurrency 1**: each partition is decided strictly in log order, and faust never has
  two records of a partition in flight (its offset tracking commits past an unfinished
  record when a later one finished first: faust-streaming issue 606).
- **acks by hand**: faust acks a record in a ``finally`` when the agent's loop moves on,
  also when the body raised or was cancelled, and the offset is then committed. The agent
  switches that off (``stream.enable_acks = False``, as ``Stream.take`` does) and acks a
  record only once its outputs are acknowledged by the broker and its state is written.
- **records in offset order**: faust 0.15 can lose records when it resumes a partition
  after recovering a table (:mod:`streams.faust_fixes` reorders that step); the agent
  also checks each partition's offsets are consecutive and stops rather than skip one
  (:mod:`streams.offsets`).
- **at-least-once**, not faust's exactly-once mode: the outputs carry deterministic event
  ids and their consumers dedupe by id. Before committing offsets faust flushes its
  producer, so the table's changelog holds every acked record's state.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import faust

from lifecert.domain.policy import load_policy
from lifecert.pipeline.topics import EVENTS, layout
from streams import faust_fixes
from streams.offsets import OffsetGuard
from streams.partition_state import Step, TableValue
from streams.processor import AfterSend, Processor
from streams.records import Position

log = logging.getLogger("lifecert.worker")

TABLE_NAME = "retiree-state"
FAULT_ENV = "LIFECERT_WORKER_FAULT"
EX_TEMPFAIL = 75  # the worker stopped itself and should be started again
# After a failure to send (broker unreachable past the producer's own retries), the record
# is decided again from the table's state after this many seconds, doubling up to the cap.
RETRY_FIRST, RETRY_CAP = 0.5, 30.0
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


def create_app(settings: WorkerSettings) -> tuple[faust.App, Processor]:
    faust_fixes.apply()
    policy = load_policy(settings.policy)
    topics = layout(settings.topic_prefix)
    events = topics[EVENTS]
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=store_url(settings.store),
        datadir=str(settings.data_dir),
        autodiscover=False,
        web_enabled=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # The changelog is co-partitioned with the events topic (faust checks it).
        topic_partitions=events.partitions,
        topic_replication_factor=events.replication,
        table_standby_replicas=0,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        key_serializer="raw",
        value_serializer="raw",
    )
    table = app.Table(
        TABLE_NAME,
        partitions=events.partitions,
        key_type=bytes,  # raw keys; values are JSON (the table's default)
        help="Per retiree: enrollment order and RetireeState; per partition: pending moments.",
    )

    async def send(topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        return await app.producer.send(topic, key, value, None, None, None)

    def table_items() -> Iterable[tuple[bytes, TableValue]]:
        return table.items()

    processor = Processor(policy, topics, send, table, table_items, _fault_from_env())
    source = app.topic(events.name, key_serializer="raw", value_serializer="raw")

    # faust's committed offsets as loaded at each assignment (None for offset 0 or none),
    # else the partition's first offset, where the fix's seek put the fetcher.
    def committed(tp: Any) -> int | None:
        found = app.consumer._committed_offset.get(tp)
        return found if found is not None else faust_fixes.first_offsets.get(tp)

    guard = OffsetGuard(committed)

    @app.agent(source, name="decide-events", concurrency=1)
    async def decide_events(stream: faust.StreamT) -> None:
        stream.enable_acks = False
        async for _ in stream:
            event = stream.current_event
            assert event is not None
            message = event.message
            if guard.expected(message.tp) is None:
                # Nothing committed and no seek seen yet: the partition starts at its first
                # offset, so that a record lost before this one is a hole, not the start.
                starts = await app.consumer.earliest_offsets(message.tp)
                faust_fixes.first_offsets[message.tp] = starts.get(message.tp, 0)
            verdict = guard.check(message.tp, message.offset)
            if verdict == "seen":
                await stream.ack(event)
                continue
            if verdict == "hole":
                _halt(f"{message.tp.topic}/{message.partition}: got offset {message.offset}, "
                      f"expected {guard.expected(message.tp)}; records were skipped on the "
                      f"way, stopping before deciding past them")
            position = Position(message.topic, message.partition, message.offset,
                                _timestamp_ms(message.timestamp))
            await _until_done(processor, position, message.key, message.value)
            guard.done(message.tp, message.offset)
            await stream.ack(event)

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        mine = [tp for tp in revoked if tp.topic == events.name]
        guard.forget(mine)
        processor.forget(tp.partition for tp in mine)

    @app.timer(interval=REPORT_EVERY)
    async def report() -> None:
        c = processor.counters
        log.info(
            "decided %d records: %d inputs (%d rejected), %d ticks, %d dead letters; "
            "sent %d outputs, %d statuses; last offsets %s",
            c.records, c.inputs, c.rejected, c.ticks, c.dead_letters, c.outputs, c.statuses,
            " ".join(f"{p}@{o}" for p, o in sorted(processor.positions.items())) or "none",
        )

    return app, processor


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


async def _until_done(
    processor: Processor, position: Position, key: bytes | None, value: bytes | None
) -> None:
    """Process one record; after a failure, decide it again from the table's state.

    Giving up is not an option: the record would be lost once a later one is committed."""
    delay = RETRY_FIRST
    while True:
        try:
            await processor.process(position, key, value)
            return
        except Exception:
            log.exception("%s: could not complete; retrying in %.1fs", position.label(), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_CAP)
