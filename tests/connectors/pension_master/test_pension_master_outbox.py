"""The simulated pension master system and the connector's reading of its outbox, against
a real database in the running PostgreSQL cluster (one fresh database per test).

Protocol of the master: each change writes its business row and its outbox row in one
transaction and notifies ``master_outbox`` on commit; the simulator's command line plays
event files into it; an outage refuses connections. Reading: in (xid, id) order after the
checkpoint, never skipping a row committed out of id order, waking on NOTIFY.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from connectors.pension_master.connector import PensionMasterSource
from connectors.sdk.base import PartnerRecord
from connectors.sdk.errors import ConfigError, PartnerUnavailable
from lifecert.events.interchange import parse_event
from lifecert_dev.generate import iter_campaign
from lifecert_dev.partners.pension_master import simulator
from lifecert_dev.partners.pension_master.harness import PensionMasterHarness
from lifecert_dev.stack import StackStatus

pytestmark = pytest.mark.stack

SIM = [sys.executable, "-m", "lifecert_dev.partners.pension_master.simulator"]


def enrolled(n: int, at: str = "2017-01-03T09:00:00+08:00", **extra: Any) -> dict[str, Any]:
    return {"type": "RetireeEnrolled", "recorded_at": at, "retiree_id": f"FS{n:06d}",
            "name": "黄丽娟", "birth_date": "1945-06-30", "scheme": "URBAN_EMPLOYEE",
            "category": "REGULAR", "residence": "FOSHAN", "district": "NANHAI",
            "country": None, "pension_start": "2005-07-01", "monthly_amount_fen": 300000,
            "disabled": False, "managing_unit": None, **extra}


def changed(n: int, amount: int, at: str = "2017-06-20T21:30:00+08:00") -> dict[str, Any]:
    return {"type": "PensionAmountChanged", "recorded_at": at, "retiree_id": f"FS{n:06d}",
            "monthly_amount_fen": amount, "effective_month": "2017-07"}


def business(event: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    parsed = parse_event(dict(event))
    return tuple(sorted((k, repr(v)) for k, v in parsed.items()
                        if k not in ("event_id", "source_agency")))


@pytest.fixture
def master(stack: StackStatus, tmp_path: Path) -> Iterator[PensionMasterHarness]:
    harness = PensionMasterHarness(stack.postgres_dsn)
    harness.start(tmp_path / "master")
    yield harness
    harness.stop()


@pytest.fixture
def source(master: PensionMasterHarness) -> Iterator[PensionMasterSource]:
    connector = PensionMasterSource("pm-test", {"dsn": master.dsn, "poll_interval": 0.2})
    connector._open()
    yield connector
    connector._close()


def sql(dsn: str | None, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    assert dsn is not None
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def read(source: PensionMasterSource, expect: int, position: Any = None,
         batch: int = 1000, *, exact: bool = True) -> tuple[list[PartnerRecord], Any]:
    """Poll until ``expect`` records are read (10 s at most), then (``exact``) once more to
    show there is no other. Rows held back by a transaction elsewhere in the shared cluster become
    readable once every older transaction has ended: hence the patience."""
    records: list[PartnerRecord] = []
    deadline = time.monotonic() + 10
    while len(records) < expect and time.monotonic() < deadline:
        got = source._poll(position, batch)
        if got:
            records += got
            position = got[-1].position
        else:
            time.sleep(0.05)
    if exact:
        assert source._poll(position, batch) == [], "more rows than expected"
    return records, position


def ids(records: list[PartnerRecord]) -> list[int]:
    return [r.data.id for r in records]


# ---------------------------------------------------------------------- the simulator


def test_init_is_idempotent(master: PensionMasterHarness) -> None:
    for _ in range(2):
        done = subprocess.run([*SIM, "init", "--dsn", str(master.dsn)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
    tables = sql(master.dsn, "SELECT table_name FROM information_schema.tables "
                             "WHERE table_schema = 'master' ORDER BY 1")
    assert tables == [("outbox",), ("pension_amount",), ("retiree",)]


def test_apply_plays_an_event_file_one_transaction_per_change(
    master: PensionMasterHarness, tmp_path: Path
) -> None:
    lines = [enrolled(1), {"type": "CertificationRecorded", "whatever": 1}, changed(1, 310000),
             changed(2, 1)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in lines) + "\n\n")
    done = subprocess.run([*SIM, "apply", "--dsn", str(master.dsn), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("applied 3 changes; skipped events the master does not "
                                   "hold: 1 CertificationRecorded")
    rows = sql(master.dsn, "SELECT id, xid::text, aggregate_id, event_kind, payload, "
                           "occurred_at FROM master.outbox ORDER BY id")
    assert [r[2:4] for r in rows] == [("FS000001", "retiree.enrolled"),
                                      ("FS000001", "pension.amount_changed"),
                                      ("FS000002", "pension.amount_changed")]
    assert len({r[1] for r in rows}) == 3, "each change in its own transaction"
    assert rows[0][4]["birth_date"] == "19450630" and rows[0][4]["district_code"] == "440605"
    assert rows[1][4] == {"person_no": "FS000001", "amount_fen": 310000,
                          "effective_month": "201707", "previous_amount_fen": 300000}
    assert rows[2][4]["previous_amount_fen"] is None, "a change for a person never enrolled"
    assert rows[1][5].isoformat() == "2017-06-20T13:30:00+00:00"
    assert sql(master.dsn, "SELECT person_no, monthly_amount_fen FROM master.retiree") == [
        ("FS000001", 300000)]
    assert sql(master.dsn, "SELECT person_no, amount_fen, effective_month "
                           "FROM master.pension_amount ORDER BY change_no") == [
        ("FS000001", 310000, "201707"), ("FS000002", 1, "201707")]


def test_apply_stops_at_a_bad_line_after_applying_the_lines_before_it(
    master: PensionMasterHarness, tmp_path: Path
) -> None:
    bad = enrolled(2)
    del bad["birth_date"]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [enrolled(1), bad, enrolled(3)]) + "\n")
    done = subprocess.run([*SIM, "apply", "--dsn", str(master.dsn), "--batch", "50", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{path} line 2, field 'birth_date': missing or null" in done.stderr, done.stderr
    assert sql(master.dsn, "SELECT aggregate_id FROM master.outbox") == [("FS000001",)]


def test_a_failed_change_leaves_neither_its_business_row_nor_its_outbox_row(
    master: PensionMasterHarness,
) -> None:
    good = simulator.master_change(enrolled(1))
    broken = simulator.master_change(enrolled(2))
    broken["record"]["birth_date"] = "19451340"  # the master's own check refuses it
    conn = simulator.connect(str(master.dsn))
    try:
        with pytest.raises(psycopg2.Error, match="out of range"):
            simulator.apply_changes(conn, [good, broken], batch=2)
        conn.rollback()
    finally:
        conn.close()
    assert sql(master.dsn, "SELECT count(*) FROM master.outbox") == [(0,)]
    assert sql(master.dsn, "SELECT count(*) FROM master.retiree") == [(0,)]


def test_the_master_notifies_when_a_change_commits(master: PensionMasterHarness) -> None:
    listener = psycopg2.connect(str(master.dsn))
    listener.autocommit = True
    writer = simulator.connect(str(master.dsn))
    try:
        listener.cursor().execute("LISTEN master_outbox")
        with writer.cursor() as cur:
            cur.execute("SELECT master.apply_changes(%s::jsonb)",
                        (json.dumps([simulator.master_change(enrolled(1))]),))
            assert select.select([listener], [], [], 0.3)[0] == [], "notified before commit"
            writer.commit()
        assert select.select([listener], [], [], 5)[0] == [listener]
        listener.poll()
        assert [n.channel for n in listener.notifies] == ["master_outbox"]
    finally:
        listener.close()
        writer.close()


def test_refuse_and_accept_make_an_outage(master: PensionMasterHarness) -> None:
    session = psycopg2.connect(str(master.dsn))
    done = subprocess.run([*SIM, "refuse", "--dsn", str(master.dsn)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with pytest.raises(psycopg2.OperationalError, match="not currently accepting connections"):
        psycopg2.connect(str(master.dsn))
    with pytest.raises(psycopg2.Error):
        session.cursor().execute("SELECT 1")  # its session was ended
    done = subprocess.run([*SIM, "accept", "--dsn", str(master.dsn)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sql(master.dsn, "SELECT 1") == [(1,)]


# ---------------------------------------------------------------------- the connector


def test_a_generated_campaign_comes_back_exactly_and_in_order(
    master: PensionMasterHarness, source: PensionMasterSource,
) -> None:
    """Re-enrolments, changes for never-enrolled persons, times in UTC and +08:00: what
    the demo feeds. (How fast feed() writes is not asserted here: a timing inside a test
    fails on a loaded machine and proves nothing on a quiet one.)"""
    carried = [e for e in (json.loads(line) for line in iter_campaign(1500, seed=11))
               if e["type"] in simulator.CARRIED]
    master.feed(carried)
    records, _ = read(source, len(carried), batch=500)
    events = [e for r in records for e in source._to_events(r)]
    assert [business(e) for e in events] == [business(e) for e in carried]


def test_poll_resumes_after_its_position(
    master: PensionMasterHarness, source: PensionMasterSource,
) -> None:
    master.feed([enrolled(n) for n in range(10)])
    first, _ = read(source, 4, batch=4, exact=False)
    assert [r.key for r in first] == ["1", "2", "3", "4"]
    assert first[-1].position == {"xid": first[-1].data.xid, "id": 4}
    assert source._lag(first[-1].position) == 6
    rest, position = read(source, 6, first[-1].position, batch=4)
    assert ids(rest) == list(range(5, 11))
    assert source._poll(position, 4) == [] and source._lag(position) == 0
    assert source._lag(None) == 10


def test_rows_committed_out_of_id_order_are_never_skipped(
    master: PensionMasterHarness, source: PensionMasterSource,
) -> None:
    """Two concurrent master transactions, the one holding the lower outbox id committing
    last. A reader going by id alone would read id 2, store "after 2" and lose id 1."""
    first, second = simulator.connect(str(master.dsn)), simulator.connect(str(master.dsn))

    def write(conn: Any, n: int) -> None:
        with conn.cursor() as cur:
            cur.execute("SELECT master.apply_changes(%s::jsonb)",
                        (json.dumps([simulator.master_change(enrolled(n))]),))

    try:
        write(first, 1)   # takes id 1, stays open
        write(second, 2)  # takes id 2
        second.commit()
        assert sql(master.dsn, "SELECT id FROM master.outbox") == [(2,)], \
            "id 2 is visible while id 1 is not: the hazard is real"
        assert source._poll(None, 100) == [], "id 2 must wait for the older transaction"
        first.commit()
        records, position = read(source, 2)
        assert ids(records) == [1, 2]

        # The other interleaving: a transaction that began writing first (older xid) takes
        # a higher id than one that began later and commits first. Read in xid order.
        with first.cursor() as cur:
            cur.execute("SELECT pg_current_xact_id()")  # begins writing: its xid is older
        write(second, 4)  # id 3, newer xid
        second.commit()
        assert source._poll(position, 100) == []
        write(first, 3)  # id 4, older xid
        first.commit()
        later, _ = read(source, 2, position)
        assert ids(later) == [4, 3]
        assert [r.data.xid for r in later] == sorted(r.data.xid for r in later)
    finally:
        first.close()
        second.close()


def test_wait_wakes_on_a_commit_and_otherwise_times_out(
    master: PensionMasterHarness, source: PensionMasterSource,
) -> None:
    start = time.monotonic()
    source._wait(0.4)
    assert 0.35 < time.monotonic() - start < 2.0
    feeder = threading.Timer(0.3, lambda: master.feed([enrolled(1)]))
    feeder.start()
    start = time.monotonic()
    source._wait(10.0)
    feeder.join()
    assert time.monotonic() - start < 3.0, "the commit's NOTIFY did not wake the connector"
    assert ids(read(source, 1)[0]) == [1]


def test_an_outage_is_partner_unavailable_and_recovers(
    master: PensionMasterHarness, source: PensionMasterSource,
) -> None:
    master.feed([enrolled(1)])
    master.break_partner()
    with pytest.raises(PartnerUnavailable, match="pension master: lost database pension_"):
        source._poll(None, 10)
    start = time.monotonic()
    source._wait(0.3)  # never raises: the runner calls it outside its retries
    assert time.monotonic() - start < 2.0
    source._close()
    with pytest.raises(PartnerUnavailable, match="not currently accepting connections"):
        source._open()
    [problem] = source._check()
    assert "cannot connect to database pension_master_" in problem, problem
    master.mend_partner()
    source._open()
    assert ids(read(source, 1)[0]) == [1]
    assert source._check() == []


def test_settings_and_checkpoints_are_checked(master: PensionMasterHarness) -> None:
    with pytest.raises(ConfigError, match="setting 'dsn' is required"):
        PensionMasterSource("x", {})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['dns'\]"):
        PensionMasterSource("x", {"dsn": "dbname=x", "dns": "y"})
    with pytest.raises(ConfigError, match="'poll_interval' must be > 0"):
        PensionMasterSource("x", {"dsn": "dbname=x", "poll_interval": 0})
    with pytest.raises(ConfigError, match="'dsn' is not a PostgreSQL connection string"):
        PensionMasterSource("x", {"dsn": "no such thing"})
    connector = PensionMasterSource("x", {"dsn": str(master.dsn)})
    connector._open()
    try:
        with pytest.raises(ConfigError, match="checkpoint 17 is not"):
            connector._poll(17, 10)
    finally:
        connector._close()


def test_a_database_without_the_master_schema_is_a_configuration_error(
    master: PensionMasterHarness, stack: StackStatus,
) -> None:
    connector = PensionMasterSource("x", {"dsn": stack.postgres_dsn})
    problems = connector._check()
    assert len(problems) == 1 and "has no table master.outbox" in problems[0]
    connector._open()
    try:
        with pytest.raises(ConfigError, match="does not hold the master's outbox"):
            connector._poll(None, 10)
    finally:
        connector._close()
