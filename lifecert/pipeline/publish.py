"""``lifecert publish``: put a JSON-lines event log on the events topic, in order.

Each line of the interchange form (DESIGN.md) becomes one record of the events topic,
keyed by retiree id, its value the Avro single-object encoding of the event. Ingestion
fills in what the hub sets: an ``event_id`` (uuid4) and a ``recorded_at`` (now) where the
line has none; an id already there is kept, so publishing a file twice yields the same ids
(duplicates the consumers apply once). A line that is not a valid event goes to the
dead-letters topic as a ``DeadLetter`` (stage ``publish``, the raw line, the reason with
its line number) and the run goes on.

Acting as the back-fill scheduler, ``publish`` writes each clock moment of the policy as a
``ClockTick`` into every partition of the events topic exactly where replay decides it
(before the first event recorded at or after it; see :mod:`lifecert.pipeline.scheduler`), and
records it on the clock topic; moments the clock topic already shows are not written again.

The pure part is :func:`plan`: lines in, ``("event", Prepared)`` / ``("tick", Moment)``
out, malformed lines to a callback. :func:`publish_file` drives it against a broker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import IO, Any, Literal

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError

from lifecert.datakeys import KeyStore
from lifecert.domain.fold import uuid5
from lifecert.domain.policy import Moment, Policy
from lifecert.events import bounds, codec
from lifecert.events.catalogue import ENVELOPE_FIELDS, Event, event_spec
from lifecert.events.interchange import MalformedEvent, loads, parse_event
from lifecert.events.personal import PersonalDataError, seal_personal, seal_raw
from lifecert.events.typed import from_event
from lifecert.events.types import InputEvent
from lifecert.pipeline import broker_clients, broker_errors, scheduler
from lifecert.pipeline.topics import CLOCK, DEAD_LETTERS, EVENTS, TopicLayout
from lifecert.replay import dead_letter_record

__all__ = [
    "STAGE",
    "Prepared",
    "PublishStats",
    "dead_letter_event",
    "plan",
    "prepare_line",
    "prepare_lines",
    "publish_file",
]

STAGE = "publish"
# A dead letter keeps at most this much of its line (a record must stay under the broker's
# max.message.bytes, 1 MiB by default); the reason says when it was cut.
MAX_DEAD_LETTER_VALUE = 256 * 1024
MalformedSink = Callable[[int, bytes, MalformedEvent], None]


@dataclass(slots=True)
class Prepared:
    """A valid event of line ``line``, ready to send: key (retiree id) and encoded value
    (``raw``: the line itself, for a dead letter should the broker refuse the record)."""

    line: int
    event: InputEvent
    key: bytes
    value: bytes
    raw: bytes = b""


@dataclass
class PublishStats:
    lines: int = 0
    events: int = 0
    ids_assigned: int = 0
    recorded_at_assigned: int = 0
    dropped_fields: dict[str, int] = field(default_factory=dict)  # field -> events
    dead_letters: int = 0
    ticks: list[str] = field(default_factory=list)  # moment kinds written, in order
    ticks_already_published: list[str] = field(default_factory=list)
    tick_records: int = 0  # ticks in the events topic + clock records
    partitions: int = 0
    records: int = 0  # every record acknowledged by the broker
    bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events": self.events,
            "ids_assigned": self.ids_assigned,
            "recorded_at_assigned": self.recorded_at_assigned,
            "dropped_fields": dict(self.dropped_fields),
            "dead_letters": self.dead_letters,
            "ticks": list(self.ticks),
            "ticks_already_published": list(self.ticks_already_published),
            "tick_records": self.tick_records,
            "partitions": self.partitions,
            "records": self.records,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }

    def describe(self) -> str:
        parts = [
            f"published {self.events:,} events of {self.lines:,} lines "
            f"({self.dead_letters:,} dead-lettered; ids assigned to {self.ids_assigned:,}, "
            f"recorded_at to {self.recorded_at_assigned:,})",
        ]
        if self.ticks:
            parts.append(
                f"clock ticks: {', '.join(self.ticks)} "
                f"(each in {self.partitions} partitions + the clock topic)"
            )
        else:
            parts.append("clock ticks: none")
        if self.ticks_already_published:
            parts.append(
                "already on the clock topic, not written again: "
                + ", ".join(self.ticks_already_published)
            )
        if self.dropped_fields:
            parts.append(
                "fields outside the schemas, not published: "
                + ", ".join(f"{k} ({v:,} events)" for k, v in sorted(self.dropped_fields.items()))
            )
        parts.append(f"{self.records:,} records acknowledged by the broker")
        return "\n".join(parts)


# ----------------------------------------------------------------------------- pure


@cache
def _schema_fields(type_name: str) -> frozenset[str]:
    return frozenset(ENVELOPE_FIELDS) | {f.name for f in event_spec(type_name).fields}


def _now() -> datetime:
    return datetime.now(UTC)


def prepare_line(
    raw: bytes | str,
    line_no: int,
    stats: PublishStats | None = None,
    now: Callable[[], datetime] = _now,
    *,
    keys: KeyStore,
) -> Prepared:
    """Parse, complete, seal (personal fields, under the retiree's key in ``keys``) and
    encode one line; raises :class:`MalformedEvent` (with the line number) for a line that
    is not a valid input event or cannot be encoded. ``event`` is what goes on the topic."""
    try:
        obj = loads(raw)
    except ValueError as exc:  # UnicodeDecodeError and nesting too deep included
        raise MalformedEvent(f"not valid JSON: {exc}", line=line_no) from None
    new_id = new_time = False
    if type(obj) is dict:
        if obj.get("event_id") is None:
            obj["event_id"] = str(uuid.uuid4())
            new_id = True
        if obj.get("recorded_at") is None:
            obj["recorded_at"] = now().isoformat()
            new_time = True
    try:
        event = parse_event(obj)
    except MalformedEvent as exc:
        raise exc.at_line(line_no) from None
    type_name = event["type"]
    extra = [k for k in event if k not in _schema_fields(type_name)]
    for key in extra:
        del event[key]
    try:
        typed: InputEvent = from_event(event)  # type: ignore[assignment]  # an input type
        typed = seal_personal(typed, keys)
        value = codec.encode(typed)
    except PersonalDataError as exc:
        raise MalformedEvent(str(exc), line=line_no) from None
    except codec.CodecError as exc:
        raise MalformedEvent(f"cannot be encoded: {exc}", line=line_no) from None
    if stats is not None:
        stats.ids_assigned += new_id
        stats.recorded_at_assigned += new_time
        for key in extra:
            stats.dropped_fields[key] = stats.dropped_fields.get(key, 0) + 1
    raw_bytes = raw.encode("utf-8") if isinstance(raw, str) else raw
    return Prepared(line_no, typed, typed.retiree_id.encode("utf-8"), value, raw_bytes)


def prepare_lines(
    lines: Iterable[bytes] | Iterable[str],
    on_malformed: MalformedSink,
    stats: PublishStats | None = None,
    *,
    now: Callable[[], datetime] = _now,
    on_line: Callable[[int], None] | None = None,
    keys: KeyStore,
) -> Iterator[Prepared]:
    """The valid events of ``lines`` in order; each malformed line goes to
    ``on_malformed(line_no, raw, error)`` instead. Blank lines are skipped. ``on_line``
    gets the length of every line read (for progress)."""
    for line_no, line in enumerate(_prefetching(lines, keys), 1):
        if stats is not None:
            stats.lines = line_no
        if on_line is not None:
            on_line(len(line))
        if not line or line.isspace():
            continue
        raw = (line.encode("utf-8") if isinstance(line, str) else line).rstrip(b"\r\n")
        try:
            prepared = prepare_line(raw, line_no, stats, now, keys=keys)
        except MalformedEvent as error:
            if stats is not None:
                stats.dead_letters += 1
            on_malformed(line_no, raw, error)
            continue
        if stats is not None:
            stats.events += 1
        yield prepared


# Lines read ahead to make their retirees' keys in one transaction.
PREFETCH_LINES = 2000


def _prefetching(lines: Iterable[bytes] | Iterable[str], keys: KeyStore) -> Iterator[Any]:
    """``lines`` as they are; every :data:`PREFETCH_LINES`, the keys of the retirees they
    enrol are made (or fetched) at once, if the key store can (``prefetch``)."""
    prefetch = getattr(keys, "prefetch", None)
    if prefetch is None:
        yield from lines
        return
    chunk: list[Any] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= PREFETCH_LINES:
            prefetch(_enrolled(chunk))
            yield from chunk
            chunk = []
    if chunk:
        prefetch(_enrolled(chunk))
        yield from chunk


def _enrolled(chunk: list[Any]) -> list[str]:
    """The retiree ids of the lines of ``chunk`` that look like enrolments (malformed
    ones are left to the parser, which reports them)."""
    ids = []
    for line in chunk:
        if ("RetireeEnrolled" if isinstance(line, str) else b"RetireeEnrolled") in line:
            try:
                obj = loads(line)
            except ValueError:  # too deep included
                continue
            if type(obj) is dict and obj.get("type") == "RetireeEnrolled" and \
                    (rid := _retiree_of_obj(obj)) is not None:
                ids.append(rid)
    return ids


def plan(
    lines: Iterable[bytes] | Iterable[str],
    policy: Policy,
    on_malformed: MalformedSink,
    *,
    ticks: bool = True,
    until: date | None = None,
    fired: Iterable[str] = (),
    stats: PublishStats | None = None,
    now: Callable[[], datetime] = _now,
    on_line: Callable[[int], None] | None = None,
    keys: KeyStore,
) -> Iterator[tuple[Literal["event"], Prepared] | tuple[Literal["tick"], Moment]]:
    """What to publish, in order: every valid event of ``lines`` and, unless ``ticks`` is
    false, the policy's moments where replay decides them (with ``until``, the moments
    due by the end of that day last). Moments in ``fired`` (already published) are left
    out. Malformed lines go to ``on_malformed``."""
    events = prepare_lines(lines, on_malformed, stats, now=now, on_line=on_line, keys=keys)
    if not ticks:
        for prepared in events:
            yield scheduler.EVENT, prepared
        return
    yield from scheduler.place_ticks(
        events,
        policy.moments,
        until=scheduler.cutoff(until) if until is not None else None,
        fired=frozenset(fired),
        recorded_at=lambda p: p.event["recorded_at"],
    )


def dead_letter_event(
    source: str, line_no: int, raw: bytes, error: MalformedEvent, recorded_at: datetime,
    *, keys: KeyStore,
) -> Event:
    """The ``DeadLetter`` of a malformed line. Its id is a UUIDv5 of the source, line
    number and content, so publishing the same file twice gives the same dead letters.
    A line longer than :data:`MAX_DEAD_LETTER_VALUE` is cut, and the reason says so. The
    line may hold personal data in any shape: its bytes are sealed whole
    (:func:`~lifecert.events.personal.seal_raw`), under the retiree's key when the line
    names one."""
    digest = sha256(raw).hexdigest()
    reason = error.describe()
    if len(raw) > MAX_DEAD_LETTER_VALUE:
        reason += f" (raw line cut to its first {MAX_DEAD_LETTER_VALUE:,} of {len(raw):,} bytes)"
        raw = raw[:MAX_DEAD_LETTER_VALUE]
    sealed = seal_raw(raw, keys, recorded_at, _retiree_of(raw))
    return {
        "type": "DeadLetter",
        "event_id": uuid5(f"DeadLetter|{STAGE}|{source}|{line_no}|{digest}"),
        "recorded_at": recorded_at,
        "source_agency": None,
        "stage": STAGE,
        "source_topic": source,
        "source_partition": None,
        "source_offset": line_no,
        "key": None,
        "value": sealed,
        "source_position": None,
        "reason": reason,
    }


def _retiree_of(raw: bytes) -> str | None:
    """The retiree id of a malformed line, if it is a JSON object naming a plausible one."""
    try:
        obj = loads(raw)
    except ValueError:  # too deep included
        return None
    return _retiree_of_obj(obj) if type(obj) is dict else None


def _retiree_of_obj(obj: dict[str, Any]) -> str | None:
    rid = obj.get("retiree_id")
    return rid if isinstance(rid, str) and bounds.RETIREE_ID.fullmatch(rid) else None


# ---------------------------------------------------------------------------- Kafka


class _TooLarge(Exception):
    """The producer refused a record as larger than ``max_request_size``."""


class _Sender:
    """``producer.send`` counting acknowledgements and keeping the first failures."""

    def __init__(self, producer: KafkaProducer) -> None:
        self.producer = producer
        self.sent = 0
        self.acked = 0
        self.errors: list[BaseException] = []

    def _ok(self, _metadata: Any) -> None:
        self.acked += 1

    def _failed(self, exc: BaseException) -> None:
        if len(self.errors) < 10:
            self.errors.append(exc)

    def send(
        self, topic: str, value: bytes, key: bytes | None, partition: int | None = None
    ) -> None:
        try:
            future = self.producer.send(topic, value=value, key=key, partition=partition)
        except MessageSizeTooLargeError as exc:
            raise _TooLarge(str(exc)) from exc
        except KafkaError as exc:
            raise broker_errors.KafkaUnavailable(
                f"cannot send to {topic}: {broker_errors.describe_error(exc)}") from exc
        future.add_callback(self._ok)
        future.add_errback(self._failed)
        self.sent += 1

    def check(self) -> None:
        if self.errors:
            exc = self.errors[0]
            raise broker_errors.KafkaUnavailable(
                f"the broker rejected a record: {broker_errors.describe_error(exc)}"
                + (f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else "")
            ) from exc

    def finish(self, timeout: float) -> None:
        try:
            self.producer.flush(timeout=timeout)
        except KafkaError as exc:
            raise broker_errors.KafkaUnavailable(
                f"the broker did not acknowledge every record within {timeout:.0f} s: "
                f"{broker_errors.describe_error(exc)}"
            ) from exc
        self.check()
        if self.acked != self.sent:
            raise broker_errors.KafkaUnavailable(
                f"only {self.acked:,} of {self.sent:,} records were acknowledged by the broker"
            )


def publish_file(
    path: Path,
    policy: Policy,
    *,
    bootstrap: str,
    layout: TopicLayout,
    ticks: bool = True,
    until: date | None = None,
    dead_letter_topic: bool = True,
    dead_letters_file: Path | None = None,
    on_bytes: Callable[[int], None] | None = None,
    connect_timeout: float = broker_clients.CONNECT_TIMEOUT_S,
    flush_timeout: float = 300.0,
    now: Callable[[], datetime] = _now,
    producer_settings: dict[str, Any] | None = None,
    keys: KeyStore,
) -> PublishStats:
    """Publish the event log ``path`` (see the module doc). Raises
    :class:`~lifecert.pipeline.broker_errors.KafkaUnavailable` or
    :class:`~lifecert.pipeline.broker_errors.TopicProblem`; returns only once the broker has
    acknowledged every record."""
    started = time.monotonic()
    stats = PublishStats()
    events_topic = layout[EVENTS].name
    dead_topic = layout[DEAD_LETTERS].name
    source = str(path.resolve())

    consumer = broker_clients.consumer(bootstrap, connect_timeout=connect_timeout)
    try:
        partitions = broker_clients.partitions_of(consumer, events_topic)
        if ticks:
            broker_clients.partitions_of(consumer, layout[CLOCK].name)
        if dead_letter_topic:
            broker_clients.partitions_of(consumer, dead_topic)
        fired = scheduler.published_moments(consumer, layout, policy.name) if ticks else {}
    finally:
        consumer.close()
    stats.partitions = len(partitions)
    stats.ticks_already_published = [m.kind for m in policy.moments if m.kind in fired]

    producer = broker_clients.producer(bootstrap, connect_timeout=connect_timeout,
                                      **(producer_settings or {}))
    sender = _Sender(producer)
    writer = scheduler.TickWriter(producer, layout, policy.name, partitions)
    dead_fh: IO[str] | None = None
    try:
        if dead_letters_file is not None:
            dead_letters_file.parent.mkdir(parents=True, exist_ok=True)
            dead_fh = dead_letters_file.open("w", encoding="utf-8")

        def malformed(line_no: int, raw: bytes, error: MalformedEvent) -> None:
            if dead_fh is not None:
                record = dead_letter_record(line_no, error, raw)
                dead_fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            if dead_letter_topic:
                letter = dead_letter_event(source, line_no, raw, error, now(), keys=keys)
                sender.send(dead_topic, codec.encode(letter), None)

        with path.open("rb") as lines:
            steps = plan(
                lines, policy, malformed,
                ticks=ticks, until=until, fired=fired, stats=stats, now=now, on_line=on_bytes,
                keys=keys,
            )
            send = sender.send
            for n, (_, item) in enumerate(steps):
                if isinstance(item, Prepared):
                    try:
                        send(events_topic, item.value, item.key)
                    except _TooLarge:
                        stats.events -= 1
                        stats.dead_letters += 1
                        reason = (
                            f"its record ({len(item.value):,} bytes) is larger than a Kafka "
                            f"record may be ({producer.config['max_request_size']:,} bytes)"
                        )
                        malformed(item.line, item.raw, MalformedEvent(reason, line=item.line))
                else:
                    writer.write(item)
                    stats.ticks.append(item.kind)
                    sender.check()
                if not n & 0xFFF:
                    sender.check()
        sender.finish(flush_timeout)
    finally:
        if dead_fh is not None:
            dead_fh.close()
        producer.close(timeout=10)
    stats.tick_records = writer.records
    stats.records = sender.acked + writer.records
    stats.bytes = path.stat().st_size
    stats.seconds = time.monotonic() - started
    return stats
