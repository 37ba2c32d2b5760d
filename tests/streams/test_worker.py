"""``lifecert worker`` against the real broker: the faust worker runs as a separate process
(``python -m streams.worker``) on a topic set of its own (unique prefix, app id and data
folder), and its outputs are compared with ``lifecert replay`` of the same log.

- without a broker: the per-partition procedure, restarted from its table at random
  points and crashed between send and store, decides as replay does;
- a generated campaign decided live gives replay's instructions and statuses;
- a clean stop and a restart continue from the state table;
- SIGKILL in the middle of a larger stream, then a restart: nothing lost (duplicates by
  event_id allowed on the topics);
- a crash right after a decision's outputs were acknowledged, before its state was
  written: the restarted worker sends the same outputs again;
- a restart of the broker (a private one) mid-stream: nothing lost;
- undecodable, unexpected or misrouted records go to the dead-letter topic; the rest flows.

Inputs are published with ``lifecert publish`` (lifecert.pipeline.publish).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from random import Random
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from lifecert.domain.campaign import Campaign
from lifecert.domain.policy import load_policy
from lifecert.events import codec
from lifecert.events.interchange import parse_line, to_json
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline import broker_clients
from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.publish import publish_file
from lifecert.pipeline.topics import (
    ALERTS,
    DEAD_LETTERS,
    EVENTS,
    PAYMENT_INSTRUCTIONS,
    STATUS,
    TASKS,
    VERDICTS,
    TopicLayout,
    layout,
)
from lifecert.replay import replay_lines
from lifecert_dev.generate import iter_campaign, write_campaign_file
from lifecert_dev.stack import StackConfig
from lifecert_dev.stack import broker as stack_broker
from streams.offsets import OffsetGuard
from streams.partition_state import PartitionCampaign, Step

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy("foshan-2017")
OUTPUT_ROLES = (PAYMENT_INSTRUCTIONS, ALERTS, TASKS)
DECIDE_TIMEOUT = 120.0
FAULT_ENV = "LIFECERT_WORKER_FAULT"
# A killed worker's partitions are reassigned once its session times out: the broker's
# minimum (group.min.session.timeout.ms), to keep the restart tests short. Their workers
# log at info level (assignments, recovery, progress): shown when such a test fails.
SESSION = ("--session-timeout", "6", "--log-level", "info")


# ---------------------------------------------------------------------------- helpers


class Pipeline:
    """One private topic set (unique prefix) with its worker's app id and data folder."""

    def __init__(self, bootstrap: str, tmp: Path) -> None:
        tag = uuid.uuid4().hex[:10]
        self.bootstrap = bootstrap
        self.topics: TopicLayout = layout(f"t{tag}.")
        # the worker's ACLs cover the group "<prefix>lifecert-worker..." (acls.toml)
        self.app_id = f"t{tag}.lifecert-worker"
        self.data_dir = tmp / "worker-data"
        self.tmp = tmp
        with broker_clients.admin_client(bootstrap) as admin:
            broker_clients.ensure_topics(admin, self.topics)

    def name(self, role: str) -> str:
        return self.topics[role].name

    def delete_topics(self) -> None:
        """The layout's topics and the worker's own (changelog, assignor), on a shared
        broker that other tests use too."""
        prefix = self.name(EVENTS).removesuffix("lifecert.events")
        with broker_clients.admin_client(self.bootstrap) as admin:
            mine = [t for t in admin.list_topics()
                    if t.startswith(prefix) or t.startswith(self.app_id + "-")]
            if mine:
                admin.delete_topics(mine)


def publish(pipeline: Pipeline, lines: list[str]) -> list[str]:
    """Publish ``lines`` with ``lifecert publish`` (Avro values keyed by retiree id, a
    ClockTick in every partition where replay decides each moment); returns them. Every
    line has its event id already, so that replay reads what the worker decides."""
    assert all(json.loads(line).get("event_id") for line in lines)
    path = pipeline.tmp / f"published-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    keys = open_keystore()
    try:
        stats = publish_file(path, POLICY, bootstrap=pipeline.bootstrap, layout=pipeline.topics,
                             keys=keys)
    finally:
        keys.close()
    assert stats.events == len(lines) and not stats.dead_letters, stats.describe()
    return lines


