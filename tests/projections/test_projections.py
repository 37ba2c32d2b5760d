"""The PostgreSQL projections against the real local stack (Kafka broker + PostgreSQL).

A small generated campaign is decided by the production fold, as the worker would: each
output goes to its topic and, after each decision, a RetireeStatus for every retiree it
touched goes to the status topic. The projections must then export exactly what
`lifecert replay` writes for the same log, whatever happens on the way: duplicate
deliveries, a killed projection, a database that drops its connections, garbage records.

Every test uses its own topic prefix (or the module's read-only one) and its own
database, created here and dropped at the end of the module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from fastavro import schemaless_writer
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.structs import OffsetAndMetadata

from lifecert.cli import COMMAND_COMPONENTS
from lifecert.commands import projections as projections_command
from lifecert.commands import wait_idle as wait_idle_command
from lifecert.databases import create_database, drop_database
from lifecert.dbroles import dsn_as
from lifecert.domain.campaign import Campaign
from lifecert.domain.policy import load_policy
from lifecert.events.codec import decode, default_store, encode, to_datum
from lifecert.events.interchange import parse_line
from lifecert.events.personal import ERASED, reveal, seal_personal
from lifecert.keystore.memory import MemoryKeyStore
from lifecert.pipeline import acls
from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS, STATUS, TopicLayout, layout
from lifecert.replay import replay_file
from lifecert.summary import CampaignCounters, InstructionTotals
from lifecert_dev.generate import CampaignProfile, write_campaign_file
from lifecert_dev.stack import StackStatus
from projections.lag import LagProbe, wait_idle
from projections.migrate import applied_versions, available, migrate
from projections.queries import campaign_counters, contact, corrections, export, retiree
from projections.writer import ProjectionWriter, WriterOptions, WriterStats, run_until_idle
from tests.helpers import enroll

POLICY = "foshan-2017"
RETIREES = 400
SEED = 7
# Rules 11-14 made common, so that the read models see every correction.
CORRECTIONS = CampaignProfile(revocation_rate=0.08, clash_rate=0.05, wrong_death_rate=0.06)


# --------------------------------------------------------------------------- helpers


@dataclass
class Published:
    """What a test published: records per topic with their positions."""

    topics: TopicLayout
    # (topic, partition, offset) -> event, for the topics the projections read
    positions: dict[tuple[str, int, int], dict[str, Any]] = field(default_factory=dict)
    # and the ends of the input log's partitions (read for the contact read model)
    input_ends: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """How many records the projections read: outputs, statuses and inputs."""
        return len(self.positions) + sum(self.input_ends.values())

    def ends(self) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = dict(self.input_ends)
        for topic, partition, offset in self.positions:
            ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
        return ends


@dataclass
class World:
    """The campaign, what replay makes of it, and the records a worker would publish."""

    events_file: Path
    replay_dir: Path
    inputs: list[dict[str, Any]]
    records: list[tuple[str, dict[str, Any]]]  # (topic role, event), in decision order
    output_ids: set[str]
    counters: CampaignCounters  # the summary's figures, counted from replay's states


def simulate_worker(lines: list[str]) -> tuple[list[dict[str, Any]], list[tuple[str, dict]]]:
    campaign = Campaign(load_policy(POLICY))
    topics = layout("")
    inputs: list[dict[str, Any]] = []
    records: list[tuple[str, dict[str, Any]]] = []
    for line in lines:
        event = parse_line(line)
        inputs.append(dict(event))
        outputs, _ = campaign.decide(event)
        touched = dict.fromkeys([*(o["retiree_id"] for o in outputs), event["retiree_id"]])
        for output in outputs:
            records.append((topics.for_type(output["type"]).role, output))
        for retiree_id in touched:
            state = campaign.retirees.get(retiree_id)
            if state is None:
                continue
            records.append((STATUS, {
                "type": "RetireeStatus",
                "event_id": f"status-{len(records)}",
                "recorded_at": event["recorded_at"],
                "source_agency": "lifecert",
                "retiree_id": retiree_id,
                "policy": POLICY,
                "status": state.status(),
                "district": state.district,
                "residence": state.residence,
                "completed_by": state.completed_by,
                "completed_at": state.completed_at,
                "revocations": state.revocations,
                "retractions": state.retractions,
                "death_source": state.death_report and state.death_report[0],
                "death_recorded_at": state.death_report and state.death_report[1],
            }))
    return inputs, records


def create_topics(admin: KafkaAdminClient, topics: TopicLayout) -> None:
    admin.create_topics(
        {
            spec.name: {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication,
                "configs": spec.config,
            }
            for spec in topics.topics.values()
        },
        wait_for_metadata=True,
    )
    acls.apply(admin, topics)  # as `lifecert topics create` does


def publish(
    bootstrap: str, topics: TopicLayout, records: list[tuple[str, dict[str, Any]]],
    published: Published | None = None,
) -> Published:
    published = published or Published(topics)
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                             **client_security(ADMIN).kafka_python())
    try:
        futures = []
        for role, event in records:
            key = event["retiree_id"].encode()
            futures.append((role, event, producer.send(topics[role].name, key=key,
                                                       value=encode(event))))
        producer.flush()
        for role, event, future in futures:
            meta = future.get(timeout=30)
            if role != EVENTS:
                published.positions[(meta.topic, meta.partition, meta.offset)] = event
            else:
                where = (meta.topic, meta.partition)
                published.input_ends[where] = max(published.input_ends.get(where, 0),
                                                  meta.offset + 1)
    finally:
        producer.close()
    return published


def bad_month_hold() -> bytes:
    """A PaymentHoldPlaced for month 2017-13: well-formed Avro (``encode`` would refuse
    it, so written with fastavro directly), but no month."""
    registered = default_store().by_type("PaymentHoldPlaced")
    event = {
        "type": "PaymentHoldPlaced", "event_id": "bad-month", "source_agency": "lifecert",
        "recorded_at": dt.datetime(2017, 6, 20, 16, tzinfo=dt.UTC), "retiree_id": "R5",
        "effective_month": "2017-13", "reason": "NOT_CERTIFIED",
    }
    body = io.BytesIO()
    schemaless_writer(body, registered.parsed, to_datum(event))
    return registered.header + body.getvalue()


def sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text(encoding="utf-8").splitlines())


def assert_same_as_replay(export_dir: Path, replay_dir: Path) -> None:
    ours = sorted_lines(export_dir / "instructions.jsonl")
    theirs = sorted_lines(replay_dir / "instructions.jsonl")
    assert len(ours) == len(theirs)
    assert ours == theirs
    ours_csv = (export_dir / "status.csv").read_text(encoding="utf-8").splitlines()
    theirs_csv = (replay_dir / "status.csv").read_text(encoding="utf-8").splitlines()
    assert ours_csv[0] == theirs_csv[0] == "retiree_id,status"
    assert ours_csv[1:] == sorted(ours_csv[1:])  # ordered by retiree id
    assert ours_csv[1:] == sorted(theirs_csv[1:])


def scalar(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return None if row is None else row[0]
    finally:
        conn.close()


def stored_offsets(dsn: str) -> dict[tuple[str, int], int]:
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT to_regclass('projection_offsets') IS NOT NULL")
            if not cur.fetchone()[0]:
                return {}
            cur.execute('SELECT topic, "partition", next_offset FROM projection_offsets')
            return {(t, p): o for t, p, o in cur.fetchall()}
    finally:
        conn.close()


def assert_rows_match_offsets(dsn: str, published: Published) -> None:
    """The ledger holds exactly the output records before the stored offsets: a batch was
    committed with its offsets, or not at all."""
    offsets = stored_offsets(dsn)
    status_topic = published.topics[STATUS].name
    expected = {
        event["event_id"]
        for (topic, partition, offset), event in published.positions.items()
        if topic != status_topic and offset < offsets.get((topic, partition), 0)
    }
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT event_id FROM instruction_ledger")
            got = [event_id for (event_id,) in cur.fetchall()]
    finally:
        conn.close()
    assert len(got) == len(set(got))
    assert set(got) == expected


def assert_at_end(dsn: str, published: Published) -> None:
    """Stored offsets at the end of every partition (0 for the empty ones)."""
    offsets = stored_offsets(dsn)
    ends = published.ends()
    assert {tp: offsets.get(tp) for tp in ends} == ends
    assert all(offset == 0 for tp, offset in offsets.items() if tp not in ends)


def cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifecert")
    subparsers = parser.add_subparsers(dest="command", required=True)
    projections_command.register(subparsers)
    wait_idle_command.register(subparsers)
    return parser


def cli(*argv: str) -> int:
    args = cli_parser().parse_args(list(argv))
    with acting_as(COMMAND_COMPONENTS[args.command]):  # as `lifecert <command>` runs it
        return int(args.func(args))


# `lifecert` itself once the commands are registered in lifecert/cli.py; until then a
# parser with just these two.
_CLI_SCRIPT = """
import argparse, sys
from lifecert.commands import projections, wait_idle
parser = argparse.ArgumentParser(prog="lifecert")
subparsers = parser.add_subparsers(required=True)
projections.register(subparsers)
wait_idle.register(subparsers)
args = parser.parse_args()
sys.exit(args.func(args))
"""


def cli_process(*argv: str) -> subprocess.Popen[str]:
    from lifecert import cli as lifecert_cli

    if "lifecert.commands.projections" in lifecert_cli.COMMAND_MODULES:
        command = [sys.executable, "-m", "lifecert.cli"]
    else:
        command = [sys.executable, "-c", _CLI_SCRIPT]
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen(
        [*command, *argv], cwd=root, env=dict(os.environ), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


FAST = {"batch_seconds": 0.05, "poll_ms": 100, "backoff_initial": 0.05, "backoff_max": 0.5}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bootstrap(stack: StackStatus) -> str:
    return stack.kafka_bootstrap


@pytest.fixture(scope="module")
def kafka_admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-projections",
                             **client_security(ADMIN).kafka_python())
    yield admin
    admin.close()


@pytest.fixture(scope="module")
def new_topics(kafka_admin: KafkaAdminClient) -> Iterator[Callable[[], TopicLayout]]:
    made: list[TopicLayout] = []

    def make() -> TopicLayout:
        topics = layout(f"t{uuid.uuid4().hex[:10]}.")
        create_topics(kafka_admin, topics)
        made.append(topics)
        return topics

    yield make
    names = [spec.name for topics in made for spec in topics.topics.values()]
    if names:
        kafka_admin.delete_topics(names, raise_errors=False)


@pytest.fixture(scope="module")
def new_database(stack: StackStatus) -> Iterator[Callable[[], str]]:
    made: list[str] = []

    def make() -> str:
        name = f"lifecert_test_{uuid.uuid4().hex[:12]}"
        made.append(name)
        return create_database(stack.postgres_dsn, name)

    yield make
    for name in made:
        drop_database(stack.postgres_dsn, name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("campaign")
    events_file = folder / "events.jsonl"
    write_campaign_file(events_file, RETIREES, seed=SEED, profile=CORRECTIONS)
    replay_dir = folder / "replay"
    totals = InstructionTotals()
    campaign, _ = replay_file(events_file, load_policy(POLICY), replay_dir,
                              on_instruction=totals)
    counters = CampaignCounters.from_states(POLICY, campaign.retirees.values(), totals)
    lines = events_file.read_text(encoding="utf-8").splitlines()
    inputs, records = simulate_worker(lines)
    output_ids = {e["event_id"] for role, e in records if role != STATUS}
    return World(events_file, replay_dir, inputs, records, output_ids, counters)


@pytest.fixture(scope="module")
def published(world: World, bootstrap: str, new_topics: Callable[[], TopicLayout]) -> Published:
    """The module's read-only topics: the inputs on the events topic, and every output and
    status record once."""
    topics = new_topics()
    inputs = publish(bootstrap, topics, [(EVENTS, e) for e in world.inputs])
    return publish(bootstrap, topics, world.records, inputs)


@dataclass
class Projected:
    dsn: str
    export_dir: Path
    stats: WriterStats


@pytest.fixture(scope="module")
def projected(
    published: Published, bootstrap: str, new_database: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Projected:
    dsn = new_database()
    with acting_as("projections"):
        stats = run_until_idle(dsn, bootstrap, published.topics, batch_records=500, **FAST)
    export_dir = tmp_path_factory.mktemp("export")
    conn = psycopg2.connect(dsn)
    try:
        export(conn, export_dir)
    finally:
        conn.close()
    return Projected(dsn, export_dir, stats)


# ------------------------------------------------------------------------------ tests


def test_the_campaign_has_every_kind_of_record(world: World) -> None:
    kinds = {event["type"] for _, event in world.records}
    assert kinds >= {
        "PaymentHoldPlaced", "PaymentHoldReleased", "PaymentTerminated",
        "OverpaymentDetected", "FraudSuspected", "HomeVisitDue", "RetireeStatus",
        "PaymentReinstated",
    }


@pytest.mark.stack
def test_migrate_is_idempotent(new_database: Callable[[], str]) -> None:
    dsn = new_database()
    assert cli("projections", "migrate", "--dsn", dsn) == 0
    assert cli("projections", "migrate", "--dsn", dsn) == 0
    conn = psycopg2.connect(dsn)
    try:
        assert migrate(conn) == []
        versions = [m.version for m in available()]
        assert versions[:3] == ["0001", "0002", "0003"]
        assert {"0004", "0005", "0006", "0007"} <= set(versions)
        assert applied_versions(conn) == versions
    finally:
        conn.close()
    assert scalar(dsn, "SELECT count(*) FROM schema_migrations") == len(versions)


@pytest.mark.stack
def test_export_equals_replay(projected: Projected, published: Published, world: World) -> None:
    assert_same_as_replay(projected.export_dir, world.replay_dir)
    lines = (projected.export_dir / "instructions.jsonl").read_text("utf-8").splitlines()
    keys = [
        (dt.datetime.fromisoformat(i["recorded_at"]), i["retiree_id"], i["type"], i["event_id"])
        for i in map(json.loads, lines)
    ]
    assert keys == sorted(keys)
    assert projected.stats.dead_letters == 0
    assert projected.stats.new_instructions == len(world.output_ids)
    assert_at_end(projected.dsn, published)
    assert_rows_match_offsets(projected.dsn, published)


_GROUPED = """
SELECT policy, district, residence, status, completed_by,
       (completed_at AT TIME ZONE 'Asia/Shanghai')::date, count(*)
