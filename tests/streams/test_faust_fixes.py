"""``streams.faust_fixes`` against the real broker: what aiokafka does with the set of
partitions faust hands it, and what :class:`ActiveOnly` makes of it.

The loss it prevents (a restarted worker that never received the rest of some partitions)
is also covered end to end by ``tests/streams/test_worker.py``'s SIGKILL test, where it
showed only under load; here it is shown deterministically on aiokafka itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer
from kafka.admin import NewTopic

from lifecert.pipeline import broker_clients
from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.credentials import ADMIN, acting_as
from streams.faust_fixes import ActiveOnly
from streams.faust_internals import fetched_partitions, fetcher_of

PARTITIONS = 3
PER_PARTITION = 5


@pytest.fixture
def filled_topic(stack: Any) -> Iterator[tuple[str, str]]:
    """(bootstrap, topic): a private topic of three partitions, five records in each. The
    tests read it as the admin: they are about aiokafka, not about the ACLs."""
    bootstrap = stack.kafka_bootstrap
    topic = f"t{uuid.uuid4().hex[:10]}.faust-fixes"
    with acting_as(ADMIN):
        with broker_clients.admin_client(bootstrap) as admin:
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                 **client_security().kafka_python())
        try:
            for partition in range(PARTITIONS):
                for n in range(PER_PARTITION):
                    producer.send(topic, value=b"%d" % n, partition=partition).get(timeout=30)
        finally:
            producer.close(timeout=10)
        yield bootstrap, topic
        with broker_clients.admin_client(bootstrap) as admin:
            admin.delete_topics([topic])


async def _fetched(bootstrap: str, topic: str, partitions: Any) -> dict[int, int]:
    """Records per partition that aiokafka's fetcher hands over for ``partitions`` once
    every partition's records are fetched and waiting (as faust's fetcher calls it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **client_security().aiokafka())
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for _ in range(200):  # until the background fetch has every partition's records
            if set(tps) <= fetched_partitions(consumer):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("aiokafka did not fetch the topic's records within 10 s")
        got = await fetcher_of(consumer).fetched_records(partitions, timeout=0.3)
        return {tp.partition: len(records) for tp, records in got.items()}
    finally:
        await consumer.stop()


@pytest.mark.stack
def test_aiokafka_reads_an_empty_set_as_every_partition(filled_topic: tuple[str, str]) -> None:
    # Why the fix exists: faust's set of active partitions is empty for a moment when a
    # recovery ends, and a fetch waiting then takes every partition's records.
    bootstrap, topic = filled_topic
    assert asyncio.run(_fetched(bootstrap, topic, set())) == {
        p: PER_PARTITION for p in range(PARTITIONS)}


@pytest.mark.stack
def test_active_only_hands_over_no_partition_for_an_empty_set(
    filled_topic: tuple[str, str],
) -> None:
    bootstrap, topic = filled_topic
    assert asyncio.run(_fetched(bootstrap, topic, ActiveOnly(set()))) == {}


@pytest.mark.stack
def test_active_only_hands_over_the_active_partitions_only(
    filled_topic: tuple[str, str],
) -> None:
    bootstrap, topic = filled_topic
    active = ActiveOnly({TopicPartition(topic, 1)})
    assert asyncio.run(_fetched(bootstrap, topic, active)) == {1: PER_PARTITION}


def test_active_only_reads_the_live_set() -> None:
    # faust adds and removes partitions in the same set while a fetch waits.
    live: set[str] = set()
    seen = ActiveOnly(live)
    assert bool(seen) and "a" not in seen
    live.add("a")
    assert "a" in seen
