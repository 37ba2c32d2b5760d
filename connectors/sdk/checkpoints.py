"""Connector checkpoints in a compacted Kafka topic (as Kafka Connect keeps source
offsets): key = the instance name, value = JSON ``{"kind", "position", "committed_at"}``.
The latest record of a key is the checkpoint; compaction keeps the topic small."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from connectors.sdk.base import Position
from lifecert.pipeline import broker_clients, broker_errors


class CheckpointStore:
    def __init__(self, bootstrap: str, topic: str, producer: KafkaProducer) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer = producer

    def load(self, instance: str) -> Position | None:
        """The last committed position of ``instance`` (``None``: never committed).
        Raises :class:`~lifecert.pipeline.broker_errors.KafkaUnavailable`."""
        key = instance.encode("utf-8")
        position: Position | None = None
        consumer = broker_clients.consumer(self.bootstrap)
        try:
            for record in broker_clients.read_to_end(consumer, self.topic):
                if record.key != key:
                    continue
                position = None if record.value is None else json.loads(record.value)["position"]
        finally:
            consumer.close()
        return position

    def commit(self, instance: str, kind: str, position: Position, timeout: float = 30.0) -> None:
        """Write ``position`` and wait for the broker's acknowledgement."""
        value: dict[str, Any] = {
            "kind": kind,
            "position": position,
            "committed_at": datetime.now(UTC).isoformat(),
        }
        try:
            future = self._producer.send(
                self.topic, key=instance.encode("utf-8"),
                value=json.dumps(value, ensure_ascii=False).encode("utf-8"),
            )
            future.get(timeout=timeout)
        except KafkaError as exc:
            raise broker_errors.KafkaUnavailable(
                f"cannot commit the checkpoint of {instance} to {self.topic}: "
                f"{broker_errors.describe_error(exc)}"
            ) from exc
