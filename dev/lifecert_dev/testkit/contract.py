"""The contract every connector must pass, against the real broker.

A connector's test module subclasses :class:`SourceContract` or :class:`SinkContract` and
provides its simulator through a ``harness`` fixture (an unstarted
:class:`~lifecert_dev.testkit.harness.Harness`)::

    from lifecert_dev.testkit.contract import SourceContract
    from lifecert_dev.partners.ministry_offsite.harness import MinistryOffsiteHarness

    class TestMinistryOffsite(SourceContract):
        @pytest.fixture
        def harness(self) -> MinistryOffsiteHarness:
            return MinistryOffsiteHarness()

The kit starts the simulator, writes a configuration file for one instance of the
connector, and runs it as ``lifecert connectors run`` in a child process (stopped with
SIGTERM, or killed with SIGKILL for a crash). Each test gets topics of its own (a unique
prefix), deleted when the test ends. The broker comes from the ``connector_kit_bootstrap``
fixture (default: ``$LIFECERT_KAFKA_BOOTSTRAP`` or the local stack; a project may override
it).
"""

from __future__ import annotations

import json
import os
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.sdk import registry
from connectors.sdk.base import SourceConnector
from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from connectors.sdk.runner import stage_of
from lifecert.endpoints import kafka_bootstrap
from lifecert.events import codec
from lifecert.events.catalogue import EVENT_TYPES, PARTNER_TYPES, personal_field_names
from lifecert.events.interchange import parse_event
from lifecert.events.personal import is_sealed, open_raw, reveal
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline import acls, broker_clients
from lifecert.pipeline.credentials import ADMIN
from lifecert.pipeline.topics import (
    CONNECTOR_CHECKPOINTS,
    CONNECTOR_STATUS,
    DEAD_LETTERS,
    EVENTS,
    TopicLayout,
    layout,
)
from lifecert_dev.testkit.harness import Harness, SinkHarness, SourceHarness
from lifecert_dev.testkit.reading import read_events, read_records
from lifecert_dev.testkit.samples import sample_events

INSTANCE = "under-test"
# How long a case waits for what it expects (events, a metric) before it fails. A kit run
# that expects cases to fail (the kit's own mutant tests) may shorten it.
TIMEOUT_ENV = "LIFECERT_KIT_TIMEOUT"
TIMEOUT = float(os.environ.get(TIMEOUT_ENV, "60"))
# Quick retries and idle polls, and batches small enough for a restart to land inside one
# and for every counted case (12 records, 10, 6...) to cross batch boundaries.
BATCH = 5
RUNNER = {"batch_size": BATCH, "retry_initial": 0.1, "retry_max": 0.5, "idle_interval": 0.2}
# How long a caught-up connector is watched for reading or checkpointing again (ten idle
# polls).
IDLE_WATCH = 2.0


@dataclass
class Kit:
    """One test's world: the started harness, its topics, and connector processes."""

    harness: Harness
    settings: dict[str, Any]
    bootstrap: str
    topics: TopicLayout
    work_dir: Path
    config: Path
    processes: list[ConnectorProcess]

    def connector(self) -> ConnectorProcess:
        proc = ConnectorProcess(self.config, INSTANCE, self.work_dir / "connector.log")
        self.processes.append(proc)  # stopped at the end even if it never answers
        return started(proc)

    def read(self, role: str) -> list[dict[str, Any]]:
        """Every record of a topic, decoded, in offset order per partition."""
        return read_events(self.bootstrap, self.topics[role].name)

    def checkpoints(self) -> list[Any]:
        return [r.value for r in read_records(self.bootstrap,
                                              self.topics[CONNECTOR_CHECKPOINTS].name)
                if r.key == INSTANCE.encode()]

    def heartbeat(self) -> dict[str, Any] | None:
        """The connector's latest heartbeat (connector_status), None before the first."""
        values = [r.value for r in read_records(self.bootstrap,
                                                self.topics[CONNECTOR_STATUS].name)
                  if r.key == INSTANCE.encode()]
        return json.loads(values[-1]) if values and values[-1] is not None else None

    def publish(self, role: str, events: list[dict[str, Any]],
                raw: dict[int, bytes] | None = None) -> None:
        """Publish ``events`` to a topic keyed by retiree id; ``raw`` puts undecodable
        values at the given positions."""
        producer = broker_clients.producer(self.bootstrap, component=ADMIN)
        try:
            topic = self.topics[role].name
            for n, event in enumerate(events):
                if raw and n in raw:
                    producer.send(topic, key=b"garbage", value=raw[n])
                producer.send(topic, key=str(event["retiree_id"]).encode(),
                              value=codec.encode(event))
            producer.flush(30)
        finally:
            producer.close()