FROM retiree_status GROUP BY 1, 2, 3, 4, 5, 6"""


def assert_counts_match_rows(dsn: str) -> int:
    """The counters the triggers keep (campaign_counts, through the campaign_counters
    view) are exactly a GROUP BY over retiree_status; returns the number of groups."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_GROUPED)
            grouped = sorted(cur.fetchall(), key=repr)
            cur.execute("SELECT policy, district, residence, status, channel, completed_day, "
                        "retirees FROM campaign_counters")
            kept = sorted(cur.fetchall(), key=repr)
            cur.execute("SELECT count(*) FROM campaign_counts WHERE retirees < 0")
            negative = cur.fetchone()
    finally:
        conn.close()
    assert kept == grouped
    assert negative == (0,)
    return len(kept)


@pytest.mark.stack
def test_read_models_agree_with_replay(projected: Projected, world: World) -> None:
    replay_status = dict(
        line.split(",", 1)
        for line in (world.replay_dir / "status.csv").read_text().splitlines()[1:]
    )
    suspended = {r for r, s in replay_status.items() if s == "SUSPENDED"}
    conn = psycopg2.connect(projected.dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT retiree_id FROM open_holds")
            assert {r for (r,) in cur.fetchall()} == suspended
        counters = campaign_counters(conn, POLICY)
        view = retiree(conn, sorted(suspended)[0])
        assert retiree(conn, "nobody") is None
    finally:
        conn.close()
    assert counters.retirees == len(replay_status)
    assert dict(counters.statuses) == {
        s: list(replay_status.values()).count(s) for s in set(replay_status.values())
    }
    assert sum(counters.channels.values()) == sum(counters.completed_by_day.values())
    instruction_kinds = [
        e["type"] for role, e in world.records if role != STATUS
    ]
    assert dict(counters.instructions.counts) == {
        k: instruction_kinds.count(k) for k in set(instruction_kinds)
    }
    # The summary's figures, from PostgreSQL and from replay's states.
    assert counters == world.counters
    # kept by the projections' transactions: the same groups as counting every row
    assert assert_counts_match_rows(projected.dsn) > 10
    # The corrections view: per retiree, what the ledger and the statuses say.
    conn = psycopg2.connect(projected.dsn)
    try:
        rows = corrections(conn)
    finally:
        conn.close()
    states = world_states(world)
    for row in rows:
        assert row.revocations == (states[row.retiree_id].revocations if row.policy else 0)
    assert sum(r.revocations for r in rows) == counters.revocations
    assert sum(r.retractions for r in rows) == counters.retractions
    assert sum(r.reinstated_fen for r in rows) == counters.instructions.reinstated_fen
    assert sum(r.estate_fen for r in rows) == counters.instructions.estate_fen
    assert sum(r.cancelled_fen for r in rows) == counters.instructions.cancelled_fen
    assert sum(r.reinstatements for r in rows) == \
        counters.instructions.counts["PaymentReinstated"]
    assert view is not None
    assert [c.status for c in view.cycles] == ["SUSPENDED"]
    assert len(view.open_holds) == 1
    assert view.instructions[0]["type"] in {"PaymentHoldPlaced", "HomeVisitDue"}


@pytest.mark.stack
def test_rebuild_gives_the_same_export(projected: Projected, published: Published,
                                       bootstrap: str, tmp_path: Path) -> None:
    prefix = published.topics[STATUS].name.split("lifecert.")[0]
    common = ["--dsn", projected.dsn]
    # as the projection writer's own role, as `lifecert bench pipeline` runs it
    rebuild = ["--dsn", dsn_as(projected.dsn, "projections")]
    assert cli("projections", "rebuild", *rebuild, "--bootstrap", bootstrap,
               "--topic-prefix", prefix, "--batch-records", "300", "--quiet") == 0
    assert cli("projections", "export", *common, "--out", str(tmp_path)) == 0
    for name in ("instructions.jsonl", "status.csv"):
        assert (tmp_path / name).read_bytes() == (projected.export_dir / name).read_bytes()
    assert assert_counts_match_rows(projected.dsn) > 10  # reset, then kept again


@pytest.mark.stack
def test_duplicate_deliveries_change_nothing(
    world: World, bootstrap: str, new_topics: Callable[[], TopicLayout],
    new_database: Callable[[], str], tmp_path: Path,
) -> None:
    topics = new_topics()
    dsn = new_database()
    twice = publish(bootstrap, topics, world.records)
    with acting_as("projections"):
        stats = run_until_idle(dsn, bootstrap, topics, batch_records=5000, **FAST)
    assert stats.new_instructions == len(world.output_ids)
    # Every record again, in the same order (a producer that re-sent everything), then
    # the projection once more: the duplicates must add nothing.
    publish(bootstrap, topics, world.records, twice)
    with acting_as("projections"):
        stats = run_until_idle(dsn, bootstrap, topics, batch_records=5000, **FAST)
    assert stats.records == len(world.records)
    assert stats.new_instructions == 0
    export_dir = tmp_path / "export"
    conn = psycopg2.connect(dsn)
    try:
        export(conn, export_dir)
    finally:
        conn.close()
    assert_same_as_replay(export_dir, world.replay_dir)
    assert scalar(dsn, "SELECT count(*) FROM instruction_ledger") == len(world.output_ids)


@pytest.mark.stack
def test_killed_then_restarted_loses_and_doubles_nothing(
    published: Published, world: World, bootstrap: str, new_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    dsn = new_database()
    prefix = published.topics[STATUS].name.split("lifecert.")[0]
    total = published.records
    argv = ["projections", "run", "--dsn", dsn, "--bootstrap", bootstrap,
            "--topic-prefix", prefix, "--batch-records", "7", "--batch-seconds", "0.01"]

    def applied() -> int:
        return sum(stored_offsets(dsn).values())

    first = cli_process(*argv)
    try:
        wait_for(lambda: applied() >= total // 4, 30, "a quarter of the records")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    partial = applied()
    assert partial < total, "the projection finished before it could be killed"
    assert_rows_match_offsets(dsn, published)

    second = cli_process(*argv)
    try:
        ends = published.ends()
        wait_for(lambda: all(stored_offsets(dsn).get(tp, 0) >= end for tp, end in ends.items()),
                 60, "the restarted projection to catch up")
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=15)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, err
    # It started from the stored offsets: it read exactly the records not yet applied.
    assert f" {total - partial:,} records in" in err, err
    assert_rows_match_offsets(dsn, published)
    export_dir = tmp_path / "export"
    assert cli("projections", "export", "--dsn", dsn, "--out", str(export_dir)) == 0
    assert_same_as_replay(export_dir, world.replay_dir)


@pytest.mark.stack
def test_database_outage_is_survived(
    published: Published, world: World, bootstrap: str, new_database: Callable[[], str],
    stack: StackStatus, tmp_path: Path,
) -> None:
    dsn = new_database()
    dbname = psycopg2.extensions.parse_dsn(dsn)["dbname"]
    admin = psycopg2.connect(stack.postgres_dsn)
    admin.autocommit = True

    def terminate() -> int:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
            return int(cur.fetchone()[0])

    batches = 0
    killed = 0

    def on_batch(_: int) -> None:  # between two transactions of the writer
        nonlocal batches, killed
        batches += 1
        if batches in (3, 10, 11, 25):
            killed += terminate()

    writer = ProjectionWriter(
        dsn, bootstrap, published.topics,
        WriterOptions(until_idle=True, batch_records=15, **FAST), on_batch=on_batch,
    )
    done = threading.Event()
    random_kills = 0

    def killer() -> None:  # and at arbitrary moments, likely inside a transaction
        # At most once per batch the writer got through: a kill every 0.13 s whatever the
        # writer managed starved it on a loaded machine (844 s, then 2,224 s, reconnecting
        # and never committing); the outage is the same, and the writer can still finish.
        nonlocal random_kills
        seen = -1
        while not done.wait(0.13):
            if batches != seen:
                seen = batches
                random_kills += terminate()

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        with acting_as("projections"):
            stats = writer.run()
    finally:
        done.set()
        thread.join()
        admin.close()
    assert killed >= 3
    assert stats.reconnects >= 3
    assert_rows_match_offsets(dsn, published)
    assert_at_end(dsn, published)
    export_dir = tmp_path / "export"
    conn = psycopg2.connect(dsn)
    try:
        export(conn, export_dir)
    finally:
        conn.close()
    assert_same_as_replay(export_dir, world.replay_dir)


@pytest.mark.stack
def test_garbage_goes_to_dead_letters(
    world: World, bootstrap: str, new_topics: Callable[[], TopicLayout],
    new_database: Callable[[], str],
) -> None:
    topics = new_topics()
    dsn = new_database()
    good = world.records[:60]
    payments = topics["payment_instructions"].name
    status = topics[STATUS].name
    enrolled = encode(world.inputs[0])
    truncated = encode(good[0][1])[:14]
    bad = [
        (payments, b"R1", b"not avro at all"),
        (status, b"R2", truncated),
        (topics["alerts"].name, b"R3", enrolled),
        (status, b"R4", None),
        (payments, b"R5", bad_month_hold()),
    ]
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                             **client_security(ADMIN).kafka_python())
    try:
        positions = {}
        for topic, key, value in bad:
            meta = producer.send(topic, key=key, value=value).get(timeout=30)
            positions[key] = (meta.topic, meta.partition, meta.offset, value)
    finally:
        producer.close()
    published = publish(bootstrap, topics, good)

    with acting_as("projections"):
        stats = run_until_idle(dsn, bootstrap, topics, **FAST)
    assert stats.dead_letters == len(bad)
    assert_rows_match_offsets(dsn, published)
    ends = published.ends()
    for topic, partition, offset, _ in positions.values():
        ends[(topic, partition)] = max(ends.get((topic, partition), 0), offset + 1)
    offsets = stored_offsets(dsn)
    assert all(offsets[tp] >= end for tp, end in ends.items())

    consumer = KafkaConsumer(
        topics[DEAD_LETTERS].name, bootstrap_servers=bootstrap, group_id=None,
        **client_security(ADMIN).kafka_python(),
        auto_offset_reset="earliest",
    )
    letters: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 20
        while len(letters) < len(bad) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                letters.extend(decode(record.value) for record in records)
        letters.extend(  # and nothing more
            decode(r.value) for rs in consumer.poll(timeout_ms=500).values() for r in rs
        )
    finally:
        consumer.close()
    by_key = {letter["key"]: letter for letter in letters}
    assert len(letters) == len(bad)
    for key, (topic, partition, offset, value) in positions.items():
        letter = by_key[key]
        assert letter["stage"] == "projections"
        assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) \
            == (topic, partition, offset)
        assert letter["value"] == value
    assert "marker" in by_key[b"R1"]["reason"]
    assert "truncated" in by_key[b"R2"]["reason"].lower()
    assert "RetireeEnrolled does not belong" in by_key[b"R3"]["reason"]
    assert "no value" in by_key[b"R4"]["reason"]
    assert "'effective_month'" in by_key[b"R5"]["reason"]