def publish_raw(pipeline: Pipeline, records: Iterable[tuple[bytes | None, bytes | None]]
                ) -> list[tuple[int, int]]:
    """Publish raw records to the events topic; their (partition, offset)."""
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all",
                             **client_security().kafka_python())
    try:
        topic = pipeline.name(EVENTS)
        metas = [producer.send(topic, key=k, value=v).get(timeout=30) for k, v in records]
    finally:
        producer.close(timeout=10)
    return [(meta.partition, meta.offset) for meta in metas]


class Worker:
    """``python -m streams.worker`` as a child process, its stderr in a log file."""

    def __init__(
        self, pipeline: Pipeline, *extra: str, label: str = "worker", fault: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        """``data_dir``: the table store's folder (default the pipeline's; a second
        worker of the same group running at the same time needs its own)."""
        self.pipeline = pipeline
        self.log_path = pipeline.tmp / f"{label}.log"
        argv = [
            sys.executable, "-m", "streams.worker",
            "--bootstrap", pipeline.bootstrap,
            "--topic-prefix", pipeline.topics[EVENTS].name.removesuffix("lifecert.events"),
            "--app-id", pipeline.app_id,
            "--data-dir", str(data_dir or pipeline.data_dir),
            *extra,
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("LIFECERT_TOPIC_PREFIX", None)
        env.pop(FAULT_ENV, None)
        if fault is not None:
            env[FAULT_ENV] = fault
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._log.close()


def committed(pipeline: Pipeline) -> tuple[int, int]:
    """(offsets the worker's group committed on the events topic, records in it), asked
    again when kafka-python's metadata request went to a broker a test killed (its client
    raises instead of trying another broker of the cluster)."""
    for attempt in range(20):
        try:
            return _committed(pipeline)
        except KafkaError:
            if attempt == 19:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _committed(pipeline: Pipeline) -> tuple[int, int]:
    consumer = KafkaConsumer(
        bootstrap_servers=pipeline.bootstrap, group_id=pipeline.app_id,
        **client_security().kafka_python(),
        enable_auto_commit=False,
    )
    try:
        topic = pipeline.name(EVENTS)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        ends = consumer.end_offsets(tps)
        done = sum(consumer.committed(tp) or 0 for tp in tps)
        return done, sum(ends.values())
    finally:
        consumer.close()


def wait_until(worker: Worker, reached: float = 1.0, timeout: float = DECIDE_TIMEOUT) -> int:
    """Wait until the worker committed ``reached`` (a fraction) of the events topic: every
    output of a committed record is on its topic by then (sent and acked before the ack
    that lets faust commit). Returns the committed count."""
    deadline = time.monotonic() + timeout
    while True:
        done, total = committed(worker.pipeline)
        if done >= reached * total:
            return done
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"worker committed {done} of {total} records in {timeout:.0f} s:\n"
                        f"{worker.log()[-4000:]}")
        time.sleep(0.3)


def records_on(pipeline: Pipeline, role: str) -> int:
    consumer = broker_clients.consumer(pipeline.bootstrap)
    try:
        return sum(broker_clients.end_offsets(consumer, pipeline.name(role)).values())
    finally:
        consumer.close()


def read_topics(pipeline: Pipeline, roles: Iterable[str]) -> Iterator[ConsumerRecord]:
    """Every record of the topics of ``roles``, up to their current ends."""
    consumer = broker_clients.consumer(pipeline.bootstrap)
    try:
        for role in roles:
            yield from broker_clients.read_to_end(consumer, pipeline.name(role), timeout=60)
    finally:
        consumer.close()


def live_outputs(pipeline: Pipeline) -> tuple[list[dict[str, Any]], int]:
    """Output events in topic order, deduplicated by event_id (first kept), in the
    interchange form; and the number of records before deduplication."""
    seen: set[str] = set()
    out, raw = [], 0
    for record in read_topics(pipeline, OUTPUT_ROLES):
        raw += 1
        event = codec.decode(record.value)
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            out.append(to_json(event))
    return out, raw


def live_verdicts(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The EventRejected of the verdicts topic, once per event_id, in interchange form."""
    seen: dict[str, dict[str, Any]] = {}
    for record in read_topics(pipeline, [VERDICTS]):
        event = codec.decode(record.value)
        assert record.key == event["retiree_id"].encode()
        seen.setdefault(event["event_id"], to_json(event))
    return list(seen.values())


def live_statuses(pipeline: Pipeline) -> dict[str, str]:
    """The latest RetireeStatus of each retiree on the status topic."""
    latest: dict[str, str] = {}
    for record in read_topics(pipeline, [STATUS]):
        event = codec.decode(record.value)
        assert record.key == event["retiree_id"].encode()
        latest[event["retiree_id"]] = event["status"]
    return latest


def assert_same_as_replay(pipeline: Pipeline, lines: list[str]) -> tuple[int, int]:
    """Live outputs == replay's: same multiset, same order per retiree and topic; live verdicts
    == replay's (by id); latest statuses == replay's. Returns (distinct outputs, records)."""
    expected = replay_lines(lines, POLICY.name)
    outputs, raw = live_outputs(pipeline)
    as_text = [json.dumps(o, sort_keys=True, ensure_ascii=False) for o in outputs]
    want = [json.dumps(o, sort_keys=True, ensure_ascii=False) for o in expected.instructions]
    missing, extra = Counter(want) - Counter(as_text), Counter(as_text) - Counter(want)
    assert not missing and not extra, (
        f"missing {sum(missing.values())}: {list(missing)[:3]}\n"
        f"extra {sum(extra.values())}: {list(extra)[:3]}"
    )
    assert per_retiree_and_topic(outputs) == per_retiree_and_topic(expected.instructions)
    verdicts = [json.dumps(v, sort_keys=True, ensure_ascii=False) for v in live_verdicts(pipeline)]
    assert sorted(verdicts) == sorted(
        json.dumps(v, sort_keys=True, ensure_ascii=False) for v in expected.verdicts)
    statuses = live_statuses(pipeline)
    assert statuses == expected.statuses, {
        k: (statuses.get(k), expected.statuses.get(k))
        for k in set(statuses) | set(expected.statuses)
        if statuses.get(k) != expected.statuses.get(k)
    }
    return len(outputs), raw


def per_retiree_and_topic(outputs: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    sequences: dict[tuple[str, str], list[str]] = defaultdict(list)
    for output in outputs:
        topic = layout("").for_type(output["type"]).role
        sequences[output["retiree_id"], topic].append(output["event_id"])
    return dict(sequences)


def campaign(tmp: Path, retirees: int, seed: int) -> list[str]:
    path = tmp / f"campaign-{retirees}-{seed}.jsonl"
    write_campaign_file(path, retirees, seed)
    return path.read_text(encoding="utf-8").splitlines()


def campaign_lines(retirees: int, seed: int) -> list[str]:
    return [line.rstrip("\n") for line in iter_campaign(retirees, seed)]


@pytest.fixture
def pipeline(stack: Any, tmp_path: Path) -> Iterator[Pipeline]:
    made = Pipeline(stack.kafka_bootstrap, tmp_path)
    yield made
    made.delete_topics()


# ------------------------------------------------------------------------------ tests


def test_offset_guard_accepts_the_next_offset_skips_repeats_and_flags_holes() -> None:
    committed = {"p0": 10, "p1": None}
    guard = OffsetGuard(committed.get)
    assert guard.check("p0", 10) == "next"
    guard.done("p0", 10)
    assert guard.check("p0", 11) == "next"
    guard.done("p0", 11)
    assert guard.check("p0", 9) == "seen"  # redelivered after a seek to an older offset
    assert guard.check("p0", 13) == "hole"  # 12 never came: one record is a hole too
    assert guard.check("p1", 7) == "next"  # nothing committed yet: the first sets the pace
    guard.forget(["p0"])
    assert guard.check("p0", 10) == "next"  # after a revocation, from the committed offset


def decide_one(part: PartitionCampaign, kind: str, event: dict[str, Any], cause: str) -> Step:
    return part.tick(event, cause) if kind == "tick" else part.decide(event, cause)


def test_partition_campaigns_restored_at_every_step_decide_as_replay() -> None:
    """No broker: the worker's per-partition procedure over a generated log split as
    Kafka's partitioner splits it, with ticks, the table kept as JSON, a restart from the
    table every few records and, now and then, a crash between send and store (the step's
    writes lost, the record decided again). Same outputs and statuses as replay."""
    random = Random(3)
    lines = campaign_lines(400, seed=16)
    partitions = 6
    logs: dict[int, list[tuple[str, dict[str, Any]]]] = {p: [] for p in range(partitions)}
    pending = list(POLICY.moments)
    for line in lines:
        event = parse_line(line)
        while pending and event["recorded_at"] >= pending[0].at:
            moment = pending.pop(0)
            for p in range(partitions):
                logs[p].append(("tick", {"type": "ClockTick", "event_id": f"t{p}",
                                         "policy": POLICY.name, "at": moment.at}))
        partition = broker_clients.partition_for_key(event["retiree_id"], partitions)
        logs[partition].append(("event", event))
    table: dict[bytes, Any] = {}
    outputs: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    statuses: dict[str, str] = {}
    resent = 0
    for p, log in logs.items():
        part = PartitionCampaign.fresh(POLICY, p)
        for offset, (kind, event) in enumerate(log):
            step = decide_one(part, kind, event, f"{p}@{offset}")
            if step.outputs and random.random() < 0.2:  # crash after send, before store
                part = PartitionCampaign.restore(POLICY, p, list(table.items()))
                again = decide_one(part, kind, event, f"{p}@{offset}")
                assert [o["event_id"] for o in again.outputs] == [
                    o["event_id"] for o in step.outputs]
                resent += 1
                step = again
            for o in step.outputs:
                outputs.setdefault(o["event_id"], to_json(o))
            for v in step.verdicts:
                verdicts.setdefault(v["event_id"], to_json(v))
            for status in step.statuses:
                statuses[status["retiree_id"]] = status["status"]
            for key, value in step.writes:
                table[key] = json.loads(json.dumps(value))
            if random.random() < 0.1:  # a restart
                part = PartitionCampaign.restore(POLICY, p, list(table.items()))
    expected = replay_lines(lines, POLICY.name)
    key = lambda o: json.dumps(o, sort_keys=True, ensure_ascii=False)  # noqa: E731
    assert sorted(map(key, outputs.values())) == sorted(map(key, expected.instructions))
    assert expected.verdicts  # the campaign has rejections to report
    assert sorted(map(key, verdicts.values())) == sorted(map(key, expected.verdicts))
    assert statuses == expected.statuses
    assert resent > 5


@pytest.mark.stack
def test_decides_a_campaign_as_replay_does(pipeline: Pipeline) -> None:
    lines = publish(pipeline, campaign(pipeline.tmp, 200, seed=11))
    with Worker(pipeline, "--store", "memory", "--commit-interval", "0.5") as worker:
        wait_until(worker)
        assert worker.stop() == 0, worker.log()[-4000:]
    distinct, _ = assert_same_as_replay(pipeline, lines)
    assert distinct > 20
    assert not list(read_topics(pipeline, [DEAD_LETTERS]))
    # the deceased's statuses carry who reported the standing death, as the fold keeps it
    # (the report's deaths by register, from PostgreSQL, rest on them)
    fold = Campaign(POLICY)
    for line in lines:
        fold.decide(parse_line(line))
    want = {rid: (s.death_report[0], s.death_report[1]) for rid, s in fold.retirees.items()
            if s.death_report is not None}
    latest = {e["retiree_id"]: e for e in map(codec.decode, (
        r.value for r in read_topics(pipeline, [STATUS])))}
    live = {rid: (e["death_source"], e["death_recorded_at"]) for rid, e in latest.items()
            if e["status"] == "DECEASED"}
    assert live == want and len({source for source, _ in want.values()}) > 1, live
    names = {json.loads(line)["name"] for line in lines if "RetireeEnrolled" in line[:30]}
    log = worker.log()
    assert not [name for name in names if name in log]  # no personal data in the log


@pytest.mark.stack
def test_a_restarted_worker_continues_from_its_table(pipeline: Pipeline) -> None:
    """Half the log, a clean stop, the other half: the second run rebuilds each
    partition's campaign from the table (local RocksDB store, or the changelog)."""
    lines = campaign(pipeline.tmp, 300, seed=12)
    # Split before the deadline so that the second run must place holds on retirees
    # enrolled in the first, in enrollment order, with the pending moments restored.
    split = next(i for i, line in enumerate(lines) if '"2017-06-1' in line[:120])
    published = publish(pipeline, lines[:split])
    with Worker(pipeline, "--commit-interval", "0.5", label="first") as first:
        wait_until(first)
        assert first.stop() == 0, first.log()[-4000:]
    published += publish(pipeline, lines[split:])
    with Worker(pipeline, "--commit-interval", "0.5", label="second") as second:
        wait_until(second)
        assert second.stop() == 0, second.log()[-4000:]
    assert "campaign restored from the table (0 retirees" not in second.log()
    assert "did not stop cleanly" not in second.log()
    assert_same_as_replay(pipeline, published)


@pytest.mark.stack
def test_sigkill_mid_stream_loses_nothing(pipeline: Pipeline) -> None:
    # Large enough that the batched worker (a few thousand records a second) is still
    # mid-stream when it has committed 30%: it is killed inside a batch, most likely.
    lines = publish(pipeline, campaign(pipeline.tmp, 12000, seed=13))
    with Worker(pipeline, "--commit-interval", "1", *SESSION, label="killed") as killed:
        at_kill = wait_until(killed, reached=0.3)
        killed.stop(signal.SIGKILL)
    _, total = committed(pipeline)
    assert at_kill < total, "the worker finished before it could be killed"
    with Worker(pipeline, "--commit-interval", "0.5", *SESSION, label="restarted") as restarted:
        wait_until(restarted)
        assert restarted.stop() == 0, restarted.log()[-4000:]
    assert "did not stop cleanly" in restarted.log()
    distinct, raw = assert_same_as_replay(pipeline, lines)
    print(f"\nkilled at {at_kill}/{total} committed records; {distinct} distinct outputs, "
          f"{raw - distinct} duplicates by event_id")


@pytest.mark.stack
def test_a_second_worker_joining_before_the_first_commit_loses_nothing(
    pipeline: Pipeline,
) -> None:
    """A second worker joins the group while the first is deciding and nothing is
    committed yet. The rebalance clears the records faust had fetched and queued, and
    aiokafka's seek to the committed offset leaves a partition without one where its
    fetcher was: without streams.faust_fixes seeking such partitions to their beginning,
    the queued records were never decided (the partner demo lost 4,708 of 10,000 retirees
    this way). The two workers then share the partitions; nothing is lost."""
    lines = publish(pipeline, campaign(pipeline.tmp, 2000, seed=17))
    slow_commits = ("--commit-interval", "40", *SESSION)
    with Worker(pipeline, *slow_commits, label="first") as first:
        deadline = time.monotonic() + DECIDE_TIMEOUT
        while records_on(pipeline, STATUS) < 100:
            assert first.proc.poll() is None, first.log()[-4000:]
            assert time.monotonic() < deadline, f"nothing decided:\n{first.log()[-4000:]}"
            time.sleep(0.2)
        assert committed(pipeline)[0] == 0, "the first worker committed before the join"
        with Worker(pipeline, *slow_commits, label="second",
                    data_dir=pipeline.tmp / "second-worker-data") as second:
            wait_until(first)
            assert second.stop() == 0, second.log()[-4000:]
        assert first.stop() == 0, first.log()[-4000:]
    # The second worker decided records of the partitions it took over.
    assert "campaign restored from the table" in second.log(), second.log()[-4000:]
    assert_same_as_replay(pipeline, lines)


@pytest.mark.stack
def test_a_crash_between_send_and_store_resends_the_same_outputs(pipeline: Pipeline) -> None:
    """The worker dies right after the broker acknowledged a decision's outputs, before
    the state is written: the restarted worker decides that input again from the old
    state and sends the same outputs, with the same event ids."""
    lines = publish(pipeline, campaign(pipeline.tmp, 300, seed=15))
    with Worker(pipeline, "--commit-interval", "0.5", *SESSION, label="crashing",
                fault="exit-after-send:10") as crashing:
        assert crashing.proc.wait(timeout=DECIDE_TIMEOUT) == 70, crashing.log()[-4000:]
    with Worker(pipeline, "--commit-interval", "0.5", *SESSION, label="restarted") as restarted:
        wait_until(restarted)
        assert restarted.stop() == 0, restarted.log()[-4000:]
    assert "did not stop cleanly" in restarted.log()
    distinct, raw = assert_same_as_replay(pipeline, lines)
    assert raw > distinct, "the decision interrupted by the crash was not sent again"


@contextmanager
def private_brokers(monkeypatch: pytest.MonkeyPatch, brokers: int, label: str, heap: str
                    ) -> Iterator[StackConfig]:
    """Throw-away Kafka broker(s) of a test's own (ports, data folder; the shared jar
    cache): the shared broker must never be stopped, other tests are using it. The data
    folder, ports and node count go into the environment, so that the test's clients and
    the workers it starts log in with these brokers' credentials and find all of them.
    PostgreSQL stays the shared one (the key store): its DSN names the shared passfile."""
    shared = StackConfig.from_env()
    data_dir = Path(tempfile.mkdtemp(prefix=f"lifecert-{label}-", dir="/var/tmp"))
    port = free_port_run(2 * brokers)
    monkeypatch.setenv("LIFECERT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("LIFECERT_KAFKA_PORT", str(port))
    monkeypatch.setenv("LIFECERT_KAFKA_BROKERS", str(brokers))
    monkeypatch.delenv("LIFECERT_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("LIFECERT_POSTGRES_DSN", shared.postgres_dsn)
    cfg = StackConfig.from_env({
        **os.environ, "LIFECERT_CACHE_DIR": str(shared.cache_dir),
        "LIFECERT_KAFKA_CONTROLLER_PORT": str(port + 1), "LIFECERT_KAFKA_HEAP": heap,
    })
    try:
        stack_broker.start(cfg)
        yield cfg
    finally:
        stack_broker.stop(cfg)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def private_broker(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[StackConfig]:
    """One throw-away broker (the restart test stops and starts it)."""
    with private_brokers(monkeypatch, 1, "worker-broker", "512m") as cfg:
        yield cfg


@pytest.mark.stack
def test_a_broker_restart_mid_stream_loses_nothing(
    private_broker: StackConfig, tmp_path: Path
) -> None:
    pipeline = Pipeline(private_broker.kafka_bootstrap, tmp_path)
    lines = publish(pipeline, campaign(tmp_path, 2000, seed=17))
    with Worker(pipeline, "--commit-interval", "1", label="worker") as worker:
        wait_until(worker, reached=0.25)
        stack_broker.stop(private_broker)
        time.sleep(3)
        stack_broker.start(private_broker)
        wait_until(worker)
        assert worker.stop() == 0, worker.log()[-4000:]
    assert_same_as_replay(pipeline, lines)


def free_port_run(count: int) -> int:
    """A port from which ``count`` consecutive ports are free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        held = []
        try:
            for offset in range(count):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


@pytest.mark.stack
def test_bad_records_become_dead_letters_and_the_rest_flows(pipeline: Pipeline) -> None:
    lines = campaign(pipeline.tmp, 100, seed=14)
    good = codec.encode(parse_line(lines[5]))
    unknown = codec.MARKER + bytes.fromhex("0123456789abcdef") + good[codec.HEADER_SIZE:]
    output = codec.encode({
        "type": "HomeVisitDue", "event_id": "x-1", "recorded_at": parse_line(lines[5])[
            "recorded_at"], "source_agency": "test", "retiree_id": "FS1", "due_date":
        POLICY.deadline,
    })
    bad: list[tuple[bytes | None, bytes | None, str]] = [
        (b"FS1", b"not avro at all", "undecodable: BadMarker"),
        (b"FS2", unknown, "undecodable: UnknownFingerprint"),
        (b"FS3", good[:-3], "undecodable: "),
        (None, output, "unexpected event type HomeVisitDue"),
        (b"FS4", good, f"{parse_line(lines[5])['type']} keyed b'FS4', not by its retiree_id"),
    ]
    published = publish(pipeline, lines[:40])
    positions = publish_raw(pipeline, [(key, value) for key, value, _ in bad])
    published += publish(pipeline, lines[40:])
    with Worker(pipeline, "--store", "memory", "--commit-interval", "0.5") as worker:
        wait_until(worker)
        assert worker.stop() == 0, worker.log()[-4000:]
    letters = sorted(
        (codec.decode(r.value) for r in read_topics(pipeline, [DEAD_LETTERS])),
        key=lambda d: (d["source_partition"], d["source_offset"]),
    )
    by_position = {(d["source_partition"], d["source_offset"]): d for d in letters}
    assert len(letters) == len(bad)
    for (key, value, reason), position in zip(bad, positions, strict=True):
        letter = by_position[position]
        assert letter["stage"] == "worker"
        assert letter["source_topic"] == pipeline.name(EVENTS)
        assert (letter["key"], letter["value"]) == (key, value)
        assert letter["reason"].startswith(reason), letter["reason"]
    assert_same_as_replay(pipeline, published)
