"""Home visits end to end with the real broker and PostgreSQL (issue 14 items 4-5): the
worker's home-visit sweep gives HomeVisitDue tasks, the read model assigns them to the
district teams (due, then overdue); a team's results file, written by the team's
simulator, goes through the home-visits connector (a `lifecert connectors run` process):
alive -> a HOME_VISIT certification (the retiree CERTIFIED) and its contact update sealed
in the contact read model; deceased -> the death review queue, not a death, no
termination; not found -> recorded; a malformed row refused with its reason, the rest
flowing on; the same file delivered again has no second effect. A death the staff dismiss
makes the task to do again; one they confirm (the death-registers connector publishing the
confirmation) closes it as DECEASED."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.death_registers import review
from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from lifecert.events.personal import is_sealed, reveal
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS, HOME_VISIT_REPORTS, TASKS
from lifecert_dev import live
from lifecert_dev.partners.death_registers.harness import DeathRegistersHarness
from lifecert_dev.partners.home_visits.harness import HomeVisitsHarness
from lifecert_dev.testkit.reading import read_events
from projections.connection import connect
from projections.queries import contact, home_visit_task_list, home_visit_tasks_by_team
from tests.pipeline.live_helpers import POLICY

pytestmark = pytest.mark.stack

PHONE, ADDRESS = "0757-26661234", "佛山市南海区桂城街道保密路 3 号"
AT = "2017-06-08T10:00:00+08:00"


@pytest.fixture
def run(stack: Any, tmp_path: Path) -> Iterator[live.LiveRun]:
    tag = uuid.uuid4().hex[:10]
    run = live.LiveRun(stack.kafka_bootstrap, stack.postgres_dsn, f"hv{tag}.",
                       f"lifecert_hv_{tag}", tmp_path)
    with acting_as(ADMIN):
        live.prepare(run)
    yield run
    with acting_as(ADMIN):
        live.discard(run)


def _enrolled(retiree_id: str, district: str) -> dict[str, Any]:
    return {"type": "RetireeEnrolled", "event_id": f"enrol-{retiree_id}",
            "recorded_at": "2017-03-01T09:00:00+08:00", "retiree_id": retiree_id,
            "name": "梁国强", "birth_date": "1930-05-01", "scheme": "URBAN_EMPLOYEE",
            "category": "REGULAR", "residence": "FOSHAN", "district": district,
            "country": "CN", "pension_start": "2008-03-01", "monthly_amount_fen": 320_000,
            "disabled": False, "managing_unit": None}


def _visit(rid: str, team: str, outcome: str, **extra: str) -> dict[str, Any]:
    return {"type": "HomeVisitReported", "recorded_at": AT, "retiree_id": rid,
            "team_id": team, "visit_id": f"V-{rid}", "visited_on": "2017-06-05",
            "outcome": outcome, **extra}


def _read(run: live.LiveRun, role: str) -> list[dict[str, Any]]:
    return read_events(run.bootstrap, run.topics[role].name)


def _wait(what: str, predicate: Any, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _tasks(run: live.LiveRun) -> dict[str, tuple[str, str]]:
    conn = connect(run.dsn)
    try:
        return {t.retiree_id: (t.team_id, t.state) for t in home_visit_task_list(conn)}
    finally:
        conn.close()


def test_home_visit_tasks_worked_by_the_district_teams(run: live.LiveRun) -> None:
    retirees = {"HV000000001": "NANHAI", "HV000000002": "SHUNDE", "HV000000003": "SHUNDE",
                "HV000000004": "GAOMING", "HV000000005": "GAOMING"}
    enrolments = run.work_dir / "enrolments.jsonl"
    enrolments.write_text("".join(json.dumps(_enrolled(r, d), ensure_ascii=False) + "\n"
                                  for r, d in retirees.items()), encoding="utf-8")
    harness = HomeVisitsHarness()
    settings = harness.start(run.work_dir / "partner")
    logs = run.work_dir / "logs"
    # the death review's door: a staff confirmation comes back through the registers'
    # connector (connectors/death_registers/review.py), the review folder the teams' one
    registers = DeathRegistersHarness()
    register_settings = {**registers.start(run.work_dir / "registers"),
                         "review": settings["review"]}
    config = write_config(run.work_dir / "connectors.toml", bootstrap=run.bootstrap,
                          topic_prefix=run.prefix,
                          instances={"visits": InstanceSpec("home-visits", settings),
                                     "registers": InstanceSpec("death-registers",
                                                               register_settings)})
    try:
        with (
            live.running(run.worker_argv(), logs / "worker.log") as worker,
            live.running(run.projections_argv(), logs / "projections.log") as projections,
        ):
            with acting_as("connector"):
                live.publish(run, enrolments, POLICY, until=date(2017, 6, 10))
            _wait("5 tasks in the read model", lambda: len(_tasks(run)) == 5)
            assert _tasks(run) == {
                "HV000000001": ("HV-NANHAI", "OPEN"), "HV000000002": ("HV-SHUNDE", "OPEN"),
                "HV000000003": ("HV-SHUNDE", "OPEN"), "HV000000004": ("HV-GAOMING", "OPEN"),
                "HV000000005": ("HV-GAOMING", "OPEN")}
            conn = connect(run.dsn)
            try:
                due = {t.team_id: (t.due, t.overdue)
                       for t in home_visit_tasks_by_team(conn, date(2017, 6, 10))}
                late = {t.team_id: (t.due, t.overdue)
                        for t in home_visit_tasks_by_team(conn, date(2017, 6, 21))}
            finally:
                conn.close()
            assert due == {"HV-GAOMING": (2, 0), "HV-NANHAI": (1, 0), "HV-SHUNDE": (2, 0)}
            assert late == {"HV-GAOMING": (0, 2), "HV-NANHAI": (0, 1), "HV-SHUNDE": (0, 2)}

            harness.report([_visit("HV000000002", "HV-SHUNDE", "ALIVE", phone=PHONE,
                                   address=ADDRESS),
                            _visit("HV000000003", "HV-SHUNDE", "DECEASED",
                                   date_of_death="2017-05-30")])
            harness.report([_visit("HV000000001", "HV-NANHAI", "NOT_FOUND"),
                            _visit("HV000000004", "HV-NANHAI", "ALIVE")],
                           "--malform", "3:visited_on")
            harness.report([_visit("HV000000005", "HV-GAOMING", "DECEASED",
                                   date_of_death="2017-06-01")])
            connector = ConnectorProcess(config, "visits", run.work_dir / "connector.log")
            connector.start()
            _wait("4 reports and a dead letter",
                  lambda: len(_read(run, HOME_VISIT_REPORTS)) >= 4
                  and len(_read(run, DEAD_LETTERS)) >= 1)
            # the Shunde team delivers its file again
            [first] = [p for p in (harness.archive / "done").iterdir()
                       if p.name.startswith("HV-SHUNDE~")]
            (harness.drop_root / "HV-SHUNDE" / "visits again.csv").write_bytes(
                first.read_bytes())
            _wait("the duplicate set aside", lambda: any(
                n.endswith("~dup1") for n in os.listdir(harness.archive / "done")))
            assert connector.stop() == 0, connector.log_tail()
            with acting_as(ADMIN):
                assert live.wait_until_idle(run, 300, [worker, projections]), \
                    "the worker and the projections did not catch up"
            assert _tasks(run)["HV000000003"] == ("HV-SHUNDE", "DECEASED_REVIEW")
            assert _tasks(run)["HV000000005"] == ("HV-GAOMING", "DECEASED_REVIEW")
            pending, confirmed = sorted(review.listing(harness.review),
                                        key=lambda e: e["candidates"])
            assert (pending["candidates"], pending["source"]) == \
                (["HV000000003"], "HOME_VISIT")
            assert confirmed["candidates"] == ["HV000000005"]
            # staff confirm the Gaoming team's report: the registers' door publishes the
            # death, and the task is closed as DECEASED (no longer under review)
            review.confirm(harness.review, registers.inbox, confirmed["review_id"],
                           "HV000000005", "FS-STAFF-7", "death certificate seen",
                           datetime.now(UTC))
            deaths = ConnectorProcess(config, "registers", run.work_dir / "registers.log")
            deaths.start()
            _wait("the confirmed death published", lambda: any(
                e["type"] == "DeathRecorded" for e in _read(run, EVENTS)))
            assert deaths.stop() == 0, deaths.log_tail()
            _wait("the task closed by the death",
                  lambda: _tasks(run)["HV000000005"] == ("HV-GAOMING", "DECEASED"))
            # staff dismiss the death the team reported: the task is to do again
            review.dismiss(harness.review, pending["review_id"], "FS-STAFF-7",
                           "seen alive at the Shunde counter", datetime.now(UTC))
            connector = ConnectorProcess(config, "visits", run.work_dir / "connector.log")
            connector.start()
            _wait("the dismissal published", lambda: any(
                e["type"] == "HomeVisitDeathDismissed"
                for e in _read(run, HOME_VISIT_REPORTS)))
            _wait("the task to do again",
                  lambda: _tasks(run)["HV000000003"] == ("HV-SHUNDE", "DEATH_DISMISSED"))
            assert connector.stop() == 0, connector.log_tail()
        tasks = _tasks(run)
        assert tasks == {
            "HV000000001": ("HV-NANHAI", "NOT_FOUND"),
            "HV000000002": ("HV-SHUNDE", "CERTIFIED"),
            "HV000000003": ("HV-SHUNDE", "DEATH_DISMISSED"),
            "HV000000004": ("HV-GAOMING", "OPEN"),  # its row was refused
            "HV000000005": ("HV-GAOMING", "DECEASED"),
        }
        conn = connect(run.dsn)
        try:
            sealed = contact(conn, "HV000000002")
            with conn.cursor() as cur:
                cur.execute("SELECT retiree_id, status, completed_by FROM retiree_status")
                statuses = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
                cur.execute("SELECT count(*) FROM home_visit_reports")
                [(reports,)] = cur.fetchall()
        finally:
            conn.close()
    finally:
        harness.stop()
    assert statuses["HV000000002"] == ("CERTIFIED", "HOME_VISIT")
    assert statuses["HV000000003"][0] != "DECEASED", "a team's report is not a death"
    assert statuses["HV000000005"][0] == "DECEASED", "staff confirmed it"
    [dismissed] = [e for e in _read(run, HOME_VISIT_REPORTS)
                   if e["type"] == "HomeVisitDeathDismissed"]
    assert (dismissed["retiree_id"], dismissed["team_id"], dismissed["review_id"]) == \
        ("HV000000003", "HV-SHUNDE", pending["review_id"])
    assert reports == 4 and len(_read(run, HOME_VISIT_REPORTS)) == 5
    inputs = _read(run, EVENTS)
    assert [(e["retiree_id"], e["source"]) for e in inputs if e["type"] == "DeathRecorded"] \
        == [("HV000000005", "HOME_VISIT")], "only the death staff confirmed"
    assert [e["retiree_id"] for e in _read(run, "payment_instructions")
            if e["type"] == "PaymentTerminated"] == ["HV000000005"]
    assert [e["retiree_id"] for e in inputs if e["type"] == "CertificationRecorded"] == \
        ["HV000000002"]
    assert len([e for e in _read(run, TASKS) if e["type"] == "HomeVisitDue"]) == 5
    assert review.listing(harness.review) == []
    assert sealed is not None and is_sealed(sealed.phone_sealed)
    keys = open_keystore()  # the connector's key store (its default, as the kit's)
    try:
        opened = {"retiree_id": "HV000000002", "phone": sealed.phone_sealed,
                  "address": sealed.address_sealed}
        assert (reveal(opened, "phone", keys), reveal(opened, "address", keys)) == \
            (PHONE, ADDRESS)
    finally:
        keys.close()
    [letter] = _read(run, DEAD_LETTERS)
    assert "line 3: visited_on" in letter["reason"]
    texts = [letter["reason"], *(p.read_text(errors="replace") for p in
                                 [run.work_dir / "connector.log", *logs.iterdir()])]
    for text in texts:
        assert PHONE not in text and "保密路" not in text