@pytest.mark.stack
def test_wait_idle(
    projected: Projected, published: Published, bootstrap: str,
    new_database: Callable[[], str],
) -> None:
    topics = published.topics
    # a group the projections may describe: "<prefix>lifecert-worker..." (acls.toml)
    group = f"{topics.prefix}lifecert-worker-{uuid.uuid4().hex[:8]}"
    # No worker has read the events: not idle, and the lag names the events partitions.
    with acting_as("projections"):
        # (3 s: time for a measurement to follow one that failed on a busy machine; it
        # stays not idle to the end, as nothing reads the events)
        result = wait_idle(bootstrap, projected.dsn, topics, group, timeout=3, interval=0.2)
    assert not result.idle
    assert {lag.reader for lag in result.lags} == {"worker"}, result
    assert {lag.topic for lag in result.lags} == {topics[EVENTS].name}

    # The "worker" commits the end of every events partition.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             **client_security("worker").kafka_python(),
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(topics[EVENTS].name, p)
               for p in consumer.partitions_for_topic(topics[EVENTS].name)]
        ends = consumer.end_offsets(tps)
        consumer.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in tps})
    finally:
        consumer.close(autocommit=False)
    with acting_as("projections"):
        result = wait_idle(bootstrap, projected.dsn, topics, group, timeout=10, interval=0.2)
    assert result.idle, result
    prefix = topics[STATUS].name.split("lifecert.")[0]
    common = ["--bootstrap", bootstrap, "--topic-prefix", prefix, "--worker-group", group]
    assert cli("wait-idle", "--timeout", "5", "--dsn", projected.dsn, *common) == 0

    # A database no projection has written to: the projections are behind.
    empty = new_database()
    with acting_as("projections"):
        probe = LagProbe(bootstrap, topics, group)
    conn = psycopg2.connect(empty)
    try:
        behind = [lag for lag in probe.projections(conn) if lag.behind]
    finally:
        conn.close()
        probe.close()
    assert {lag.topic for lag in behind} == {t for t, _ in published.ends()}
    process = cli_process("wait-idle", "--timeout", "1", "--interval", "0.2",
                          "--dsn", empty, *common)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "not idle" in err
    assert f"projections  {topics[STATUS].name}[" in err


