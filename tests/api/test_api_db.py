"""The API's database parts against the sandbox's PostgreSQL: the status query's prepared
statement on the asynchronous connections, and the audit writer's batching (rows handed
over without waking its thread, none lost at close, overflow counted)."""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import UTC, datetime

from lifecert.api import db, secondfactor
from lifecert.api.harness import Sandbox
from lifecert.api.server import settle_garbage_collector
from lifecert.api.status import _set_ts
from tests.api.api_world import ID_NUMBERS


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
