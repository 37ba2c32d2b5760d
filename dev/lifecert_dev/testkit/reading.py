"""A topic read whole, as the kit and the tests check what reached the broker: a consumer
of its own (no group, as the admin), every record up to the end offsets, then closed."""

from __future__ import annotations

from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from lifecert.events import codec
from lifecert.pipeline import broker_clients
from lifecert.pipeline.credentials import ADMIN


def read_records(bootstrap: str, topic: str, *, timeout: float = 60.0
                 ) -> list[ConsumerRecord]:
    """Every record of ``topic``, in offset order within a partition (see
    :func:`lifecert.pipeline.broker_clients.read_to_end`)."""
    consumer = broker_clients.consumer(bootstrap, component=ADMIN)
    try:
        return list(broker_clients.read_to_end(consumer, topic, timeout=timeout))
    finally:
        consumer.close()


def read_events(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic``, decoded (Avro, lifecert's event codec)."""
    return [codec.decode(r.value) for r in read_records(bootstrap, topic)]
