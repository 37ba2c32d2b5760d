"""The pension master system for the test kit and the demo: a fresh database in the
running PostgreSQL cluster, its schema made by the simulator's command (a child process),
changes written as the master's write functions write them.

An outage is ``ALLOW_CONNECTIONS false`` on that database plus ending its sessions: the
shared cluster keeps running for everyone else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from connectors.pension_master import codes
from lifecert.databases import create_database, drop_database
from lifecert.dbroles import MASTER_SOURCE, dsn_as, role_exists
from lifecert.endpoints import postgres_dsn
from lifecert_dev.partners.pension_master import simulator
from lifecert_dev.testkit.harness import Event, SourceHarness

# Changes per transaction in feed(): a generated campaign's enrolments go in at some
# thousands a second, and every change still has its own outbox row.
FEED_BATCH = 2000
# Malformed rows feed_malformed() writes in turn: (event kind, payload, field at fault).
_MALFORMED: tuple[tuple[str, dict[str, Any], str], ...] = (
    (codes.ENROLLED, {"person_no": "", "full_name": "王建国", "insurance_type": "110",
                      "personnel_class": "1", "residence_type": "1",
                      "district_code": "440604", "country_code": None,
                      "start_date": "20080301", "monthly_amount_fen": 320000,
                      "disability_flag": "0", "unit_name": None}, "birth_date"),
    (codes.AMOUNT_CHANGED, {"person_no": "", "amount_fen": -50000, "effective_month": "201707",
                            "previous_amount_fen": 320000}, "amount_fen"),
)


class PensionMasterHarness(SourceHarness):
    connector_kind = "pension-master"
    carries = frozenset({("RetireeEnrolled", None), ("PensionAmountChanged", None)})

    def __init__(self, admin_dsn: str | None = None, *, poll_interval: float = 0.5) -> None:
        """``admin_dsn``: a superuser connection to the cluster (default: as lifecert finds
        PostgreSQL: ``$LIFECERT_POSTGRES_DSN``, else the local stack)."""
        self.admin_dsn = postgres_dsn(admin_dsn)
        self.poll_interval = poll_interval
        self.dbname: str | None = None
        self.dsn: str | None = None
        self._malformed = 0

    def start(self, work_dir: Path) -> dict[str, Any]:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.dbname = f"pension_master_{uuid.uuid4().hex[:12]}"
        self.dsn = create_database(self.admin_dsn, self.dbname)
        argv = [sys.executable, "-m", "lifecert_dev.partners.pension_master.simulator", "init",
                "--dsn", self.dsn]
        # the connector reads the master as its own role, which the master lets read its
        # outbox only (on a server without lifecert's roles: as the admin's)
        connector_dsn = self.dsn
        if role_exists(self.admin_dsn, MASTER_SOURCE):
            argv += ["--connector-role", MASTER_SOURCE]
            connector_dsn = dsn_as(self.dsn, "pension-master")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        (work_dir / "simulator-init.log").write_text(done.stdout + done.stderr, "utf-8")
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"`python -m lifecert_dev.partners.pension_master.simulator init`"
                               f" failed (exit {done.returncode}): {done.stderr.strip()}")
        return {"dsn": connector_dsn, "poll_interval": self.poll_interval}

    def stop(self) -> None:
        if self.dbname is not None:
            drop_database(self.admin_dsn, self.dbname)
            self.dbname = self.dsn = None

    def break_partner(self) -> None:
        simulator.set_connections(self._dsn(), False, self._admin_db())

    def mend_partner(self) -> None:
        simulator.set_connections(self._dsn(), True, self._admin_db())

    def feed(self, events: Sequence[Event]) -> None:
        changes = (simulator.master_change(e) for e in events)
        conn = simulator.connect(self._dsn())
        try:
            simulator.apply_changes(conn, changes, FEED_BATCH)
        finally:
            conn.close()

    def feed_malformed(self) -> str:
        """An outbox row as a defective legacy write path leaves it, bypassing the write
        functions: an enrolment without birth date, then an amount change below zero."""
        kind, payload, field = _MALFORMED[self._malformed % len(_MALFORMED)]
        self._malformed += 1
        person = f"FSBAD{self._malformed:05d}"
        conn = simulator.connect(self._dsn())
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO master.outbox (aggregate_id, event_kind, payload, occurred_at)"
                    " VALUES (%s, %s, %s::jsonb, now()); SELECT pg_notify('master_outbox', '')",
                    (person, kind, json.dumps({**payload, "person_no": person},
                                              ensure_ascii=False)))
        finally:
            conn.close()
        return field

    def feed_hostile(self) -> list[str]:
        """Outbox rows a broken master could write: an id with a control character, an
        amount past Avro's long, a birth in 9999, JSON nested 5,000 deep, a huge name, a
        month of the year 0."""
        enrolled = dict(_MALFORMED[0][1], birth_date="19500101")
        changed = dict(_MALFORMED[1][1], amount_fen=1000)
        rows: list[tuple[str, dict[str, Any], str, str]] = [
            (codes.ENROLLED, enrolled, "FS\x01H1", "person_no"),
            (codes.ENROLLED, dict(enrolled, monthly_amount_fen=2**70), "FSH2",
             "monthly_amount_fen"),
            (codes.ENROLLED, dict(enrolled, birth_date="99991231"), "FSH3", "birth_date"),
            (codes.ENROLLED, dict(enrolled, full_name="王" * 5000), "FSH5", "full_name"),
            (codes.AMOUNT_CHANGED, dict(changed, effective_month="000001"), "FSH6",
             "effective_month"),
        ]
        texts = [(kind, person, json.dumps({**payload, "person_no": person}, ensure_ascii=False))
                 for kind, payload, person, _ in rows]
        deep = "[" * 5000 + "]" * 5000
        texts.append((codes.ENROLLED, "FSH4", json.dumps(
            {**enrolled, "person_no": "FSH4", "full_name": None}).replace("null", deep, 1)))
        conn = simulator.connect(self._dsn())
        try:
            with conn, conn.cursor() as cur:
                for kind, person, text in texts:
                    cur.execute(
                        "INSERT INTO master.outbox (aggregate_id, event_kind, payload, "
                        "occurred_at) VALUES (%s, %s, %s::jsonb, now())", (person, kind, text))
                cur.execute("SELECT pg_notify('master_outbox', '')")
        finally:
            conn.close()
        return [field for *_, field in rows] + ["nested too deeply"]

    def _dsn(self) -> str:
        if self.dsn is None:
            raise RuntimeError("the pension master simulator is not started (call start())")
        return self.dsn

    def _admin_db(self) -> str:
        return str(psycopg2.extensions.parse_dsn(self.admin_dsn).get("dbname", "postgres"))
