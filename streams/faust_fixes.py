"""A fix to faust-streaming 0.15's recovery that otherwise loses records after a restart.

After a rebalance in which tables were recovered from their changelog, faust's
``Recovery.on_recovery_completed`` (and ``_resume_streams``) resumes fetching the stream
partitions first, then seeks them to the committed offsets, then resumes the flow, which
clears the stream queues. The fetcher is already running (it read the changelog), so
records fetched in between are cleared from the queues while faust's read offset has moved
past them, and their second fetch after the seek is dropped as already read. Seen here:
a restarted worker got offsets 83..90, then 93.. of a partition; 91 and 92 were never
delivered. faust then cannot commit past the hole (or, with a hole of one record, commits
straight past it: faust-streaming issue 606), so the loss is silent or the partition stalls.

The fix keeps faust's steps and changes their order: seek while the stream partitions are
still paused, resume the flow (clearing queues that can hold nothing yet), and resume the
stream partitions last. Every seek to the committed offsets (this one, and the one
``getmany`` makes after discarding records fetched while the flow is stopped) also seeks
the partitions without a committed offset to their beginning, which aiokafka's
``seek_to_committed`` leaves alone. :class:`streams.app` also checks every
partition's offsets are consecutive (from the first offset when nothing is committed), and
stops the worker rather than skip a record, should a hole ever appear.

A second fix is for latency, not loss: faust builds its aiokafka consumer with
``fetch_max_wait_ms=1500``, and aiokafka keeps one fetch in flight per broker, leaving
out of it the partitions whose fetched records are not consumed yet. The worker is also
assigned faust's leader topic (``<app id>-__assignor-__leader``), which never gets a
record: a fetch sent while the events partitions still had records waiting asks for that
partition alone, and the broker holds it 1.5 s, with no events fetched meanwhile. Seen
here at a steady 1,000 events/s: records reached the agent in bursts every ~1.6 s, up to
3 s after they were published. :data:`FETCH_MAX_WAIT_MS` bounds that wait instead.

A third fix is for loss again. faust's fetcher hands aiokafka its live set of active
partitions, and aiokafka's ``Fetcher.fetched_records`` reads an *empty* set as "every
partition" (``if partitions and tp not in partitions``), each time its wait for data wakes.
When a recovery ends, faust pauses the changelog partitions before it resumes the stream
partitions, so for a moment the set is empty: a fetch waiting in the consumer thread then
takes the records of every partition, and faust's ``getmany`` discards those of partitions
that are not active while aiokafka's position has moved past them. After the seek to the
committed offsets that loss is final: seen here, a restarted worker never received the rest
of one to three partitions and waited forever (CI failed on it). :class:`ActiveOnly` gives
aiokafka the same live set with an empty set meaning no partition.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import faust
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer

from streams import faust_internals as internals

log = logging.getLogger("lifecert.worker")

# How long the broker may hold a fetch of the worker's consumer that finds no record.
FETCH_MAX_WAIT_MS = 20
_applied = False
# Stream partition -> its first offset, for the partitions that had no committed offset at
# their last assignment (where the offset guard expects the first record).
first_offsets: dict[Any, int] = {}


def apply() -> bool:
    """Patch faust's Recovery (once); False when the faust version is not the one it was
    made for (streams.faust_internals.FAUST_VERSION, pinned in pyproject.toml)."""
    global _applied, _seek_to_committed
    if _applied:
        return True
    if faust.__version__ != internals.FAUST_VERSION:
        log.warning(
            "faust %s: recovery ordering fix not applied (made for %s: re-check the entries "
            "of streams/faust_internals.py); the offset guard still stops the worker on a "
            "hole", faust.__version__, internals.FAUST_VERSION,
        )
        return False
    # Replacing faust's methods is what this module is for; each is listed, with what to
    # re-check on an upgrade, in streams.faust_internals.
    internals.replace(Recovery, "on_recovery_completed", _on_recovery_completed)
    internals.replace(Recovery, "_resume_streams", _resume_streams)
    _seek_to_committed = internals.replace(Consumer, "perform_seek", _perform_seek)
    _shorten_fetch_wait()
    _fetch_active_only()
    _applied = True
    return True


class ActiveOnly:
    """faust's live set of active partitions as aiokafka's ``fetched_records`` reads it:
    never falsy, so that an empty set means no partition rather than every one."""

    __slots__ = ("_tps",)

    def __init__(self, tps: Collection[Any]) -> None:
        self._tps = tps

    def __contains__(self, tp: object) -> bool:
        return tp in self._tps

    def __bool__(self) -> bool:
        return True


_seek_to_committed: Any = None  # faust's own perform_seek, once apply() replaced it


async def _perform_seek(consumer: Consumer) -> None:
    # Both callers: the recovery's resume (below), and getmany when records arrive while
    # the flow is stopped for a rebalance (it drops them and seeks back).
    await _seek_to_committed(consumer)
    stream_tps = {tp for tp in consumer.assignment()
                  if not internals.is_changelog_tp(consumer, tp)}
    await _seek_uncommitted_to_beginning(consumer, stream_tps)


def _fetch_active_only() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    # faust types the set as set[TP]; it only hands it on to aiokafka.
    fetch_records: Any = internals.original(AIOKafkaConsumerThread, "_fetch_records")

    async def fetch_active_records(
        thread: Any, consumer: Any, active_partitions: Any, timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        return await fetch_records(thread, consumer, ActiveOnly(active_partitions),
                                   timeout=timeout, max_records=max_records)

    internals.replace(AIOKafkaConsumerThread, "_fetch_records", fetch_active_records)


def _shorten_fetch_wait() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = internals.original(AIOKafkaConsumerThread, "_create_worker_consumer")

    def create_worker_consumer(thread: Any, transport: Any) -> Any:
        consumer = create(thread, transport)
        internals.set_fetch_max_wait(consumer, FETCH_MAX_WAIT_MS)
        return consumer

    internals.replace(AIOKafkaConsumerThread, "_create_worker_consumer",
                      create_worker_consumer)


async def _resume_stream_partitions(recovery: Any) -> None:
    """faust's tail of both methods, reordered: seek, resume flow, then partitions."""
    app = recovery.app
    consumer = app.consumer
    stream_tps = {tp for tp in consumer.assignment()
                  if not internals.is_changelog_tp(recovery, tp)}
    if stream_tps:
        recovery.log.info("Seek stream partitions to committed offsets.")
        await internals.recovery_wait(recovery, consumer.perform_seek(),
                                      timeout=app.conf.broker_request_timeout)
    recovery.completed.set()
    app.flow_control.resume()
    consumer.resume_flow()
    consumer.resume_partitions(stream_tps)
    await internals.start_fetcher(app)


