"""The mailroom connector passes the connector test kit against the real broker, with forms
registered by the mailroom clerk's simulator (a real process) into the register; the
kit's "partner down" test renames the share away.

End to end, in the kit's world: staff register forms with ``lifecert mailroom receive`` (the
real command, a child process), refusals included; the connector publishes them; the
projections write the paper-forms read model into a new database of the real PostgreSQL;
``lifecert mailroom outstanding`` and the query show the forms outstanding per agency and
the unmatched form, which is matched once its certification arrives."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from lifecert.databases import create_database, drop_database
from lifecert.pipeline.credentials import acting_as
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert_dev.partners.mailroom.harness import MailroomHarness, mailroom_events
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import Kit, SourceContract, wait_for
from lifecert_dev.testkit.harness import SourceHarness
from projections.migrate import migrate
from projections.queries import paper_forms
from projections.writer import run_until_idle

pytestmark = pytest.mark.stack
FAST = {"poll_ms": 50, "batch_seconds": 0.05}


class TestMailroom(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> MailroomHarness:
        return MailroomHarness()

    def expected(self, harness: SourceHarness, count: int, seed: int) -> list[dict[str, Any]]:
        return mailroom_events(count, seed)

    def test_end_to_end_forms_outstanding_and_unmatched(
            self, kit: Kit, stack: StackStatus, tmp_path: Path) -> None:
        harness = kit.harness
        assert isinstance(harness, MailroomHarness)
        scan = tmp_path / "scan-0001.pdf"
        scan.write_bytes(b"%PDF-1.4 a scanned form\n")
        documents = tmp_path / "documents"
        week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
        kit.publish(EVENTS, [_certification("C-A", "CC-ZUMIAO-03", "FS000000001", week_ago),
                             _certification("C-B", "CC-ZUMIAO-03", "FS000000002", week_ago),
                             _certification("C-D", "NH-GUICHENG-01", "FS000000004", week_ago)])

        def receive(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "lifecert.cli", "mailroom", "receive", "--register",
                 str(harness.register), *argv], capture_output=True, text=True, timeout=60,
                env=dict(os.environ))

        a = receive("--certification-id", "C-A", "--agency", "CC-ZUMIAO-03", "--retiree",
                    "FS000000001", "--form", "1", "--postmarked", "2017-05-02", "--scan",
                    str(scan), "--documents", str(documents))
        assert a.returncode == 0, a.stderr
        sha = hashlib.sha256(scan.read_bytes()).hexdigest()
        assert (documents / f"{sha}.pdf").read_bytes() == scan.read_bytes()
        again = receive("--certification-id", "C-A", "--agency", "CC-ZUMIAO-03", "--retiree",
                        "FS000000001", "--form", "1", "--scan-sha256", sha)
        assert again.returncode == 1 and "already registered" in again.stderr
        future = receive("--certification-id", "C-X", "--retiree", "FS000000009", "--form",
                         "2", "--postmarked", "2999-01-01", "--scan-sha256", sha)
        assert future.returncode == 1 and "postmarked_on" in future.stderr
        early = receive("--certification-id", "C-C", "--agency", "SD-DALIANG-02",
                        "--retiree", "FS000000003", "--form", "1", "--scan-sha256", "ab" * 32)
        assert early.returncode == 0, early.stderr
        assert harness.register.read_bytes().count(b"\n") == 2
        assert b"scan" not in harness.register.read_bytes().replace(b"scan_sha256", b"")
        harness.feed_malformed()  # a register line written by hand, wrong

        proc = kit.connector()
        wait_for("2 forms and a dead letter",
                 lambda: len(_forms(kit)) >= 2 and len(kit.read(DEAD_LETTERS)) >= 1, proc)
        assert proc.stop() == 0, proc.log_tail()
        [form_a] = [e for e in _forms(kit) if e["certification_id"] == "C-A"]
        assert (form_a["form_number"], form_a["postmarked_on"], form_a["scan_sha256"]) == \
            (1, dt.date(2017, 5, 2), sha)
        assert "postmarked_on" in kit.read(DEAD_LETTERS)[0]["reason"]

        name = f"lifecert_test_{uuid.uuid4().hex[:12]}"
        dsn = create_database(stack.postgres_dsn, name)
        try:
            conn = psycopg2.connect(dsn)
            try:
                migrate(conn)
                with acting_as("projections"):
                    run_until_idle(dsn, kit.bootstrap, kit.topics, **FAST)
                first = paper_forms(conn)
                kit.publish(EVENTS, [_certification("C-C", "SD-DALIANG-02", "FS000000003",
                                                    dt.datetime.now(dt.UTC))])
                with acting_as("projections"):
                    run_until_idle(dsn, kit.bootstrap, kit.topics, **FAST)
                second = paper_forms(conn)
            finally:
                conn.close()
            shown = subprocess.run([sys.executable, "-m", "lifecert.cli", "mailroom",
                                    "outstanding", "--dsn", dsn], capture_output=True,
                                   text=True, timeout=60, env=dict(os.environ))
        finally:
            drop_database(stack.postgres_dsn, name)
        assert [(r.agency_id, r.channel, r.forms, r.oldest_days) for r in first.outstanding] \
            == [("CC-ZUMIAO-03", "ASSISTING_AGENCY", 1, 8),
                ("NH-GUICHENG-01", "ASSISTING_AGENCY", 1, 8)]
        assert [(u.certification_id, u.agency_id, u.form_number) for u in first.unmatched] == \
            [("C-C", "SD-DALIANG-02", 1)]
        assert second.unmatched == []  # matched when its certification arrived
        assert [(r.agency_id, r.forms) for r in second.outstanding] == \
            [("CC-ZUMIAO-03", 1), ("NH-GUICHENG-01", 1)]
        assert shown.returncode == 0, shown.stderr
        assert "CC-ZUMIAO-03" in shown.stdout and "unmatched forms (no certification yet): 0" \
            in shown.stdout


def _certification(cert: str, agency: str, retiree: str, at: dt.datetime) -> dict[str, Any]:
    return {"type": "CertificationRecorded", "event_id": f"kit-cert-{cert}",
            "recorded_at": at, "source_agency": agency, "certification_id": cert,
            "retiree_id": retiree, "channel": "ASSISTING_AGENCY", "agency_id": agency,
            "performed_at": at - dt.timedelta(hours=1)}


def _forms(kit: Kit) -> list[dict[str, Any]]:
    return [e for e in kit.read(EVENTS) if e["type"] == "CertificationDocumentsReceived"]