def world_states(world: World) -> dict[str, Any]:
    """Replay's final states of the campaign's retirees."""
    campaign = Campaign(load_policy(POLICY))
    for line in world.events_file.read_text(encoding="utf-8").splitlines():
        campaign.decide(parse_line(line))
    return dict(campaign.retirees)


# ------------------------------------------------------------------ the connectors panel


@pytest.mark.stack
def test_heartbeats_and_dead_letters_reach_the_dashboard(
    bootstrap: str, new_topics: Callable[[], TopicLayout], new_database: Callable[[], str],
) -> None:
    """Connector heartbeats (connector_status) and dead letters (the dead-letter topic)
    through the broker into connector_health and dead_letter_index, and the dashboard's
    connectors panel as the reader sees it: the latest lag, stale flagged, dead letters
    counted once each, none of their content kept."""
    from connectors.sdk.heartbeat import heartbeat_value
    from lifecert.pipeline.topics import CONNECTOR_STATUS
    from lifecert.web import dashboard
    from projections.health import STALE_AFTER

    topics = new_topics()
    now = dt.datetime.now(dt.UTC)
    status = {"type": "RetireeStatus", "event_id": "s1", "recorded_at": now,
              "source_agency": "lifecert", "retiree_id": "R1", "policy": POLICY,
              "status": "NOT_CERTIFIED", "district": "NANHAI", "residence": "FOSHAN",
              "completed_by": None, "completed_at": None, "revocations": 0, "retractions": 0,
              "death_source": None, "death_recorded_at": None}
    publish(bootstrap, topics, [(STATUS, status)])

    def letter(event_id: str, stage: str) -> bytes:
        return encode({"type": "DeadLetter", "event_id": event_id, "recorded_at": now,
                       "source_agency": None, "stage": stage, "source_topic": "t",
                       "source_partition": 0, "source_offset": 1, "key": b"R1",
                       "value": b"13800138000", "source_position": None,
                       "reason": "R1 phone 13800138000 refused"})

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             **client_security(ADMIN).kafka_python())
    try:
        beats, dead = topics[CONNECTOR_STATUS].name, topics[DEAD_LETTERS].name
        producer.send(beats, key=b"master", value=heartbeat_value("pension-master", 40, now))
        producer.send(beats, key=b"master", value=heartbeat_value("pension-master", 0, now))
        old = now - STALE_AFTER - dt.timedelta(seconds=5)
        producer.send(beats, key=b"ledger", value=heartbeat_value("payment-ledger", 7, old))
        for event_id, stage in (("d1", "connector:master"), ("d1", "connector:master"),
                                ("d2", "connector:master"), ("d3", "worker")):
            producer.send(dead, key=b"R1", value=letter(event_id, stage))
        producer.flush()
    finally:
        producer.close()
    dsn = new_database()
    with acting_as("projections"):
        stats = run_until_idle(dsn, bootstrap, topics, **FAST)
    assert stats.dead_letters == 0
    conn = psycopg2.connect(dsn_as(dsn, "reader"))
    try:
        board = dashboard.read(conn, None, None)
        district = dashboard.read(conn, None, "NANHAI")
    finally:
        conn.close()
    got = {r.name: (r.kind, r.lag, r.stale, r.dead_letters) for r in board.connectors}
    assert got == {"ledger": ("payment-ledger", 7, True, 0),
                   "master": ("pension-master", 0, False, 2),
                   "worker": (None, None, False, 1)}
    assert board.stale_connectors == 1 and district.connectors == []
    dump = json.dumps([scalar(dsn, f"SELECT json_agg(t)::text FROM {t} t")
                       for t in ("connector_health", "dead_letter_index")])
    assert "13800138000" not in dump and "refused" not in dump


