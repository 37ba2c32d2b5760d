"""Reading a whole topic, or its last records, as :class:`~lifecert.pipeline.readable.Decoded`
records (``lifecert topics tail``, ``lifecert log dump``), with kafka-python."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.broker_errors import describe_error
from lifecert.pipeline.readable import Decoded, decoded
from lifecert.pipeline.topics import TopicLayout

Undecodable = tuple[str, int, int, str]


class UnknownTopic(ValueError):
    """A name that is not one of lifecert's topics; the message lists them."""


def resolve(layout: TopicLayout, topic: str) -> str:
    """The topic's full name from a role (``events``), a full name, or a name without the
    layout's prefix (``lifecert.events``).

    Without a prefix, a known name under one (``t42.lifecert.events``) is taken as the
    full name it is; with another prefix than its own, it is refused, naming the
    ``--prefix`` to give."""
    specs = layout.topics.values()
    for spec in specs:
        if topic in (spec.role, spec.name, spec.name.removeprefix(layout.prefix)):
            return spec.name
    prefixed = [(spec.role, topic.removesuffix(base)) for spec in specs
                if len(topic) > len(base := spec.name.removeprefix(layout.prefix))
                and topic.endswith(base)]
    if prefixed:
        role, prefix = max(prefixed, key=lambda found: len(topic) - len(found[1]))
        if not layout.prefix:
            return topic
        raise UnknownTopic(
            f"{topic!r} is lifecert's topic {role} under the prefix {prefix!r}, not under "
            f"the prefix {layout.prefix!r} given (--prefix or LIFECERT_TOPIC_PREFIX): give "
            f"`{role} --prefix {prefix}`")
    names = ", ".join(f"{s.role} ({s.name})" for s in specs)
    raise UnknownTopic(f"{topic!r} is not one of lifecert's topics: {names}")


@dataclass
class Reading:
    """What a read gave: records per partition in offset order, undecodable ones apart."""

    by_partition: dict[int, list[Decoded]] = field(default_factory=dict)
    undecodable: list[Undecodable] = field(default_factory=list)

    def add(self, item: Decoded | Undecodable) -> Decoded | None:
        if isinstance(item, Decoded):
            self.by_partition.setdefault(item.partition, []).append(item)
            return item
        self.undecodable.append(item)
        return None


def _decode(record: object) -> Decoded | Undecodable:
    return decoded(record.topic, record.partition, record.offset,  # type: ignore[attr-defined]
                   record.timestamp, record.key, record.value)  # type: ignore[attr-defined]


def assign(client: KafkaConsumer, topic: str, last: int | None) -> dict[TopicPartition, int]:
    """Assign every partition of ``topic``, each from its beginning, or ``last`` records
    before its end; the end offsets (what "up to now" means)."""
    tps = [TopicPartition(topic, p) for p in broker_clients.partitions_of(client, topic)]
    try:
        client.assign(tps)
        begins = client.beginning_offsets(tps)
        ends = client.end_offsets(tps)
    except KafkaError as exc:
        raise broker_errors.KafkaUnavailable(
            f"cannot read the offsets of {topic}: {describe_error(exc)}") from exc
    for tp in tps:
        start = begins[tp] if last is None else max(begins[tp], ends[tp] - last)
        client.seek(tp, start)
    return ends


def read_up_to(client: KafkaConsumer, ends: dict[TopicPartition, int],
               timeout: float = 60.0) -> Reading:
    """Every record of the assigned partitions from their positions up to ``ends``."""
    reading = Reading()
    remaining = {tp for tp, end in ends.items() if client.position(tp) < end}
    deadline = time.monotonic() + timeout
    while remaining:
        if time.monotonic() > deadline:
            raise broker_errors.KafkaUnavailable(
                f"reading to the end took more than {timeout:.0f} s")
        for item in poll(client):
            topic, partition, offset = (
                (item.topic, item.partition, item.offset) if isinstance(item, Decoded)
                else item[:3])
            if offset < ends[TopicPartition(topic, partition)]:
                reading.add(item)
        for tp in [tp for tp in remaining if client.position(tp) >= ends[tp]]:
            remaining.discard(tp)
    return reading


def chosen(records: list[Decoded], count: int | None, from_beginning: bool) -> list[Decoded]:
    """What ``topics tail`` shows of ``records`` (every partition's, read up to its end),
    in time order: the first ``count`` from the beginning, else the last ``count`` (all
    of them when there are fewer); ``None``: all."""
    ordered = sorted(records, key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    if count is None:
        return ordered
    return ordered[:count] if from_beginning else ordered[max(0, len(ordered) - count):]


def poll(client: KafkaConsumer, timeout_ms: int = 500) -> Iterator[Decoded | Undecodable]:
    try:
        batches = client.poll(timeout_ms=timeout_ms)
    except KafkaError as exc:
        raise broker_errors.KafkaUnavailable(f"cannot read: {describe_error(exc)}") from exc
    for records in batches.values():
        for record in records:
            yield _decode(record)


def follow(client: KafkaConsumer, emit: Callable[[Decoded | Undecodable], None],
           stop: Callable[[], bool]) -> None:
    """Emit what comes next, until ``stop()`` says so."""
    while not stop():
        for item in poll(client):
            emit(item)
