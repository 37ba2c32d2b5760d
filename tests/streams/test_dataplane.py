"""The worker's batch data plane (``streams.dataplane``): faust's consumer, group and
commits, with the events topic handed over a fetch at a time.

The worker's own tests (``test_worker.py``, ``test_worker_cluster.py``) run every fault
through it; here it is shown on its own: every record reaches the handler once, each
partition in sequence, several to a fetch, and what the handler acknowledged is
committed for the group."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.transport import by_url
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from lifecert.pipeline import broker_clients
from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import EVENTS, layout
from streams import dataplane
from streams.app import DecisionPlane, WorkerSettings, create_app, faust_app

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 3
PER_PARTITION = 400


@pytest.fixture
def filled_topic(stack: Any) -> Iterator[tuple[str, str]]:
    """(bootstrap, topic): a private topic of three partitions, 400 records in each."""
    bootstrap = stack.kafka_bootstrap
    topic = f"t{uuid.uuid4().hex[:10]}.dataplane"
    with acting_as(ADMIN):
        with broker_clients.admin_client(bootstrap) as admin:
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                 **client_security().kafka_python())
        try:
            for n in range(PER_PARTITION):
                for partition in range(PARTITIONS):
                    producer.send(topic, value=b"%d" % n, partition=partition)
            producer.flush(30)
        finally:
            producer.close(timeout=10)
        yield bootstrap, topic
        with broker_clients.admin_client(bootstrap) as admin:
            admin.delete_topics([topic])


@pytest.mark.stack
def test_the_worker_takes_the_events_topic_through_the_data_plane(
    stack: Any, tmp_path: Path
) -> None:
    # The app is built, not started (the stack's credentials; no connection is made).
    with acting_as("worker"):
        app, _ = create_app(WorkerSettings(bootstrap="127.0.0.1:1", app_id="lifecert-worker-t",
                                           data_dir=tmp_path, store="memory"))
    assert isinstance(app.transport, dataplane.Transport)
    assert isinstance(app.consumer, dataplane.BatchConsumer)
    assert isinstance(app.data_plane, DecisionPlane)
    assert app.data_plane.topics == {layout(None)[EVENTS].name}
    # faust finds the transport through its entry point, by the broker URL's scheme
    assert by_url(f"{dataplane.SCHEME}://127.0.0.1:1") is dataplane.Transport
    # an app without a handler (the benchmark's faust floor) keeps faust's own transport
    with acting_as("worker"):
        plain = faust_app("lifecert-floor-t", "127.0.0.1:1", tmp_path, store="memory://")
    assert not isinstance(plain.transport, dataplane.Transport)
    assert plain.data_plane is None


@pytest.mark.stack
def test_every_record_reaches_the_handler_in_sequence_and_is_committed(
    filled_topic: tuple[str, str], tmp_path: Path
) -> None:
    bootstrap, topic = filled_topic
    group = f"lifecert-floor-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "floor.json"
    total = PARTITIONS * PER_PARTITION
    done = subprocess.run(
        [sys.executable, "-m", "streams.floor", "--plane", "batch", "--bootstrap", bootstrap,
         "--topic", topic, "--records", str(total), "--group", group,
         "--data-dir", str(tmp_path / "data"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["records"] == total
    assert figures["out_of_sequence"] == 0
    # handed over a fetch at a time, not record by record
    assert figures["largest_batch"] > 1 and figures["batches"] < total, figures
    # the clean stop committed what the handler acknowledged: the end of every partition
    with acting_as(ADMIN):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                 enable_auto_commit=False, **client_security().kafka_python())
        try:
            committed = {p: consumer.committed(TopicPartition(topic, p))
                         for p in range(PARTITIONS)}
        finally:
            consumer.close()
    assert committed == dict.fromkeys(range(PARTITIONS), PER_PARTITION)