# ------------------------------------------------------------------ the contact read model


@pytest.mark.stack
def test_contact_read_model_keeps_phone_and_address_sealed(
    bootstrap: str, new_topics: Callable[[], TopicLayout], new_database: Callable[[], str],
) -> None:
    """ContactDetailsUpdated from the input log: the latest per retiree, phone and address
    as sealed (they open with the retiree's key, and read as erased once it is destroyed);
    an update whose personal fields are not sealed is dead-lettered without its value; the
    other inputs are read past."""
    keys = MemoryKeyStore()
    at = dt.datetime(2017, 7, 3, 2, tzinfo=dt.UTC)

    def update(n: int, rid: str, phone: str | None, address: str | None) -> dict[str, Any]:
        return {"type": "ContactDetailsUpdated", "event_id": f"contact-{n}",
                "recorded_at": at + dt.timedelta(minutes=n), "source_agency": "FS-W01",
                "retiree_id": rid, "phone": phone, "address": address,
                "channel": "COUNTER", "agency_id": "FS-W01"}

    phone, address = "13800138000", "佛山市禅城区岭南大道1号"
    topics = new_topics()
    enrolled = parse_line(enroll("R1"))
    records = [
        (EVENTS, enrolled),
        (EVENTS, seal_personal(update(1, "R1", "13900000000", None), keys)),
        (EVENTS, seal_personal(update(2, "R1", phone, address), keys)),
        (EVENTS, update(3, "R2", "13700000000", None)),  # not sealed: refused
    ]
    publish(bootstrap, topics, records)
    dsn = new_database()
    with acting_as("projections"):
        stats = run_until_idle(dsn, bootstrap, topics, **FAST)
    assert stats.dead_letters == 1
    conn = psycopg2.connect(dsn)
    try:
        got = contact(conn, "R1")
        assert contact(conn, "R2") is None
    finally:
        conn.close()
    assert got is not None and got.channel == "COUNTER" and got.agency_id == "FS-W01"
    sealed = {"retiree_id": "R1", "phone": got.phone_sealed, "address": got.address_sealed}
    assert reveal(sealed, "phone", keys) == phone
    assert reveal(sealed, "address", keys) == address
    dump = json.dumps(
        [scalar(dsn, f"SELECT json_agg(t)::text FROM {t} t")
         for t in ("retiree_contacts", "retiree_status", "instruction_ledger")])
    for clear in (phone, address, "13900000000", "13700000000"):
        assert clear not in dump
    consumer = KafkaConsumer(
        topics[DEAD_LETTERS].name, bootstrap_servers=bootstrap, group_id=None,
        **client_security(ADMIN).kafka_python(), auto_offset_reset="earliest",
    )
    letters: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 20
        while not letters and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                letters.extend(decode(record.value) for record in batch)
    finally:
        consumer.close()
    [letter] = letters
    assert letter["value"] is None and "is not sealed" in letter["reason"]
    keys.destroy("R1")
    assert reveal(sealed, "phone", keys) == ERASED


