"""The runner: drives one connector instance against the broker.

Source: read the checkpoint; then, until stopped, poll a batch from the partner, turn each
record into events (deterministic ids), publish them with the idempotent producer, wait for
every acknowledgement, commit the checkpoint, and tell the connector (``_committed``). A
crash anywhere before the commit reads the batch again after a restart, giving the same
event ids: the worker decides an event id once, so nothing is doubled in effect.

Sink: start from the offsets the partner stores (exactly-once sinks) or the checkpoint,
poll a batch, dead-letter what cannot be decoded, apply the rest (``_apply``), dead-letter
what the partner refused for good, commit the offsets.

Transient failures (the partner or the broker away) are retried with exponential backoff
and jitter, for ever; the partner connection is re-opened before each retry. SIGTERM (the
``stop`` event) ends the loop after the current batch is committed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from connectors.sdk.base import (
    Connector,
    PartnerRecord,
    Position,
    SinkConnector,
    SinkRecord,
    SourceConnector,
)
from connectors.sdk.checkpoints import CheckpointStore
from connectors.sdk.config_file import InstanceConfig
from connectors.sdk.errors import PartnerUnavailable, RecordRejected
from connectors.sdk.heartbeat import Heartbeat
from connectors.sdk.metrics import ConnectorMetrics
from connectors.sdk.retry import Backoff, Stopped, retrying
from lifecert.datakeys import KeyStore
from lifecert.domain.fold import uuid5
from lifecert.events import codec
from lifecert.events.interchange import MalformedEvent
from lifecert.events.personal import PersonalDataError, seal_personal, seal_raw
from lifecert.events.typed import parse_typed
from lifecert.events.types import TypedEvent
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.topics import (
    CONNECTOR_CHECKPOINTS,
    CONNECTOR_STATUS,
    DEAD_LETTERS,
    TopicLayout,
)

# A dead letter keeps at most this much of the raw record (a Kafka record stays < 1 MiB).
MAX_RAW = 256 * 1024
LAG_EVERY_S = 5.0
# A record the broker has not acknowledged for this long (a heartbeat), or a batch not
# acknowledged within it: the broker is unreachable, or the record's topic is gone. The
# producer is then closed, dropping what it holds, and made again after a backoff: while a
# kafka-python producer holds a record it cannot deliver (its topic deleted under it, its
# broker replaced) its sender thread spins (70% of a core, seen for 45 minutes).
STUCK_S = 10.0
# How long a send may wait for its topic's metadata. kafka-python's wait for the metadata of
# a topic that does not exist is busy too (about 16 metadata requests a second, and the
# wake-ups between them), so it is kept short; the backoff between attempts is not.
METADATA_WAIT_S = 3.0


def stage_of(instance: str) -> str:
    """The ``stage`` of the dead letters of a connector instance."""
    return f"connector:{instance}"


def event_id_of(instance: str, record_key: str, index: int) -> str:
    """The id of the ``index``-th event of a partner record: UUIDv5 of the connector
    instance (one partner system) and the record's key, so a record read again yields the
    same id, and two partner systems whose keys coincide (two inboxes, both with a file
    ``B1.csv``) never share one. Renaming an instance changes its ids: keep names stable."""
    return uuid5(f"{instance}|{record_key}|{index}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise MalformedEvent(f"naive time {value.isoformat()}: give the offset")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


class _Runner:
    def __init__(
        self,
        connector: Connector,
        instance: InstanceConfig,
        *,
        bootstrap: str,
        layout: TopicLayout,
        metrics: ConnectorMetrics,
        stop: threading.Event,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        keys: KeyStore | None = None,
    ) -> None:
        self.connector = connector
        self._keys = keys
        self.instance = instance
        self.name = instance.name
        self.kind = instance.kind
        self.bootstrap = bootstrap
        self.layout = layout
        self.metrics = metrics
        self.stop = stop
        self.now = now
        self.log = logging.getLogger(f"lifecert.connectors.{self.name}")
        self.backoff = Backoff(instance.runner.retry_initial, instance.runner.retry_max)
        self.producer: KafkaProducer | None = None
        self.checkpoints: CheckpointStore | None = None
        self.heartbeat: Heartbeat | None = None
        self._open = False
        # After the producer was dropped (broker unreachable): the backoff before it is
        # made again (its attempt counts the drops in a row), and the monotonic time
        # before which it is not.
        self._reconnect = Backoff(instance.runner.retry_initial, instance.runner.retry_max)
        self._reconnect_at = 0.0
        self._dead_topic = layout[DEAD_LETTERS].name

    # Whether a dead letter's raw record is sealed (see _dead_letter): a source's comes
    # from a partner and may hold personal data in the clear.
    seals_raw = False

    # -- plumbing shared by sources and sinks ---------------------------------------
    @property
    def keys(self) -> KeyStore:
        """The key store of personal data, opened on first use (default: see
        lifecert.keystore.postgres.open_keystore)."""
        if self._keys is None:
            from lifecert.keystore.postgres import open_keystore

            self._keys = self._retry(open_keystore, "opening the key store")
        return self._keys

    def _retry(self, step: Callable[[], Any], what: str) -> Any:
        return retrying(step, what, backoff=self.backoff, stop=self.stop, log=self.log,
                        on_retry=self._on_retry, on_wait=self._check_kafka)

    def _on_retry(self, exc: BaseException) -> None:
        self.metrics.retries.inc()
        if isinstance(exc, broker_errors.KafkaUnavailable):
            self._drop_kafka(str(exc))

    def _partner(self, call: Callable[[], Any]) -> Any:
        """``call()`` against the partner, opening the connection first; a transient
        failure closes it so that the retry starts from a fresh connection."""
        if not self._open:
            self.connector._open()
            self._open = True
        try:
            return call()
        except PartnerUnavailable:
            self._close_partner()
            raise

    def _close_partner(self) -> None:
        if self._open:
            self._open = False
            try:
                self.connector._close()
            except Exception:  # closing a broken connection may fail too
                self.log.debug("closing the partner connection failed", exc_info=True)

    def _connect_kafka(self) -> None:
        self._retry(self._open_kafka, "connecting to the broker")

    def _open_kafka(self) -> CheckpointStore:
        """The producer (with the checkpoints and heartbeats that use it), made unless it
        is open; not before the backoff after it was dropped. Raises KafkaUnavailable."""
        if self.producer is None:
            wait = self._reconnect_at - time.monotonic()
            if wait > 0:
                raise broker_errors.KafkaUnavailable(
                    f"the broker at {self.bootstrap} was unreachable; connecting again in "
                    f"{wait:.1f} s")
            self.producer = broker_clients.producer(
                self.bootstrap, max_block_ms=int(METADATA_WAIT_S * 1000))
            self.checkpoints = CheckpointStore(
                self.bootstrap, self.layout[CONNECTOR_CHECKPOINTS].name, self.producer
            )
            self.heartbeat = Heartbeat(self.producer, self.layout[CONNECTOR_STATUS].name,
                                       self.name, self.kind, log=self.log,
                                       clock=time.monotonic, now=self.now)
        assert self.checkpoints is not None
        return self.checkpoints

    def _drop_kafka(self, reason: str) -> None:
        """Close the producer at once, dropping the records it holds (a source reads its
        batch again from the checkpoint, with the same event ids; a heartbeat is not
        missed), and make it again no sooner than a backoff doubling up to retry_max."""
        if self.producer is None:
            return
        delay = self._reconnect.next_ceiling()
        self._reconnect_at = time.monotonic() + delay
        self.log.warning(
            "the Kafka broker at %s is unreachable or lost a topic (%s): closed the producer "
            "and dropped the records it held; connecting again in %.1f s (failure %d in a "
            "row)", self.bootstrap, reason, delay, self._reconnect.attempt)
        producer, self.producer = self.producer, None
        self.checkpoints = None
        self.heartbeat = None
        try:
            broker_clients.close_now(producer)
        except Exception:  # closing a broken producer may fail too
            self.log.debug("closing the producer failed", exc_info=True)

    def _kafka_ok(self) -> None:
        """The broker acknowledged what was sent: the backoff starts again from its first
        step (a producer that connects but cannot deliver does not reset it)."""
        if self._reconnect.attempt:
            self.log.warning("the broker at %s acknowledges again", self.bootstrap)
            self._reconnect.reset()

    def _check_kafka(self) -> None:
        """Drop the producer when its last heartbeat has waited STUCK_S for the broker."""
        if self.heartbeat is not None:
            waited = self.heartbeat.undelivered_for()
            if waited > STUCK_S:
                self._drop_kafka(f"a heartbeat to {self.heartbeat.topic} unacknowledged for "
                                 f"{waited:.0f} s")

    def _report_lag(self, lag: int | None) -> None:
        """The lag just measured: into the metrics and the heartbeat (connector_status)."""
        if lag is not None:
            self.metrics.lag.set(lag)
        try:
            self._open_kafka()
        except broker_errors.KafkaUnavailable:
            return  # no heartbeat while the broker is away; the dashboard shows it stale
        if self.heartbeat is not None:
            self.heartbeat.beat(lag)

    def _send_all(self, records: Iterable[tuple[str, bytes | None, bytes]]) -> None:
        """Send ``(topic, key, value)`` records and wait until the broker acknowledged
        every one; a failure raises KafkaUnavailable (the caller retries the batch)."""
        self._open_kafka()
        assert self.producer is not None
        futures = []
        try:
            for topic, key, value in records:
                futures.append(self.producer.send(topic, key=key, value=value))
            self.producer.flush(timeout=STUCK_S)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise broker_errors.KafkaUnavailable(
                f"publishing failed: {broker_errors.describe_error(exc)}") from exc
        self._kafka_ok()

    def _dead_letter(
        self, id_key: str, reason: str, *, key: bytes | None, raw: bytes,
        position: Position | None = None, topic: str | None = None,
        partition: int | None = None, offset: int | None = None,
    ) -> tuple[str, bytes | None, bytes]:
        cut = ""
        if len(raw) > MAX_RAW:
            cut = f" (raw record cut to its first {MAX_RAW:,} of {len(raw):,} bytes)"
            raw = raw[:MAX_RAW]
        if self.seals_raw:
            now, keys = self.now(), self.keys
            raw = self._retry(lambda: seal_raw(raw, keys, now), "sealing a dead letter")
        letter = {
            "type": "DeadLetter",
            "event_id": uuid5(f"DeadLetter|{stage_of(self.name)}|{id_key}"),
            "recorded_at": self.now(),
            "source_agency": getattr(self.connector, "source_agency", None) or None,
            "stage": stage_of(self.name),
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
            "key": key,
            "value": raw,
            "source_position": None if position is None else json.dumps(position,
                                                                        ensure_ascii=False),
            "reason": reason + cut,
        }
        self.metrics.dead_lettered.inc()
        self.log.warning("dead letter: %s", reason)
        return self._dead_topic, key, codec.encode(letter)

    def close(self) -> None:
        self._close_partner()
        if self.producer is not None:
            self.producer.close(timeout=10)
            self.producer = None


class SourceRunner(_Runner):
    connector: SourceConnector
    seals_raw = True

    def run(self) -> None:
        """Run until ``stop`` is set (returns) or a connector bug raises."""
        try:
            self._connect_kafka()
            position = self._retry(lambda: self._open_kafka().load(self.name),
                                   "reading the checkpoint")
            self.log.info("%s (%s) starting from %s", self.name, self.kind,
                          "the beginning" if position is None else json.dumps(position))
            idle = self.connector.idle_interval or self.instance.runner.idle_interval
            last_lag = 0.0
            while not self.stop.is_set():
                self._check_kafka()
                poll = partial(self.connector._poll, position, self.instance.runner.batch_size)
                records = self._retry(partial(self._partner, poll), "polling the partner")
                if time.monotonic() - last_lag > LAG_EVERY_S or not records:
                    last_lag = time.monotonic()
                    self._update_lag(position if not records else records[-1].position)
                if not records:
                    if self._open:
                        self._partner(lambda: self.connector._wait(idle))
                    else:
                        self.stop.wait(idle)
                    continue
                position = self._publish(records)
        except Stopped:
            pass
        finally:
            self.close()

    def _update_lag(self, position: Position | None) -> None:
        try:
            lag = self._partner(lambda: self.connector._lag(position))
        except PartnerUnavailable:
            return
        self._report_lag(lag)

    def events_of(self, record: PartnerRecord) -> list[TypedEvent]:
        """The record's events, with ids, times and agency, checked against the schemas.
        Raises RecordRejected (the connector's reason, or the schema's)."""
        return [event for event, _ in self.encoded_events_of(record)]

    def encoded_events_of(self, record: PartnerRecord) -> list[tuple[TypedEvent, bytes]]:
        """The record's events as :meth:`events_of` gives them, each with its encoding:
        parsed once into its type (the schema's checks), sealed, encoded once."""
        raw_events = self.connector._to_events(record)
        out = []
        for index, event in enumerate(raw_events):
            try:
                candidate = {k: _jsonable(v) for k, v in event.items()}
                candidate["event_id"] = event_id_of(self.name, record.key, index)
                if candidate.get("recorded_at") is None:
                    candidate["recorded_at"] = self.now().isoformat()
                if not candidate.get("source_agency"):
                    candidate["source_agency"] = self.connector.source_agency or None
                parsed = parse_typed(candidate, allowed=self.connector.publishes)
                parsed = self._retry(partial(seal_personal, parsed, self.keys),
                                     "sealing personal fields")
                value = codec.encode(parsed)
            except (MalformedEvent, codec.CodecError, PersonalDataError) as exc:
                text = exc.describe() if isinstance(exc, MalformedEvent) else str(exc)
                raise RecordRejected(f"mapped to an invalid {event.get('type')}: {text}") \
                    from None
            out.append((parsed, value))
        return out

    def _publish(self, records: Sequence[PartnerRecord]) -> Position:
        outgoing: list[tuple[str, bytes | None, bytes]] = []
        rejected: list[tuple[PartnerRecord, str]] = []
        published = 0
        for record in records:
            self.metrics.records_in.inc()
            try:
                events = self.encoded_events_of(record)
            except RecordRejected as exc:
                reason = f"{self.kind} record {record.key}: {exc.reason}"
                rejected.append((record, exc.reason))
                outgoing.append(self._dead_letter(
                    record.key, reason, key=record.key.encode("utf-8"), raw=record.raw,
                    position=record.position))
                continue
            for event, value in events:
                topic = self.layout.for_type(event["type"]).name
                outgoing.append((topic, event["retiree_id"].encode("utf-8"), value))
                published += 1
        self._retry(lambda: self._send_all(outgoing), "publishing a batch")
        self.metrics.published.inc(published)
        position = records[-1].position
        self._retry(lambda: self._open_kafka().commit(self.name, self.kind, position),
                    "committing the checkpoint")
        self.metrics.committed()
        self._retry(lambda: self._partner(
            lambda: self.connector._committed(records, rejected, position)),
            "confirming the batch to the partner")
        return position


def _offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class SinkRunner(_Runner):
    connector: SinkConnector

    def run(self) -> None:
        consumer = None
        try:
            self._connect_kafka()
            topics = [self.layout[role].name for role in self.connector.topics]
            consumer = self._retry(lambda: self._assign(topics), "assigning the topics")
            last_lag = 0.0
            while not self.stop.is_set():
                self._check_kafka()
                polled = self._retry(lambda: self._poll(consumer), "reading the topics")
                if time.monotonic() - last_lag > LAG_EVERY_S or not polled:
                    last_lag = time.monotonic()
                    self._update_lag(consumer)
                if polled:
                    self._handle(polled)
        except Stopped:
            pass
        finally:
            if consumer is not None:
                consumer.close()
            self.close()

    def _assign(self, topics: list[str]) -> Any:
        consumer = broker_clients.consumer(self.bootstrap,
                                          max_poll_records=self.instance.runner.batch_size)
        tps = [TopicPartition(t, p)
               for t in topics for p in broker_clients.partitions_of(consumer, t)]
        consumer.assign(tps)
        stored = self._partner(self.connector._stored_offsets)
        if stored is None:
            saved = self._open_kafka().load(self.name) or {}
            stored = {tuple(k.rsplit(":", 1)): v for k, v in saved.items()}
            stored = {(t, int(p)): v for (t, p), v in stored.items()}
            self._exactly_once = False
        else:
            self._exactly_once = True
        starts = consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(stored.get((tp.topic, tp.partition), 0), starts[tp]))
        self._tps = tps
        self._offsets = {_offset_key(tp.topic, tp.partition): consumer.position(tp) for tp in tps}
        self.log.info("%s (%s) consuming %s from %s", self.name, self.kind, ", ".join(topics),
                      json.dumps(self._offsets))
        return consumer

    def _poll(self, consumer: Any) -> list[Any]:
        try:
            batches = consumer.poll(
                timeout_ms=int(self.instance.runner.idle_interval * 1000),
                max_records=self.instance.runner.batch_size)
        except KafkaError as exc:
            raise broker_errors.KafkaUnavailable(
                f"cannot read: {broker_errors.describe_error(exc)}") from exc
        records = [r for batch in batches.values() for r in batch]
        records.sort(key=lambda r: (r.topic, r.partition, r.offset))
        return records

    def _update_lag(self, consumer: Any) -> None:
        try:
            ends = consumer.end_offsets(self._tps)
        except KafkaError:
            return
        self._report_lag(sum(
            max(0, ends[tp] - self._offsets.get(_offset_key(tp.topic, tp.partition), 0))
            for tp in self._tps))

    def _handle(self, polled: list[Any]) -> None:
        good: list[SinkRecord] = []
        letters: list[tuple[str, bytes | None, bytes]] = []
        for r in polled:
            self.metrics.records_in.inc()
            try:
                if not r.value:
                    raise codec.DecodeError("the record has no value")
                event = codec.decode(r.value)
            except codec.CodecError as exc:
                letters.append(self._dead_letter(
                    f"{r.topic}|{r.partition}|{r.offset}",
                    f"record {r.topic}[{r.partition}]@{r.offset} cannot be decoded: {exc}",
                    key=r.key, raw=r.value or b"", topic=r.topic, partition=r.partition,
                    offset=r.offset))
                continue
            good.append(SinkRecord(r.topic, r.partition, r.offset, r.key, r.value, event))
        next_offsets = {(r.topic, r.partition): r.offset + 1 for r in polled}
        if letters:  # before the batch's offsets can be stored with its effects
            self._retry(lambda: self._send_all(letters), "publishing dead letters")
            letters = []
        rejected: Sequence[tuple[SinkRecord, str]] = []
        if good or self._exactly_once:
            rejected = self._retry(lambda: self._partner(
                lambda: self.connector._apply_through(good, next_offsets)), "applying a batch")
        for record, reason in rejected:
            letters.append(self._dead_letter(
                f"{record.topic}|{record.partition}|{record.offset}",
                f"{self.kind} refused {record.event.get('type')} {record.event.get('event_id')}"
                f" ({record.topic}[{record.partition}]@{record.offset}): {reason}",
                key=record.key, raw=record.value, topic=record.topic,
                partition=record.partition, offset=record.offset))
        self.metrics.published.inc(len(good) - len(rejected))
        if letters:
            self._retry(lambda: self._send_all(letters), "publishing dead letters")
        for r in polled:
            self._offsets[_offset_key(r.topic, r.partition)] = r.offset + 1
        if not self._exactly_once:
            offsets = dict(self._offsets)
            self._retry(lambda: self._open_kafka().commit(self.name, self.kind, offsets),
                        "committing the checkpoint")
        self.metrics.committed()


def runner_for(
    connector: Connector, instance: InstanceConfig, **kwargs: Any
) -> SourceRunner | SinkRunner:
    if isinstance(connector, SourceConnector):
        return SourceRunner(connector, instance, **kwargs)
    if isinstance(connector, SinkConnector):
        return SinkRunner(connector, instance, **kwargs)
    raise TypeError(f"{type(connector).__name__} is neither a source nor a sink connector")
