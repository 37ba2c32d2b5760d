"""Records the projections cannot apply go to the dead-letter topic as ``DeadLetter``
events (stage ``projections``), with the raw key and value, their position and the reason.

The id of a dead letter is derived from its source position, so setting the same record
aside twice (after a crash or a database outage) yields the same ``event_id``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer

from lifecert.events.codec import encode
from lifecert.pipeline.broker_clients import client_security
from projections.records import Rejected

STAGE = "projections"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lifecert/dead-letters")


def dead_letter_event(rejected: Rejected, now: datetime | None = None) -> dict[str, Any]:
    position = f"{STAGE}|{rejected.topic}|{rejected.partition}|{rejected.offset}"
    return {
        "type": "DeadLetter",
        "event_id": str(uuid.uuid5(_ID_NAMESPACE, position)),
        "recorded_at": now or datetime.now(UTC),
        "source_agency": "lifecert",
        "stage": STAGE,
        "source_topic": rejected.topic,
        "source_partition": rejected.partition,
        "source_offset": rejected.offset,
        "key": rejected.key,
        "value": rejected.value,
        "source_position": None,
        "reason": rejected.reason,
    }


class DeadLetterSender:
    """Publishes dead letters and waits for the broker's acks (before the offsets that
    skip them are committed). The producer is made on first use."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: KafkaProducer | None = None

    def send(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id="lifecert-projections-dead-letters",
                **client_security().kafka_python(),
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
            )
        now = datetime.now(UTC)
        futures = [
            self._producer.send(self.topic, key=r.key, value=encode(dead_letter_event(r, now)))
            for r in rejected
        ]
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises the send's error, if any

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None
