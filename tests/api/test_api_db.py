"""The API's database parts against the sandbox's PostgreSQL: the status query's prepared
statement on the asynchronous connections, and the audit writer's batching (rows handed
over without waking its thread, none lost at close, overflow counted)."""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from lifecert.api import db, secondfactor
from lifecert.api.server import settle_garbage_collector
from lifecert.api.status import _set_ts
from lifecert_dev.api_sandbox import Sandbox
from tests.api.api_world import ID_NUMBERS


@pytest.mark.stack
def test_status_lookup_uses_the_statement_prepared_on_each_connection(box: Sandbox) -> None:
    async def lookups() -> tuple[list[db.StatusLookup], list[str]]:
        reader = db.AsyncReader(box.api_dsn, size=2, prepare=[db.STATUS_PREPARE])
        try:
            await reader.open()
            found = await asyncio.gather(
                *(db.status_lookup(reader, rid) for rid in ("MO-1", "FS-1", "NOBODY") * 3)
            )
            names = await asyncio.gather(*(reader.fetchone(
                "SELECT string_agg(name, ',') FROM pg_prepared_statements", ()
            ) for _ in range(2)))
            assert reader._opened == 2  # the pool, opened at once and reused
            return list(found), [row[0] for row in names if row]
        finally:
            reader.close()

    found, prepared = asyncio.run(lookups())
    assert prepared == [db.STATUS_STATEMENT, db.STATUS_STATEMENT]
    mo1, fs1, nobody = found[:3]
    assert found[3:6] == found[:3] and found[6:] == found[:3]
    for lookup, rid in ((mo1, "MO-1"), (fs1, "FS-1")):
        assert lookup.salt is not None and lookup.digest is not None
        factor = secondfactor.factor_of_id_number(ID_NUMBERS[rid])
        assert secondfactor.matches(box.second_factor_key, lookup.salt, lookup.digest, rid,
                                    factor)
    assert nobody.salt is None and nobody.digest is None and nobody.retiree is None
    assert nobody.statuses == [] and nobody.holds == []


def _row(n: int) -> db.AuditRow:
    return db.AuditRow(at=datetime.now(UTC), agency="AUDIT-DB", role="PORTAL", peer=None,
                       method="StatusQuery/GetStatus", outcome="OK", detail=f"row\t{n}\n",
                       subject=f"s{n}", duration_ms=1.5)


def _audited(box: Sandbox) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in box.query(
        "SELECT detail, subject FROM api_audit WHERE agency = 'AUDIT-DB' ORDER BY subject")]


@pytest.mark.stack
def test_audit_writer_writes_every_row_by_close_and_counts_overflow(box: Sandbox) -> None:
    box.query("DELETE FROM api_audit WHERE agency = 'AUDIT-DB' RETURNING id")
    # A long interval: nothing is written before close, which writes everything kept.
    writer = db.AuditWriter(box.api_dsn, interval=30.0, max_pending=10)
    for n in range(12):
        writer.write(_row(n))
    writer.close()
    assert writer.written == 10 and writer._lost == 2
    rows = _audited(box)
    assert len(rows) == 10
    assert rows[0] == ("row\\t0\\n", "s0")  # escaped as repr shows them, one line


@pytest.mark.stack
def test_audit_writer_batches_in_the_background(box: Sandbox) -> None:
    box.query("DELETE FROM api_audit WHERE agency = 'AUDIT-DB' RETURNING id")
    writer = db.AuditWriter(box.api_dsn, interval=0.05, batch=3)
    try:
        for n in range(7):
            writer.write(_row(n))
        deadline = time.monotonic() + 10
        while writer.written < 7 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.written == 7  # in transactions of at most 3 rows, before close
        assert len(_audited(box)) == 7
    finally:
        writer.close()


def test_settle_garbage_collector_freezes_what_start_up_left() -> None:
    try:
        settle_garbage_collector()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_timestamps_are_set_to_the_microsecond() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    for epoch in (0.0, 0.5, 1493688600.0, 1493688600.999999, 1764400000.123456, 1e9 + 1e-6):
        expected, got = Timestamp(), Timestamp()
        expected.FromDatetime(datetime.fromtimestamp(epoch, UTC))
        _set_ts(got, epoch)
        assert got == expected, epoch


