"""Workers on a three-broker cluster (``lifecert stack up --brokers 3``: KRaft, replication
3, min.insync.replicas 2), through the faults a production cluster meets, in one stream:

1. the broker leading events partition 0 is SIGKILLed while two workers decide: the
   others take its partitions' leadership, and acks=all writes go on with two replicas;
2. then one of the two workers is SIGKILLed: the other takes its partitions once its
   session times out, from their changelog (replicated three times);
3. then a third worker joins: a rebalance while records flow (the joiner is assigned
   partitions; whether records are left for it to decide depends on timing).

Each fault must happen mid-stream (records still undecided). At the end the killed broker
comes back, and live == replay: every instruction, verdict and status exactly as
``lifecert replay`` decides the same log (duplicates by event_id allowed on the topics).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifecert.pipeline import broker_clients
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import EVENTS
from lifecert_dev.stack import StackConfig
from lifecert_dev.stack import broker as stack_broker
from tests.streams.test_worker import (
    SESSION,
    Pipeline,
    Worker,
    assert_same_as_replay,
    campaign,
    committed,
    private_brokers,
    publish,
    wait_until,
)

BROKERS = 3


@pytest.fixture(autouse=True)
def _as_admin() -> Iterator[None]:
    """The test's own set-up and checks log in as the admin; the workers as themselves."""
    with acting_as(ADMIN):
        yield


@pytest.fixture
def cluster(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackConfig]:
    """A throw-away cluster of three brokers of this test's own."""
    with private_brokers(monkeypatch, BROKERS, "cluster", "384m") as cfg:
        yield cfg


def leader_of_partition_0(pipeline: Pipeline) -> int:
    with broker_clients.admin_client(pipeline.bootstrap) as admin:
        (topic,) = admin.describe_topics([pipeline.name(EVENTS)])
    return int(next(p["leader_id"] for p in topic["partitions"] if p["partition_index"] == 0))


def replication_of(pipeline: Pipeline, topic: str) -> int:
    with broker_clients.admin_client(pipeline.bootstrap) as admin:
        (described,) = admin.describe_topics([topic])
    return min(len(p["replica_nodes"]) for p in described["partitions"])


def mid_stream(pipeline: Pipeline, fault: str) -> int:
    done, total = committed(pipeline)
    assert done < total, f"the workers finished before {fault}: make the campaign larger"
    return done


@pytest.mark.stack
@pytest.mark.slow
def test_broker_kill_worker_kill_and_a_join_on_a_three_broker_cluster(
    cluster: StackConfig, tmp_path: Path
) -> None:
    assert cluster.kafka_bootstrap.count(",") == BROKERS - 1
    pipeline = Pipeline(cluster.kafka_bootstrap, tmp_path)
    # topics.toml leaves replication to the cluster: three replicas here
    assert replication_of(pipeline, pipeline.name(EVENTS)) == BROKERS
    lines = publish(pipeline, campaign(tmp_path, 20_000, seed=19))
    options = ("--commit-interval", "1", *SESSION)
    figures: list[str] = []
    with Worker(pipeline, *options, label="a", data_dir=tmp_path / "a") as a, \
            Worker(pipeline, *options, label="b", data_dir=tmp_path / "b") as b:
        wait_until(a, reached=0.15)
        node = leader_of_partition_0(pipeline)
        at = mid_stream(pipeline, "the broker kill")
        stack_broker.stop_node(cluster, node, signal.SIGKILL)
        figures.append(f"broker {node} SIGKILLed at {at} committed")
        wait_until(b, reached=0.4)
        assert leader_of_partition_0(pipeline) != node
        at = mid_stream(pipeline, "the worker kill")
        a.stop(signal.SIGKILL)
        figures.append(f"worker a SIGKILLed at {at}")
        wait_until(b, reached=0.6)
        at = mid_stream(pipeline, "the join")
        with Worker(pipeline, *options, label="c", data_dir=tmp_path / "c") as c:
            figures.append(f"worker c joined at {at}")
            wait_until(b)
            stack_broker.launch_node(cluster, node)
            assert c.stop() == 0, c.log()[-4000:]
        assert b.stop() == 0, b.log()[-4000:]
    # The join rebalanced the group: c was assigned partitions (faust recovers their
    # changelog), and decided their records if b had not already (timing decides which).
    took_over = "campaign restored from the table" in c.log()
    assert took_over or "Highwater for active changelog partitions" in c.log(), \
        c.log()[-4000:]
    figures.append("c decided records of the partitions it took" if took_over else
                   "c was assigned partitions whose records b had decided")
    changelogs = [t for t in _topics(pipeline) if t.startswith(pipeline.app_id + "-")
                  and "changelog" in t]
    assert changelogs and all(replication_of(pipeline, t) == BROKERS for t in changelogs)
    distinct, raw = assert_same_as_replay(pipeline, lines)
    print(f"\n{'; '.join(figures)} of {committed(pipeline)[1]}; {distinct} distinct outputs, "
          f"{raw - distinct} duplicates by event_id")


def _topics(pipeline: Pipeline) -> list[str]:
    with broker_clients.admin_client(pipeline.bootstrap) as admin:
        return list(admin.list_topics())
