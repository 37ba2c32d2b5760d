"""A crash in the middle of a long read: the pension master connector, run as
``lifecert connectors run``, is killed (SIGKILL) while it works through a generated
campaign's enrolments and amount changes; its checkpoint is set back (as if the last
commits were lost) and it is restarted. It re-reads rows it had published: every change
must come out once by event id, a re-read one identical to its first copy, in each
retiree's order.

The kit's own restart test feeds 300 records, which this connector may publish before the
kit gets to kill it; this one makes sure the kill lands mid-run (and fails if it did not).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from connectors.sdk.checkpoints import CheckpointStore
from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from lifecert.events import codec
from lifecert.events.interchange import parse_event
from lifecert.events.personal import is_sealed, reveal
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline import broker_clients
from lifecert.pipeline.topics import CONNECTOR_CHECKPOINTS, EVENTS, TopicLayout, layout
from lifecert_dev.generate import iter_campaign
from lifecert_dev.partners.pension_master import simulator
from lifecert_dev.partners.pension_master.harness import PensionMasterHarness
from lifecert_dev.stack import StackStatus

pytestmark = pytest.mark.stack

BATCH = 100


@pytest.fixture
def topics(stack: StackStatus) -> Iterator[TopicLayout]:
    made = layout(f"pm-crash-{uuid.uuid4().hex[:10]}.")
    with broker_clients.admin_client(stack.kafka_bootstrap) as admin:
        broker_clients.ensure_topics(admin, made)
    yield made
    with broker_clients.admin_client(stack.kafka_bootstrap) as admin:
        admin.delete_topics([spec.name for spec in made.topics.values()])


def read(bootstrap: str, topic: str) -> list[Any]:
    consumer = broker_clients.consumer(bootstrap)
    try:
        return list(broker_clients.read_to_end(consumer, topic))
    finally:
        consumer.close()


def business(event: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, repr(v)) for k, v in event.items()
                        if k not in ("event_id", "source_agency")))


def sql(dsn: str, query: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        conn.close()


def _opened(event: dict[str, Any], keys: Any) -> dict[str, Any]:
    if event["type"] != "RetireeEnrolled":
        return event
    assert is_sealed(event["name"]), "the connector published a name in the clear"
    return {**event, "name": reveal(event, "name", keys)}


def assert_same(records: list[Any], fed: list[dict[str, Any]]) -> None:
    """Each fed change once by event id, unchanged on every re-read, in retiree order."""
    first: dict[str, dict[str, Any]] = {}
    per_retiree: dict[str, list[str]] = defaultdict(list)
    changed_on_reread = 0
    keys = open_keystore()  # what the connector sealed the names with; the nonces differ
    try:
        events = [_opened(codec.decode(r.value), keys)
                  for r in sorted(records, key=lambda r: (r.partition, r.offset))]
    finally:
        keys.close()
    for event in events:
        seen = first.setdefault(event["event_id"], event)
        if seen is event:
            per_retiree[event["retiree_id"]].append(event["event_id"])
        elif business(seen) != business(event):
            changed_on_reread += 1
    assert changed_on_reread == 0, "a re-read outbox row gave a different event"
    assert len(first) == len(fed), f"{len(first)} distinct event ids for {len(fed)} changes"
    want: dict[str, list[Any]] = defaultdict(list)
    for event in fed:
        want[event["retiree_id"]].append(business(parse_event(dict(event))))
    got = {rid: [business(first[i]) for i in ids] for rid, ids in per_retiree.items()}
    assert got == dict(want), "events lost, changed or out of each retiree's order"


def test_a_kill_mid_run_and_a_lost_checkpoint_lose_and_change_nothing(
    stack: StackStatus, topics: TopicLayout, tmp_path: Path
) -> None:
    fed = [e for e in (json.loads(line) for line in iter_campaign(1000, seed=5))
           if e["type"] in simulator.CARRIED]
    harness = PensionMasterHarness(stack.postgres_dsn)
    settings = harness.start(tmp_path / "master")
    procs: list[ConnectorProcess] = []
    producer = None
    try:
        harness.feed(fed)
        config = write_config(
            tmp_path / "connectors.toml", bootstrap=stack.kafka_bootstrap,
            topic_prefix=topics[EVENTS].name.split("lifecert.")[0],
            instances={"master": InstanceSpec("pension-master", settings,
                                              {"batch_size": BATCH, "retry_initial": 0.1,
                                               "retry_max": 0.5})})
        events_topic = topics[EVENTS].name

        def start() -> ConnectorProcess:
            procs.append(ConnectorProcess(config, "master", tmp_path / "connector.log"))
            return procs[-1].start()

        store = CheckpointStore(stack.kafka_bootstrap, topics[CONNECTOR_CHECKPOINTS].name,
                                producer := broker_clients.producer(stack.kafka_bootstrap))
        proc = start()
        proc.wait_metric("lifecert_connector_last_commit_timestamp_seconds", 1, 60)
        proc.kill()
        first_run = len(read(stack.kafka_bootstrap, events_topic))
        assert BATCH <= first_run < len(fed), (
            f"the kill did not land mid-run ({first_run} of {len(fed)} published)")

        # Whether the kill fell between a batch's publication and its checkpoint is luck;
        # a checkpoint lost that way is made certain: back to outbox row 50, which the
        # first run published (its first checkpoint was after row 100 at the earliest).
        [(xid,)] = sql(settings["dsn"], "SELECT xid::text FROM master.outbox WHERE id = 50")
        store.commit("master", "pension-master", {"xid": int(xid), "id": 50})
        proc = start()
        # Outbox ids run 1..len(fed) (one sequential writer): the restart reads the rest.
        proc.wait_metric("lifecert_connector_records_in_total", len(fed) - 50, 60)
        assert proc.stop() == 0, proc.log_tail()
        records = read(stack.kafka_bootstrap, events_topic)
        assert len(records) == first_run + len(fed) - 50
        assert_same(records, fed)
    finally:
        for proc in procs:
            proc.kill()
        if producer is not None:
            producer.close()
        harness.stop()
