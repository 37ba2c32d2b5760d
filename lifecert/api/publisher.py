"""Publishing accepted events with the project's idempotent producer (acks=all): a call
is answered only once the broker acknowledged every record it accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kafka.errors import KafkaError

from lifecert.events import codec
from lifecert.events.record import EventLike
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.topics import TopicLayout


@dataclass(frozen=True)
class Written:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class NotWritten:
    reason: str


class Publisher:
    def __init__(self, bootstrap: str, topics: TopicLayout, *, timeout: float = 30.0) -> None:
        self.topics = topics
        self.timeout = timeout
        # A partner waits for the answer: send at once rather than filling batches.
        self._producer = broker_clients.producer(bootstrap, linger_ms=1)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="api-kafka")

    async def publish(self, events: Sequence[EventLike]) -> list[Written | NotWritten]:
        """Encode and send ``events`` (keyed by retiree id, else by agency: a security
        alert concerns no retiree; to the topic of their type);
        one result per event, in order, once the broker answered for each."""
        if not events:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._publish, list(events))

    def _publish(self, events: list[EventLike]) -> list[Written | NotWritten]:
        futures: list[Any] = []
        for event in events:
            try:
                futures.append(self._producer.send(
                    self.topics.for_type(event["type"]).name,
                    key=(event.get("retiree_id") or event["agency"]).encode("utf-8"),
                    value=codec.encode(event),
                ))
            except (KafkaError, codec.CodecError) as exc:
                futures.append(NotWritten(broker_errors.describe_error(exc)))
        results: list[Written | NotWritten] = []
        for future in futures:
            if isinstance(future, NotWritten):
                results.append(future)
                continue
            try:
                meta = future.get(timeout=self.timeout)
            except KafkaError as exc:
                results.append(NotWritten(broker_errors.describe_error(exc)))
            else:
                results.append(Written(meta.topic, meta.partition, meta.offset))
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._producer.close(timeout=10)