def started(proc: ConnectorProcess) -> ConnectorProcess:
    """``proc`` started and serving its metrics."""
    proc.start()
    # The runner installs its SIGTERM handler before it serves metrics: once they
    # answer, a stop is graceful rather than death by the default signal action.
    wait_for("the metrics endpoint", lambda: bool(proc.metrics()), proc)
    return proc


def wait_for(what: str, check: Callable[[], bool], proc: ConnectorProcess | None,
             timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None:
            proc.check_alive()
        time.sleep(0.25)
    tail = proc.log_tail() if proc is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


@pytest.fixture
def connector_kit_bootstrap() -> str:
    return kafka_bootstrap()


class _Contract:
    @pytest.fixture
    def harness(self) -> Harness:  # pragma: no cover - every connector's test overrides it
        raise NotImplementedError("a contract subclass provides the `harness` fixture")

    @pytest.fixture
    def kit(self, harness: Harness, connector_kit_bootstrap: str,
            tmp_path: Path) -> Iterator[Kit]:
        # The process in the name: tests run side by side (pytest-xdist) can tell the
        # topics and ACLs of one kit run from another's.
        prefix = f"kit-{os.getpid()}-{uuid.uuid4().hex[:10]}."
        topics = layout(prefix)
        with broker_clients.admin_client(connector_kit_bootstrap, component=ADMIN) as admin:
            broker_clients.ensure_topics(admin, topics)
        settings = harness.start(tmp_path / "partner")
        config = write_config(
            tmp_path / "connectors.toml", bootstrap=connector_kit_bootstrap,
            topic_prefix=prefix,
            instances={INSTANCE: InstanceSpec(harness.connector_kind, settings, RUNNER)})
        kit = Kit(harness, settings, connector_kit_bootstrap, topics, tmp_path, config, [])
        try:
            yield kit
        finally:
            for proc in kit.processes:
                proc.kill()
            harness.stop()
            _delete_topics(connector_kit_bootstrap, topics)


def _delete_topics(bootstrap: str, topics: TopicLayout) -> None:
    """Delete one test's topics and their ACLs (a warning, not a failure, when the broker
    refuses: the test's own result matters more than the clean-up)."""
    names = [spec.name for spec in topics.topics.values()]
    try:
        with broker_clients.admin_client(bootstrap, component=ADMIN) as admin:
            admin.delete_topics(names, timeout_ms=30_000)
            acls.revoke(admin, topics)
    except Exception as exc:
        warnings.warn(f"the test kit could not delete its topics {names}: {exc}", stacklevel=1)


def _business(event: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """An event without what the hub assigns (its id and agency): what the partner said."""
    return tuple(sorted((k, repr(v)) for k, v in event.items()
                        if k not in ("event_id", "source_agency")))


def _opened(event: dict[str, Any], keys: Any) -> dict[str, Any]:
    out = dict(event)
    for field in personal_field_names(event["type"]):
        if out.get(field) is not None:
            assert is_sealed(out[field]), (
                f"{event['type']}.{field} went on the topic in the clear: a source must seal "
                "personal fields (lifecert.events.personal.seal_personal)")
            out[field] = reveal(event, field, keys)
    return out


class SourceContract(_Contract):
    """Contract tests of a source connector and its simulator."""

    def expected(self, harness: SourceHarness, count: int, seed: int) -> list[dict[str, Any]]:
        return sample_events(harness.carries, count, seed)

    def _published(self, kit: Kit) -> list[dict[str, Any]]:
        """The events the connector published, their personal fields opened through the
        key store it sealed them with (each must have been sealed)."""
        keys = open_keystore()
        try:
            role = kit.harness.topic_role if isinstance(kit.harness, SourceHarness) else EVENTS
            return [_opened(e, keys) for e in kit.read(role) if e["type"] != "ClockTick"]
        finally:
            keys.close()

    def _assert_same(self, published: list[dict[str, Any]],
                     fed: list[dict[str, Any]]) -> None:
        want = Counter(_business(parse_event(dict(e), allowed=EVENT_TYPES + PARTNER_TYPES))
                       for e in fed)
        got = Counter(_business(e) for e in published)
        missing, extra = want - got, got - want
        assert not missing and not extra, (
            f"published events differ from what the partner holds: {sum(missing.values())} "
            f"missing (e.g. {next(iter(missing), None)}), {sum(extra.values())} unexpected "
            f"(e.g. {next(iter(extra), None)})")

    def test_each_record_becomes_exactly_one_valid_event(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 12, seed=1)
        harness.feed(fed)
        proc = kit.connector()
        wait_for("12 events", lambda: len(self._published(kit)) >= 12, proc)
        assert proc.stop() == 0, proc.log_tail()
        published = self._published(kit)
        assert len(published) == 12, f"{len(published)} events for 12 partner records"
        assert len({e["event_id"] for e in published}) == 12
        self._assert_same(published, fed)
        assert all(e["source_agency"] for e in published), "events name their source agency"
        assert kit.read(DEAD_LETTERS) == []

    def test_restart_mid_batch_loses_and_doubles_nothing(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 300, seed=2)
        harness.feed(fed)
        proc = kit.connector()
        proc.wait_metric("lifecert_connector_published_total", 1, TIMEOUT)
        proc.kill()
        first_run = len(self._published(kit))
        proc = kit.connector()
        wait_for("300 distinct events",
                 lambda: len({e["event_id"] for e in self._published(kit)}) >= 300, proc)
        assert proc.stop() == 0, proc.log_tail()
        published = self._published(kit)
        by_id: dict[str, set[tuple[Any, ...]]] = {}
        for e in published:
            by_id.setdefault(e["event_id"], set()).add(_business(e))
        assert len(by_id) == 300, f"{len(by_id)} distinct events for 300 records"
        assert all(len(v) == 1 for v in by_id.values()), "a re-read record changed its event"
        self._assert_same([e for e in {e["event_id"]: e for e in published}.values()], fed)
        assert first_run < 300 or len(published) == 300, "killed after the end: not mid-batch"

    def test_malformed_record_is_dead_lettered_and_the_rest_flows(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 6, seed=3)
        harness.feed(fed[:3])
        hint = harness.feed_malformed()
        harness.feed(fed[3:])
        proc = kit.connector()
        wait_for("6 events and a dead letter",
                 lambda: len(self._published(kit)) >= 6 and len(kit.read(DEAD_LETTERS)) >= 1,
                 proc)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_same(self._published(kit), fed)
        letters = kit.read(DEAD_LETTERS)
        assert len(letters) == 1, letters
        letter = letters[0]
        assert letter["stage"] == stage_of(INSTANCE)
        assert hint.lower() in letter["reason"].lower(), letter["reason"]
        assert letter["value"], "the dead letter keeps the raw record"
        keys = open_keystore()
        try:
            raw = open_raw(letter["value"], keys)
        finally:
            keys.close()
        assert raw and raw != letter["value"], \
            "a partner's raw record may hold personal data: the dead letter keeps it sealed"
        assert letter["source_position"] is not None, "the dead letter says where it was read"

    def test_hostile_records_are_dead_lettered_and_the_connector_keeps_running(
        self, kit: Kit
    ) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 6, seed=6)
        harness.feed(fed[:3])
        hints = harness.feed_hostile()
        harness.feed(fed[3:])
        proc = kit.connector()
        wait_for(f"6 events and {len(hints)} dead letters",
                 lambda: len(self._published(kit)) >= 6
                 and len(kit.read(DEAD_LETTERS)) >= len(hints), proc)
        proc.check_alive()
        assert proc.stop() == 0, proc.log_tail()
        self._assert_same(self._published(kit), fed)
        reasons = [letter["reason"] for letter in kit.read(DEAD_LETTERS)]
        assert len(reasons) == len(hints), reasons
        for hint in hints:  # each hostile record has its own letter, naming its field
            match = next((r for r in reasons if hint.lower() in r.lower()), None)
            assert match is not None, f"no dead letter names {hint!r}: {reasons}"
            reasons.remove(match)

    def test_partner_down_is_retried_and_recovered(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 5, seed=4)
        harness.feed(fed)
        harness.break_partner()
        proc = kit.connector()
        proc.wait_metric("lifecert_connector_retries_total", 2, TIMEOUT)
        assert self._published(kit) == [], "nothing can be read while the partner is down"
        harness.mend_partner()
        wait_for("5 events after the partner came back", lambda: len(self._published(kit)) >= 5,
                 proc)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_same(self._published(kit), fed)

    def test_checkpoint_survives_a_restart(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 10, seed=5)
        harness.feed(fed[:5])
        proc = kit.connector()
        wait_for("5 events", lambda: len(self._published(kit)) >= 5, proc)
        wait_for("a checkpoint", lambda: bool(kit.checkpoints()), proc)
        assert proc.stop() == 0, proc.log_tail()
        harness.feed(fed[5:])
        proc = kit.connector()
        wait_for("10 events", lambda: len(self._published(kit)) >= 10, proc)
        time.sleep(1.0)  # a re-read from the start would show up as more than 10
        assert proc.stop() == 0, proc.log_tail()
        published = self._published(kit)
        assert len(published) == 10, f"{len(published)} events: the restart re-read records"
        self._assert_same(published, fed)

    def _count(self, proc: ConnectorProcess, metric: str) -> float:
        return proc.metrics().get(metric, 0.0)

    def test_caught_up_connector_stops_reading_and_checkpointing(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 12, seed=8)
        harness.feed(fed)
        proc = kit.connector()
        wait_for("12 events", lambda: len(self._published(kit)) >= 12, proc)
        wait_for("a checkpoint", lambda: bool(kit.checkpoints()), proc)
        time.sleep(1.0)  # the last batch's checkpoint and a few idle polls
        read, checkpoints = self._count(proc, "lifecert_connector_records_in_total"), \
            len(kit.checkpoints())
        time.sleep(IDLE_WATCH)
        more_read = self._count(proc, "lifecert_connector_records_in_total") - read
        more_checkpoints = len(kit.checkpoints()) - checkpoints
        lag = self._count(proc, "lifecert_connector_lag")
        assert proc.stop() == 0, proc.log_tail()
        assert more_read == 0, (
            f"caught up, the connector read {more_read:.0f} more records in {IDLE_WATCH} s: "
            "_poll(position) returns records at or before `position` (the checkpoint must be "
            "the position AFTER the last record published)")
        assert more_checkpoints == 0, (
            f"caught up, the connector wrote {more_checkpoints} more checkpoints in "
            f"{IDLE_WATCH} s: it keeps re-reading")
        if harness.tells_lag:
            assert lag == 0, f"caught up, lifecert_connector_lag is {lag}, not 0 (_lag)"
        beat = kit.heartbeat()  # the SDK's heartbeat: what the dashboard shows
        assert beat is not None and beat["kind"] == harness.connector_kind, beat
        if harness.tells_lag:
            assert beat["lag"] == 0, f"caught up, the heartbeat says lag {beat['lag']}"
        published = self._published(kit)
        assert len(published) == 12, f"{len(published)} events for 12 partner records"
        self._assert_same(published, fed)

    def test_poll_honours_max_records_and_tells_lag(self, kit: Kit) -> None:
        """The hooks called directly, as the runner calls them: every batch at most
        ``max_records``, positions JSON, keys unique, nothing after the end, ``_lag``."""
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 12, seed=7)
        harness.feed(fed)
        cls = registry.load(harness.connector_kind)
        connector = cls("walk", kit.settings)
        assert isinstance(connector, SourceConnector)
        connector._open()
        try:
            self._walk(connector, harness, len(fed))
        finally:
            connector._close()

    def _walk(self, connector: SourceConnector, harness: SourceHarness, count: int) -> None:
        position: Any = None
        keys: set[str] = set()
        read = events = 0
        lags: list[tuple[int, int | None]] = []  # (records read so far, _lag then)
        # Counted: the events of the types the harness carries (to its topic); a record may
        # also give events for other topics (a home visit's certification beside its report).
        carried = frozenset(type_name for type_name, _ in harness.carries)
        batches = 0
        deadline = time.monotonic() + TIMEOUT
        while True:
            records = connector._poll(position, BATCH)
            assert len(records) <= BATCH, (
                f"_poll(position, max_records={BATCH}) returned {len(records)} records")
            if not records:
                if events >= count or time.monotonic() > deadline:
                    break
                # Fed is not yet readable everywhere: the pension master's outbox holds a
                # row back until every older transaction in the cluster has ended. The
                # runner waits and polls again; so does the walk, until TIMEOUT.
                connector._wait(float(RUNNER["idle_interval"]))
                continue
            batches += 1
            if batches > count * 2 + 2:
                raise AssertionError(f"_poll never caught up after {read} records ({count} "
                                     "fed): it returns records again after the last")
            for record in records:
                assert json.loads(json.dumps(record.position)) == record.position, (
                    f"position {record.position!r} of {record.key} does not survive JSON "
                    "(the checkpoint is stored as JSON)")
                assert record.key not in keys, f"key {record.key!r} read twice"
                keys.add(record.key)
                events += sum(1 for e in connector._to_events(record)
                              if e["type"] in carried)
            read += len(records)
            position = records[-1].position
            lags.append((read, connector._lag(position)))
        assert list(connector._poll(position, BATCH)) == [], \
            "caught up, _poll(last position) returns records again"
        assert events == count, (f"{events} events mapped for {count} partner records ("
                                 f"_poll returned no more records for {TIMEOUT:.0f} s)")
        if harness.tells_lag:
            for done, lag in lags:
                assert lag is not None, (
                    "_lag(position) is None: the harness says the partner tells its backlog "
                    "(tells_lag); implement _lag(position), or set tells_lag = False")
                assert lag == read - done, (
                    f"_lag after {done} of {read} records is {lag}, not {read - done}")

    def test_record_still_being_written_is_not_read_yet(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 4, seed=9)
        harness.feed(fed[:3])
        finish = harness.feed_in_progress(fed[3:])
        if finish is None:
            pytest.skip(f"{type(harness).__name__}.feed_in_progress: every write of this "
                        "partner is atomic")
        proc = kit.connector()
        wait_for("3 events", lambda: len(self._published(kit)) >= 3, proc)
        time.sleep(IDLE_WATCH)
        assert kit.read(DEAD_LETTERS) == [], \
            "a record still being written was read (and dead-lettered)"
        assert len(self._published(kit)) == 3, "a record still being written was read"
        finish()
        wait_for("4 events", lambda: len(self._published(kit)) >= 4, proc)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_same(self._published(kit), fed)
        assert kit.read(DEAD_LETTERS) == []

    def test_partner_down_mid_run_is_retried_and_nothing_lost(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, SourceHarness)
        fed = self.expected(harness, 10, seed=10)
        harness.feed(fed[:6])
        proc = kit.connector()
        wait_for("6 events", lambda: len(self._published(kit)) >= 6, proc)
        retries = self._count(proc, "lifecert_connector_retries_total")
        harness.break_partner()
        proc.wait_metric("lifecert_connector_retries_total", retries + 2, TIMEOUT)
        harness.mend_partner()
        harness.feed(fed[6:])
        wait_for("10 events", lambda: len(self._published(kit)) >= 10, proc)
        time.sleep(1.0)  # a re-read from the start would show up as more than 10
        assert proc.stop() == 0, proc.log_tail()
        published = self._published(kit)
        assert len(published) == 10, f"{len(published)} events for 10 partner records"
        self._assert_same(published, fed)
        assert kit.read(DEAD_LETTERS) == []


