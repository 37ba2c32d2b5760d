"""The campaign clock of the live pipeline (docs/pipeline.md, "The clock").

A clock moment of the policy (the home-visit sweep, the deadline) is decided before the
first event, in log order, whose ``recorded_at`` is at or after it; an event recorded
before a moment that has already fired is a plain event (docs/rules.md, "Time"). The
scheduler makes that point of the log explicit: it writes a ``ClockTick`` into every
partition of the events topic there, and records the moment on the clock topic.

The pure part, usable without a broker:

- :class:`~lifecert.domain.clock.MomentClock` (re-exported): the pending moments of a
  policy and the rule above, shared with the campaign;
- :func:`place_ticks`: an event stream with ``("tick", moment)`` items inserted exactly
  where replay decides each moment (``lifecert publish`` writes the ticks there);
- :func:`tick_event` / :func:`clock_key`: the records, with deterministic ids.

The Kafka part: :func:`published_moments` reads the clock topic, :class:`TickWriter` writes
a moment's ticks, :func:`advance` is ``lifecert clock advance``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from lifecert.domain.clock import MomentClock, cutoff
from lifecert.domain.fold import uuid5
from lifecert.domain.policy import Moment, Policy
from lifecert.events import codec
from lifecert.events.time import isoformat_local, to_utc
from lifecert.pipeline.topics import CLOCK, EVENTS, TopicLayout

if TYPE_CHECKING:
    from kafka import KafkaConsumer, KafkaProducer

# The pure part (MomentClock, place_ticks, tick_event) needs no Kafka client: kafka-python
# (the ``live`` extra) is imported by the functions that talk to the broker.

__all__ = [
    "EVENT",
    "TICK",
    "TICK_KEY",
    "TICK_SOURCE",
    "AdvanceResult",
    "MomentClock",
    "TickWriter",
    "advance",
    "clock_key",
    "cutoff",
    "place_ticks",
    "published_moments",
    "tick_event",
]

EVENT: Literal["event"] = "event"
TICK: Literal["tick"] = "tick"
# The key of every tick in the events topic (each is written to its partition explicitly).
TICK_KEY = b"__clock__"
# source_agency of every tick: the same bytes whoever writes the moment (publish or advance).
TICK_SOURCE = "lifecert.clock"

E = TypeVar("E")
M = TypeVar("M", bound=Mapping[str, Any])


# ----------------------------------------------------------------------------- pure


def _recorded_at(event: Mapping[str, Any]) -> datetime:
    recorded_at: datetime = event["recorded_at"]
    return recorded_at


# Events that are mappings carry their ``recorded_at``; any other kind says where it is.
@overload
def place_ticks(
    events: Iterable[M],
    moments: Iterable[Moment],
    *,
    until: datetime | None = None,
    fired: Collection[str] = (),
) -> Iterator[tuple[Literal["event"], M] | tuple[Literal["tick"], Moment]]: ...


@overload
def place_ticks(
    events: Iterable[E],
    moments: Iterable[Moment],
    *,
    until: datetime | None = None,
    fired: Collection[str] = (),
    recorded_at: Callable[[E], datetime],
) -> Iterator[tuple[Literal["event"], E] | tuple[Literal["tick"], Moment]]: ...


def place_ticks(
    events: Iterable[Any],
    moments: Iterable[Moment],
    *,
    until: datetime | None = None,
    fired: Collection[str] = (),
    recorded_at: Callable[[Any], datetime] = _recorded_at,
) -> Iterator[tuple[Literal["event"], Any] | tuple[Literal["tick"], Moment]]:
    """``events`` in order as ``("event", event)``, with ``("tick", moment)`` inserted
    before the first event recorded at or after each moment (replay's rule, so a later
    event recorded before a fired moment stays a plain event). With ``until`` (an
    instant, see :func:`cutoff`), the moments at or before it that no event fired come at
    the end. Moments whose kind is in ``fired`` (published already) are never placed."""
    clock = MomentClock(moments, fired=fired)
    for event in events:
        next_at = clock.next_at
        if next_at is not None and recorded_at(event) >= next_at:
            for moment in clock.due(recorded_at(event)):
                yield TICK, moment
        yield EVENT, event
    if until is not None:
        for moment in clock.due(until):
            yield TICK, moment


def clock_key(policy_name: str, kind: str) -> str:
    """Key of a moment on the clock topic: ``POLICY/MOMENT``."""
    return f"{policy_name}/{kind}"


def tick_event(policy_name: str, moment: Moment, partition: int | None) -> dict[str, Any]:
    """The ``ClockTick`` of ``moment`` for events ``partition`` (``None``: the clock
    topic's record). The id is a UUIDv5 of policy, moment and partition, so writing a
    moment twice yields the same records and consumers apply it once."""
    where = "clock" if partition is None else str(partition)
    return {
        "type": "ClockTick",
        "event_id": uuid5(f"{policy_name}|ClockTick|{moment.kind}|{where}"),
        "recorded_at": moment.at,
        "source_agency": TICK_SOURCE,
        "policy": policy_name,
        "moment": moment.kind,
        "at": moment.at,
    }


# ---------------------------------------------------------------------------- Kafka


def published_moments(
    consumer: KafkaConsumer, layout: TopicLayout, policy_name: str, *, timeout: float = 60.0
) -> dict[str, dict[str, Any]]:
    """Moment kind -> its ClockTick, for every moment of ``policy_name`` that the clock
    topic records as published (read to its end). Records that do not decode, or that
    belong to another policy, are ignored: the clock topic is the scheduler's own."""
    from lifecert.pipeline import broker_clients

    found: dict[str, dict[str, Any]] = {}
    prefix = f"{policy_name}/".encode()
    for record in broker_clients.read_to_end(consumer, layout[CLOCK].name, timeout=timeout):
        if record.key is None or not record.key.startswith(prefix) or record.value is None:
            continue
        try:
            tick = codec.decode(record.value)
        except codec.CodecError:
            continue
        if tick.get("type") == "ClockTick" and tick.get("policy") == policy_name:
            found[tick["moment"]] = tick
    return found


class TickWriter:
    """Writes moments with a shared producer: a ``ClockTick`` into every partition of the
    events topic (key ``__clock__``, explicit partition), waits for the broker's acks,
    then records the moment on the clock topic (key ``POLICY/MOMENT``). The clock topic
    thus never claims a moment whose ticks are not all written."""

    def __init__(
        self,
        producer: KafkaProducer,
        layout: TopicLayout,
        policy_name: str,
        partitions: list[int],
        *,
        flush_timeout: float = 120.0,
    ) -> None:
        self.producer = producer
        self.layout = layout
        self.policy_name = policy_name
        self.partitions = partitions
        self.flush_timeout = flush_timeout
        self.records = 0

    def write(self, moment: Moment) -> None:
        """Write ``moment``; raises :class:`~lifecert.pipeline.broker_errors.KafkaUnavailable`
        when the broker does not acknowledge every record."""
        events_topic = self.layout[EVENTS].name
        clock_topic = self.layout[CLOCK].name
        self._send_and_wait(
            [
                (events_topic, tick_event(self.policy_name, moment, partition), TICK_KEY,
                 partition)
                for partition in self.partitions
            ],
            f"the {moment.kind} ticks to {events_topic}",
        )
        key = clock_key(self.policy_name, moment.kind).encode()
        self._send_and_wait(
            [(clock_topic, tick_event(self.policy_name, moment, None), key, None)],
            f"the {moment.kind} record to {clock_topic}",
        )
        self.records += len(self.partitions) + 1

    def _send_and_wait(
        self, records: list[tuple[str, dict[str, Any], bytes, int | None]], what: str
    ) -> None:
        from kafka.errors import KafkaError

        from lifecert.pipeline import broker_errors

        try:
            futures = [
                self.producer.send(topic, value=codec.encode(tick), key=key, partition=partition)
                for topic, tick, key, partition in records
            ]
            self.producer.flush(timeout=self.flush_timeout)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise broker_errors.KafkaUnavailable(
                f"the broker did not acknowledge {what}: {broker_errors.describe_error(exc)}"
            ) from exc


@dataclass(frozen=True)
class AdvanceResult:
    policy: str
    until: datetime  # the cutoff: moments at or before it are due
    published: tuple[Moment, ...]  # by this call
    already: tuple[Moment, ...]  # found on the clock topic
    not_due: tuple[Moment, ...]  # after the cutoff
    partitions: int

    def describe(self) -> str:
        lines = []
        for moment in self.published:
            lines.append(
                f"published {self.policy}/{moment.kind} at {isoformat_local(moment.at)} "
                f"({self.partitions} partitions + clock topic)"
            )
        for moment in self.already:
            lines.append(f"already published {self.policy}/{moment.kind}")
        for moment in self.not_due:
            lines.append(
                f"not due yet: {self.policy}/{moment.kind} at {isoformat_local(moment.at)}"
            )
        if not self.published:
            lines.append("nothing new to publish")
        return "\n".join(lines)


def advance(
    bootstrap: str,
    layout: TopicLayout,
    policy: Policy,
    to: date | datetime,
    *,
    connect_timeout: float | None = None,
) -> AdvanceResult:
    """Publish every moment of ``policy`` at or before the end of day ``to`` (Asia/Shanghai),
    or at or before the instant ``to``, that the clock topic does not show as published;
    idempotent. Raises
    :class:`~lifecert.pipeline.broker_errors.KafkaUnavailable` or
    :class:`~lifecert.pipeline.broker_errors.TopicProblem`."""
    from lifecert.pipeline import broker_clients

    if connect_timeout is None:
        connect_timeout = broker_clients.CONNECT_TIMEOUT_S
    until = to_utc(to) if isinstance(to, datetime) else cutoff(to)
    consumer = broker_clients.consumer(bootstrap, connect_timeout=connect_timeout)
    try:
        partitions = broker_clients.partitions_of(consumer, layout[EVENTS].name)
        done = published_moments(consumer, layout, policy.name)
    finally:
        consumer.close()
    clock = MomentClock(policy.moments, fired=set(done))
    due = clock.due(until)
    already = tuple(m for m in policy.moments if m.kind in done)
    if due:
        producer = broker_clients.producer(bootstrap, connect_timeout=connect_timeout)
        try:
            writer = TickWriter(producer, layout, policy.name, partitions)
            for moment in due:
                writer.write(moment)
        finally:
            producer.close(timeout=10)
    return AdvanceResult(policy.name, until, tuple(due), already, clock.pending, len(partitions))
