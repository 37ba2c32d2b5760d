"""Consular cases end to end with the real broker and PostgreSQL (issue 13): the consular
system's simulator serves signed cases (one pushed twice, one signed by another key, one
malformed); the consular-app connector publishes them; the projections keep the cases
read model; staff review them with `lifecert review consular` (each refusal tried); the
worker decides the approvals' CONSULATE certifications, and the statuses and instructions
in PostgreSQL equal an offline replay of the same input events (live == replay)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from lifecert.events.interchange import to_json
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import CONSULAR_CASES, DEAD_LETTERS, EVENTS
from lifecert_dev import live
from lifecert_dev.partners.consular_app.harness import ConsularAppHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.reading import read_events
from projections.connection import connect
from tests.pipeline.live_helpers import POLICY, assert_live_equals_replay

pytestmark = pytest.mark.stack

@pytest.fixture
def run(stack: StackStatus, tmp_path: Path) -> Iterator[live.LiveRun]:
    """A live run of its own (topics, worker group, database), set up as the admin."""
    tag = uuid.uuid4().hex[:10]
    run = live.LiveRun(stack.kafka_bootstrap, stack.postgres_dsn, f"e2e{tag}.",
                       f"lifecert_e2e_{tag}", tmp_path)
    with acting_as(ADMIN):
        live.prepare(run)
    yield run
    with acting_as(ADMIN):
        live.discard(run)


RETIREES = ("FS000000101", "FS000000102", "FS000000103", "FS000000104", "FS000000105")


def _enrolled(retiree_id: str) -> dict[str, Any]:
    return {"type": "RetireeEnrolled", "event_id": f"enrol-{retiree_id}",
            "recorded_at": "2017-03-01T09:00:00+08:00", "retiree_id": retiree_id,
            "name": "陈伟", "birth_date": "1948-05-01", "scheme": "URBAN_EMPLOYEE",
            "category": "REGULAR", "residence": "ABROAD", "district": None, "country": "CA",
            "pension_start": "2008-03-01", "monthly_amount_fen": 320_000, "disabled": False,
            "managing_unit": None}


def _case(n: int, retiree_id: str, *, permit: bool = True) -> dict[str, Any]:
    return {"type": "ConsularCaseReceived", "recorded_at": f"2017-04-{10 + n:02d}T09:00:00+08:00",
            "case_id": f"LS2017-00000{n}", "retiree_id": retiree_id,
            "mission_id": "CN-TO-PORTMORESBY" if n == 2 else "CN-CG-VANCOUVER",
            "mission_kind": "TRADE_OFFICE" if n == 2 else "CONSULATE_GENERAL",
            "country": "PG" if n == 2 else "CA", "passport_checked": True,
            "residence_permit_checked": permit, "face_checked": True,
            "performed_at": f"2017-04-{9 + n:02d}T22:15:00+08:00"}


def _review(run: live.LiveRun, *args: str) -> subprocess.CompletedProcess[str]:
    # The campaign is named: listing may start before the first status is projected, when
    # the default (the policy of the statuses in the read models) is not known yet.
    argv = [sys.executable, "-m", "lifecert.cli", "review", "consular", *args,
            "--dsn", run.dsn_for("api"), "--policy", POLICY.name]
    if args[0] != "list":
        argv += ["--bootstrap", run.bootstrap, "--prefix", run.prefix]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def _cases(run: live.LiveRun) -> dict[str, dict[str, Any]]:
    done = _review(run, "list", "--state", "all", "--as-of", "2017-05-05", "--json")
    assert done.returncode == 0, done.stderr
    return {c["case_id"]: c for c in map(json.loads, done.stdout.splitlines())}


def _read(run: live.LiveRun, role: str) -> list[dict[str, Any]]:
    return read_events(run.bootstrap, run.topics[role].name)


def _wait(what: str, predicate: Any, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_consular_cases_reviewed_end_to_end_equal_replay(run: live.LiveRun) -> None:
    enrolments = run.work_dir / "enrolments.jsonl"
    enrolments.write_text("".join(json.dumps(_enrolled(r), ensure_ascii=False) + "\n"
                                  for r in RETIREES), encoding="utf-8")
    harness = ConsularAppHarness()
    settings = harness.start(run.work_dir / "partner")
    logs = run.work_dir / "logs"
    connector: ConnectorProcess | None = None
    try:
        harness.push([_case(1, RETIREES[0]), _case(2, RETIREES[1]),
                      _case(3, RETIREES[2], permit=False), _case(4, RETIREES[3])])
        harness.push([_case(4, RETIREES[3])])  # the consular system pushes case 4 again
        harness.push([_case(5, RETIREES[4]), _case(6, RETIREES[4])],
                     "--bad-signature", "1", "--malform", "2:documentsChecked")
        config = write_config(run.work_dir / "connectors.toml", bootstrap=run.bootstrap,
                              topic_prefix=run.prefix,
                              instances={"consular": InstanceSpec("consular-app", settings)})
        connector = ConnectorProcess(config, "consular", run.work_dir / "connector.log").start()
        with (
            live.running(run.worker_argv(), logs / "worker.log") as worker,
            live.running(run.projections_argv(), logs / "projections.log") as projections,
        ):
            with acting_as("connector"):
                live.publish(run, enrolments, POLICY, until=date(2017, 4, 30))
            _wait("4 cases in the read model", lambda: len(_cases(run)) >= 4)
            _wait("2 dead letters", lambda: len(_read(run, DEAD_LETTERS)) >= 2)
            assert connector.stop() == 0, connector.log_tail()
            cases = _cases(run)
            assert sorted(cases) == [f"LS2017-00000{n}" for n in (1, 2, 3, 4)]
            assert cases["LS2017-000004"]["deliveries"] == 2
            # Arrived Wed 12 April: 10 working days later is Wed 26 April (no holiday).
            assert cases["LS2017-000002"]["due_on"] == "2017-04-26"
            assert cases["LS2017-000002"]["mission_kind"] == "TRADE_OFFICE"
            assert all(c["overdue"] for c in cases.values()), "open on 5 May: all overdue"
            letters = sorted(_read(run, DEAD_LETTERS), key=lambda d: d["source_position"])
            assert "signature does not verify" in letters[0]["reason"]  # seq 6
            assert "field documentsChecked" in letters[1]["reason"]  # seq 7

            at = "--at"
            ok = _review(run, "approve", "LS2017-000001", "--reviewer", "STAFF-01",
                         at, "2017-04-20T10:00:00+08:00")
            assert ok.returncode == 0, ok.stderr
            late = _review(run, "approve", "LS2017-000002", "--reviewer", "STAFF-02",
                           at, "2017-05-08T10:00:00+08:00")
            assert late.returncode == 0 and "after its due day" in late.stdout, late
            refused = _review(run, "approve", "LS2017-000003", "--reviewer", "STAFF-01",
                              at, "2017-04-21T10:00:00+08:00")
            assert refused.returncode == 3
            assert "did not check the residence permit" in refused.stderr
            no_reason = _review(run, "reject", "LS2017-000003", "--reviewer", "STAFF-01")
            assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
            rejected = _review(run, "reject", "LS2017-000003", "--reviewer", "STAFF-01",
                               "--reason", "residence permit not checked; certify at the "
                               "consulate with form 2", at, "2017-04-21T11:00:00+08:00")
            assert rejected.returncode == 0, rejected.stderr
            unknown = _review(run, "approve", "LS2017-999999", "--reviewer", "STAFF-01")
            assert unknown.returncode == 3 and "no consular case" in unknown.stderr
            _wait("3 reviews in the read model",
                  lambda: sum(1 for c in _cases(run).values() if c["decision"]) == 3)
            twice = _review(run, "reject", "LS2017-000001", "--reviewer", "STAFF-03",
                            "--reason", "second thoughts", at, "2017-04-22T10:00:00+08:00")
            assert twice.returncode == 3 and "already approved by STAFF-01" in twice.stderr
            # The paper form 2 of case 1 arrives (rule 4 of 2017); case 2's never does.
            form = run.work_dir / "form2.jsonl"
            form.write_text(json.dumps({
                "type": "CertificationDocumentsReceived", "event_id": "form2-LS2017-000001",
                "recorded_at": "2017-05-15T10:00:00+08:00", "certification_id": "LS2017-000001",
                "retiree_id": RETIREES[0], "received_at": "2017-05-15T09:00:00+08:00",
                "agency_id": "CN-CG-VANCOUVER"}) + "\n", encoding="utf-8")
            with acting_as("connector"):
                live.publish(run, form, POLICY, until=date(2017, 12, 31))
            with acting_as(ADMIN):
                idle = live.wait_until_idle(run, 300, [worker, projections])
            assert idle, "the worker and the projections did not catch up"
        cases = _cases(run)
        audit = {c: (v["decision"], v["reviewer"], v["reason"]) for c, v in cases.items()}
        assert audit == {
            "LS2017-000001": ("APPROVED", "STAFF-01", None),
            "LS2017-000002": ("APPROVED", "STAFF-02", None),
            "LS2017-000003": ("REJECTED", "STAFF-01", "residence permit not checked; "
                              "certify at the consulate with form 2"),
            "LS2017-000004": (None, None, None),
        }
        reviews = [e for e in _read(run, CONSULAR_CASES) if e["type"] == "ConsularCaseReviewed"]
        assert sorted((e["case_id"], e["overdue"]) for e in reviews) == [
            ("LS2017-000001", False), ("LS2017-000002", True), ("LS2017-000003", False)]
    finally:
        if connector is not None:  # a failed check above must not leave it running
            connector.kill()
        harness.stop()

    inputs = [e for e in _read(run, EVENTS) if e["type"] not in ("ClockTick", "RetireeEnrolled")]
    certs = [e for e in inputs if e["type"] == "CertificationRecorded"]
    assert sorted((e["certification_id"], e["channel"], e["agency_id"]) for e in certs) == [
        ("LS2017-000001", "CONSULATE", "CN-CG-VANCOUVER"),
        ("LS2017-000002", "CONSULATE", "CN-TO-PORTMORESBY")]
    log = run.work_dir / "inputs.jsonl"
    with log.open("w", encoding="utf-8") as out:
        out.write(enrolments.read_text(encoding="utf-8"))
        for event in sorted(inputs, key=lambda e: e["recorded_at"]):
            out.write(json.dumps(to_json(event), ensure_ascii=False) + "\n")
    # every certification of these five retirees counts: the rules reject nothing here
    # (the refused reviews never reach the log), so no verdict is expected
    assert_live_equals_replay(run, log, expect_verdicts=False)
    conn = connect(run.dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT retiree_id, status FROM retiree_status ORDER BY retiree_id")
            statuses = dict(cur.fetchall())
    finally:
        conn.close()
    # 1: approved and form 2 arrived; 2: approved, form 2 never came (2017); 3 rejected;
    # 4 never reviewed; 5 its cases were dead letters.
    assert statuses == {RETIREES[0]: "CERTIFIED", RETIREES[1]: "SUSPENDED",
                        RETIREES[2]: "SUSPENDED", RETIREES[3]: "SUSPENDED",
                        RETIREES[4]: "SUSPENDED"}