class SinkContract(_Contract):
    """Contract tests of a sink connector and its simulator."""

    def _applied(self, kit: Kit) -> list[str]:
        harness = kit.harness
        assert isinstance(harness, SinkHarness)
        return harness.applied()

    def _assert_once(self, kit: Kit, events: list[dict[str, Any]]) -> None:
        applied = Counter(self._applied(kit))
        want = Counter(e["event_id"] for e in events)
        assert applied == want, (
            f"applied differs: missing {sorted(want - applied)[:5]}, doubled or unexpected "
            f"{sorted(applied - want)[:5]}")

    def _sample(self, kit: Kit, count: int, seed: int) -> list[dict[str, Any]]:
        harness = kit.harness
        assert isinstance(harness, SinkHarness)
        return harness.sample_events(count, seed)

    def _role(self, kit: Kit) -> str:
        harness = kit.harness
        assert isinstance(harness, SinkHarness)
        return harness.topic_role

    def test_each_record_is_applied_exactly_once(self, kit: Kit) -> None:
        events = self._sample(kit, 20, seed=1)
        kit.publish(self._role(kit), events)
        proc = kit.connector()
        wait_for("20 applied", lambda: len(self._applied(kit)) >= 20, proc)
        # the SDK's heartbeat: caught up, the topics' ends less its offsets is 0
        wait_for("a heartbeat with lag 0", lambda: (kit.heartbeat() or {}).get("lag") == 0,
                 proc)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_once(kit, events)
        assert kit.read(DEAD_LETTERS) == []

    def test_restart_mid_batch_loses_and_doubles_nothing(self, kit: Kit) -> None:
        events = self._sample(kit, 300, seed=2)
        kit.publish(self._role(kit), events)
        proc = kit.connector()
        wait_for("the first applied", lambda: len(self._applied(kit)) > 0, proc)
        proc.kill()
        proc = kit.connector()
        wait_for("300 applied", lambda: len(set(self._applied(kit))) >= 300, proc)
        time.sleep(1.0)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_once(kit, events)

    def test_malformed_record_is_dead_lettered_and_the_rest_flows(self, kit: Kit) -> None:
        events = self._sample(kit, 6, seed=3)
        kit.publish(self._role(kit), events, raw={3: b"\xc3\x01not an avro record"})
        proc = kit.connector()
        wait_for("6 applied and a dead letter",
                 lambda: len(self._applied(kit)) >= 6 and len(kit.read(DEAD_LETTERS)) >= 1,
                 proc)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_once(kit, events)
        letters = kit.read(DEAD_LETTERS)
        assert len(letters) == 1, letters
        assert letters[0]["stage"] == stage_of(INSTANCE)
        assert letters[0]["source_topic"] == kit.topics[self._role(kit)].name
        assert letters[0]["source_offset"] is not None
        assert letters[0]["value"] == b"\xc3\x01not an avro record"
        proc = kit.connector()  # a restart does not read the bad record (or any) again
        time.sleep(1.5)
        assert proc.stop() == 0, proc.log_tail()
        assert len(kit.read(DEAD_LETTERS)) == 1, "the bad record was dead-lettered again"
        self._assert_once(kit, events)

    def test_partner_down_is_retried_and_recovered(self, kit: Kit) -> None:
        events = self._sample(kit, 5, seed=4)
        kit.publish(self._role(kit), events)
        kit.harness.break_partner()
        proc = kit.connector()
        proc.wait_metric("lifecert_connector_retries_total", 2, TIMEOUT)
        kit.harness.mend_partner()
        wait_for("5 applied after the partner came back",
                 lambda: len(self._applied(kit)) >= 5, proc)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_once(kit, events)

    def test_checkpoint_survives_a_restart(self, kit: Kit) -> None:
        events = self._sample(kit, 10, seed=5)
        kit.publish(self._role(kit), events[:5])
        proc = kit.connector()
        wait_for("5 applied", lambda: len(self._applied(kit)) >= 5, proc)
        assert proc.stop() == 0, proc.log_tail()
        kit.publish(self._role(kit), events[5:])
        proc = kit.connector()
        wait_for("10 applied", lambda: len(self._applied(kit)) >= 10, proc)
        time.sleep(1.0)
        assert proc.stop() == 0, proc.log_tail()
        self._assert_once(kit, events)
