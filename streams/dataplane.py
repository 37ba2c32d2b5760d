"""The worker's data plane: fetched records of the events topic reach the decision code a
batch at a time, not one by one through faust's streams.

faust stays the control plane (issue 17): the App and worker lifecycle, the consumer
group, partition assignment and rebalances, the state table with its changelog, the
RocksDB store and its recovery. What changes is the path of a fetched record. faust's
own path hands each record over in several event-loop steps (``Consumer.getmany`` ->
conductor -> channel queue -> stream iterator -> agent -> per-record ack), which allows
about 6,000 records/s on the development machine before anything is decided
(``streams/floor.py`` measures it). Here the consumer's fetch loop hands each fetch of
the events topic, per partition and in offset order, to a :class:`BatchHandler` (the
worker's :class:`streams.app.DecisionPlane`) and acknowledges each record through faust
once the handler is done with it, so faust's offset tracking, its commits and its
rebalance protocol (which waits for every record handed out to be acknowledged) are
unchanged. Records of every other topic (the changelog during a recovery) take faust's
path as before.

The consumer is registered as a faust transport (entry point ``faust.transports``,
``lifecert``): an app whose broker URL is ``lifecert://host:port`` uses it, and an app
without a handler (``app.data_plane`` unset) gets faust's own fetch loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from time import monotonic
from typing import Any, ClassVar, Protocol

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streams import faust_internals as internals

log = logging.getLogger("lifecert.worker")

SCHEME = "lifecert"
FETCH_TIMEOUT = 1.0  # seconds a fetch waits for records (faust's own fetch loop: 1.0)


class Delivered:
    """A record handed to the handler: faust's message (what faust acknowledges and
    commits), also standing for faust's current event where the RocksDB store takes its
    partition from (``event.message.partition``)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Any) -> None:
        self.message = message


class BatchHandler(Protocol):
    """What the data plane hands fetched records to."""

    topics: frozenset[str]  # the topics it takes; the rest go faust's way

    def handle(self, consumer: BatchConsumer, fetched: Mapping[TP, Sequence[Any]]
               ) -> Awaitable[None]:
        """Decide ``fetched`` (aiokafka records per partition, each in offset order) and
        acknowledge, through ``consumer.acknowledge``, every record it completed. It may
        stop early when the flow stops (a rebalance): the records not acknowledged are
        fetched again from the committed offsets."""


class BatchConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer with a fetch loop that hands the handler's topics over
    a fetch at a time (faust's ``Consumer._drain_messages`` for everything else)."""

    def handler(self) -> BatchHandler | None:
        return getattr(self.app, "data_plane", None)

    def deliver(self, tp: TP, record: Any) -> Delivered:
        """faust's message for an aiokafka record of ``tp``, tracked as handed out (a
        rebalance waits until it is acknowledged)."""
        message = internals.to_message(self, tp, record)
        self.unacked.add(message)
        return Delivered(message)

    def acknowledge(self, delivered: Delivered) -> None:
        """The record is done: faust may commit its offset (in offset order per
        partition, as the offsets are acknowledged)."""
        self.ack(delivered.message)

    def still_fetching(self, generation: int) -> bool:
        """Whether records fetched under ``generation`` may still be handed over (no
        rebalance has stopped the flow or begun another generation since)."""
        return self.flow_active and self.app.consumer_generation_id == generation

    async def _drain_messages(self, fetcher: Any) -> None:
        handler = self.handler()
        if handler is None:
            await internals.faust_drain(self, fetcher)
            return
        try:
            while not (self.should_stop or fetcher.should_stop):
                await self._drain_once(handler)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("broker stopped the consumer; shutting down")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    async def _drain_once(self, handler: BatchHandler) -> None:
        records, active = await internals.wait_next_records(self, FETCH_TIMEOUT)
        await self.sleep(0)
        if not records or self.should_stop:
            return
        if not self.flow_active:
            # As faust's getmany: records that arrived while the flow is stopped (a
            # rebalance) are dropped, and the fetch position goes back to the commits;
            # a failed seek is only logged (the seek before the flow resumes redoes it).
            try:
                await self.perform_seek()
            except Exception as exc:
                log.warning("seek while the flow is stopped failed: %r", exc)
            return
        generation = self.app.consumer_generation_id
        buffered = internals.buffered_partitions(self)
        monitor = self.app.monitor
        batch: dict[TP, Sequence[Any]] = {}
        for tp, fetched in records.items():
            if active is not None and tp not in active and tp not in buffered:
                continue
            monitor.track_tp_end_offset(tp, self.highwater(tp))
            if tp.topic in handler.topics:
                # What faust's stream sensor notes per event: its slow-processing check
                # (aiokafka Consumer.verify_event_path) would otherwise call the
                # partition's stream idle since start.
                monitor.stream_inbound_time[tp] = monotonic()
                batch[tp] = fetched
            else:
                await self._faust_way(tp, fetched, generation)
        if batch and self.still_fetching(generation):
            await handler.handle(self, batch)

    async def _faust_way(self, tp: TP, fetched: Sequence[Any], generation: int) -> None:
        """faust's delivery of each record to the conductor (its fetch loop's body; the
        gap bookkeeping is for acknowledged topics, and those are the handler's)."""
        callback = self.callback
        for record in fetched:
            if not self.still_fetching(generation):
                return
            message = internals.to_message(self, tp, record)
            read = internals.read_offset(self, tp)
            if read is None or message.offset >= read:
                await self.wait_first(callback(message), self.suspend_flow.wait())
                internals.set_read_offset(self, tp, message.offset)


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`BatchConsumer` (URL scheme ``lifecert``)."""

    Consumer: ClassVar[Any] = BatchConsumer