@pytest.mark.stack
def test_face_purge_keeps_what_the_checks_need(box: Sandbox) -> None:
    """Unanswered challenges go a day after their deadline; answered ones and frame
    digests are kept for the sequence memory (here 10 days), then go."""
    from datetime import timedelta

    from lifecert.api import challenges

    now = datetime.now(UTC)
    day = timedelta(days=1)
    rows = {  # challenge_id: (deadline, used_at)
        "PURGE-LATE-UNUSED-1": (now - 2 * day, None),
        "PURGE-JUST-EXPIRED-1": (now - timedelta(hours=1), None),
        "PURGE-OPEN-0000001": (now + timedelta(seconds=30), None),
        "PURGE-USED-RECENT-1": (now - 5 * day, now - 5 * day),
        "PURGE-USED-OLD-0001": (now - 11 * day, now - 11 * day),
    }
    for challenge_id, (deadline, used_at) in rows.items():
        box.query("INSERT INTO api_face_challenges VALUES (%s, 'PURGE-AG', 'PURGE-SUBJECT', "
                  "ARRAY['TURN_LEFT', 'OPEN_MOUTH'], %s, %s, %s) RETURNING 1",
                  (challenge_id, deadline - timedelta(seconds=30), deadline, used_at))
    old, recent = b"\x01" * 32, b"\x02" * 32
    box.query("INSERT INTO api_face_frame_digests VALUES (%s, %s), (%s, %s) RETURNING 1",
              (old, now - 11 * day, recent, now - 5 * day))
    with box.connect() as conn:
        assert challenges.purge(conn, now, timedelta(days=10)) == 3
    assert sorted(r[0] for r in box.query(
        "SELECT challenge_id FROM api_face_challenges WHERE agency = 'PURGE-AG'")) == [
        "PURGE-JUST-EXPIRED-1", "PURGE-OPEN-0000001", "PURGE-USED-RECENT-1"]
    assert [bytes(r[0]) for r in box.query(
        "SELECT digest FROM api_face_frame_digests WHERE digest IN (%s, %s)",
        (old, recent))] == [recent]


@pytest.mark.stack
def test_erase_deletes_the_face_reference_and_clears_face_evidence(
    box: Sandbox, monkeypatch: Any, capsys: Any,
) -> None:
    """``lifecert erase``: no face reference (the sealed encoding) of the retiree is left,
    nor the evidence of their face decisions; the decisions stay for the audit, and other
    retirees keep theirs."""
    from psycopg2.extras import Json

    from lifecert import cli

    key = box.second_factor_key
    monkeypatch.setenv("LIFECERT_SECOND_FACTOR_KEY", key.hex())
    now = datetime.now(UTC)
    for rid in ("ERASE-FACE-1", "ERASE-FACE-2"):
        box.query("INSERT INTO api_face_references (retiree_id, sealed, model, enrolled_by, "
                  "enrolled_at) VALUES (%s, %s, 'm', 'FS-HQ-FACE', %s) RETURNING 1",
                  (rid, b"LCF1" + bytes(100), now))
        box.query("INSERT INTO api_face_decisions (at, agency, role, subject, operation, "
                  "decision, model, threshold, distance, live, evidence, frames) VALUES "
                  "(%s, 'FS-APP', 'APP', %s, 'VERIFY', 'MATCH', 'm', 0.5, 0.31, true, %s, 7) "
                  "RETURNING 1", (now, secondfactor.subject_ref(key, rid),
                                  Json({"parallax": [2.1, 2.4], "live": True})))
        box.query("INSERT INTO api_face_challenges VALUES (%s, 'FS-APP', %s, "
                  "ARRAY['TURN_LEFT'], %s, %s, %s) RETURNING 1",
                  (f"ERASE-CHALLENGE-{rid}", secondfactor.subject_ref(key, rid), now, now, now))
    assert cli.main(["erase", "ERASE-FACE-1", "--yes", "--keys-dsn", box.dsn]) == 0
    capsys.readouterr()
    assert box.query("SELECT retiree_id FROM api_face_references WHERE retiree_id LIKE "
                     "'ERASE-FACE-%%'") == [("ERASE-FACE-2",)]
    erased, kept = (secondfactor.subject_ref(key, r) for r in ("ERASE-FACE-1", "ERASE-FACE-2"))
    assert box.query("SELECT decision, agency, threshold, live, distance, evidence FROM "
                     "api_face_decisions WHERE subject = %s", (erased,)) == [
        ("MATCH", "FS-APP", 0.5, True, None, None)]
    [(distance, evidence)] = box.query(
        "SELECT distance, evidence FROM api_face_decisions WHERE subject = %s", (kept,))
    assert distance and evidence
    assert box.query("SELECT subject FROM api_face_challenges WHERE subject IN (%s, %s)",
                     (erased, kept)) == [(kept,)]
    # The sandbox is shared with the face tests, which check every decision row: take the
    # hand-made rows away again.
    box.query("DELETE FROM api_face_decisions WHERE subject IN (%s, %s) RETURNING 1",
              (erased, kept))
    box.query("DELETE FROM api_face_challenges WHERE subject IN (%s, %s) RETURNING 1",
              (erased, kept))
    box.query("DELETE FROM api_face_references WHERE retiree_id LIKE 'ERASE-FACE-%%' "
              "RETURNING 1")