@pytest.mark.stack
def test_the_report_from_the_read_models_equals_the_report_from_replay(
    projected: Projected, world: World, tmp_path: Path,
) -> None:
    from lifecert.cli import main as lifecert_main
    from lifecert.report.figures import compute
    from lifecert.report.sources import (
        database_rows,
        replay_deaths,
        replay_instructions,
        replay_retirees,
    )
    from projections.queries import report_rows

    policy = load_policy(POLICY)
    conn = psycopg2.connect(dsn_as(projected.dsn, "reader"))
    try:
        rows = report_rows(conn, POLICY)
    finally:
        conn.close()
    for as_of in (None, dt.date(2017, 6, 20), dt.date(2017, 7, 10)):
        retirees, instructions, deaths = database_rows(rows.retirees, rows.instructions,
                                                       rows.deaths)
        ours = compute(POLICY, policy.window_opens, policy.deadline, retirees, instructions,
                       as_of, deaths)
        theirs = compute(POLICY, policy.window_opens, policy.deadline,
                         replay_retirees(world.replay_dir),
                         replay_instructions(world.replay_dir), as_of,
                         replay_deaths(world.replay_dir))
        assert ours == theirs, as_of
        if as_of is None:  # the deaths by register: every deceased one's source
            assert sum(ours.deaths_by_source.values()) == ours.deceased > 0
            assert len(ours.deaths_by_source) > 1, ours.deaths_by_source
    assert ours.certified > 0 and ours.backpay_fen > 0 and ours.terminated > 0
    out = tmp_path / "report"
    assert lifecert_main(["report", "--dsn", dsn_as(projected.dsn, "reader"), "--out",
                          str(out), "--as-of", "2017-07-10"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "数据来源 Source: PostgreSQL read models" in html and "截至 As of: 2017-07-10" in html
    assert "Deaths found through the registers" in html
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-")


@pytest.mark.stack
def test_the_report_on_a_database_without_read_models_says_what_to_run(
    new_database: Callable[[], str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from lifecert.cli import main as lifecert_main

    dsn = new_database()
    assert lifecert_main(["report", "--dsn", dsn, "--out", str(tmp_path)]) == 1
    assert "has no read models: run `lifecert projections migrate`" in capsys.readouterr().err
    assert cli("projections", "migrate", "--dsn", dsn) == 0
    assert lifecert_main(["report", "--dsn", dsn, "--out", str(tmp_path)]) == 1
    assert "no retiree yet: nothing to report" in capsys.readouterr().err