async def _seek_uncommitted_to_beginning(consumer: Any, tps: set[Any]) -> None:
    """Seek the partitions without a committed offset to their first record.

    aiokafka's ``seek_to_committed`` leaves a partition without a committed offset (or
    with offset 0) where the fetcher is, and faust drops the records it had fetched for it
    while the flow was suspended for a rebalance (in the queues it clears, and in
    ``getmany``, which discards what arrives while the flow is stopped and seeks back to
    the committed offsets): a worker that starts while the topic fills can lose the
    records of its first fetches (the partner demo lost 4,708 of 10,000 retirees so).
    ``auto_offset_reset=earliest`` means such a partition starts at its
    beginning, so seek there explicitly, and remember where that is for the offset guard."""
    uncommitted = [tp for tp in tps if internals.committed_offset(consumer, tp) is None]
    if not uncommitted:
        return
    starts = await consumer.earliest_offsets(*uncommitted)
    for tp in uncommitted:
        start = starts.get(tp, 0)
        await consumer.seek(tp, start)
        first_offsets[tp] = start


async def _on_recovery_completed(recovery: Recovery, generation_id: int = 0) -> None:
    import asyncio

    recovery.log.info("Restore complete!")
    await recovery.app.on_rebalance_complete.send()
    internals.recovery_ended(recovery)
    callbacks = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                recovery.actives_for_table[table], recovery.standbys_for_table[table]
            )
        )
        for table in recovery.tables.values()
    ]
    if callbacks:
        await asyncio.wait(callbacks)
    if recovery.app.consumer_generation_id != generation_id:
        recovery.log.warning(
            f"Recovery rebalancing again app id {recovery.app.consumer_generation_id} "
            f"param {generation_id}"
        )
        return
    await _resume_stream_partitions(recovery)
    recovery.tables.on_actives_ready()
    if not recovery.app.assignor.assigned_standbys():
        recovery.tables.on_standbys_ready()
    recovery.app.on_rebalance_end()
    recovery.log.info("Worker ready")


async def _resume_streams(recovery: Recovery, generation_id: int = 0) -> None:
    await recovery.app.on_rebalance_complete.send()
    if recovery.app.consumer_generation_id != generation_id:
        recovery.log.warning("Recovery rebalancing again")
        return
    await _resume_stream_partitions(recovery)
    recovery.tables.on_actives_ready()
    recovery.tables.on_standbys_ready()
    recovery.app.on_rebalance_end()
    recovery.log.info("Worker ready")
