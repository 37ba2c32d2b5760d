"""The death registers end to end, through the real broker, worker, projections and
PostgreSQL: three registers report the same death (one death: one event id, one
termination), a partial match waits in the review queue and stops no pension, a
malformed row is dead-lettered with its reason while the rest flows on, an extract
delivered twice has one effect, and a confirmed review becomes the death."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.death_registers import review
from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert_dev import live
from lifecert_dev.partners.death_registers.harness import DeathRegistersHarness
from lifecert_dev.testkit.reading import read_events
from projections.connection import connect
from projections.queries import RetireeView, retiree
from tests.pipeline.live_helpers import POLICY, UNTIL

pytestmark = pytest.mark.stack

IDS = ("FSD001", "FSD002", "FSD003")


@pytest.fixture(autouse=True)
def _as_admin() -> Iterator[None]:
    """The test's own set-up and checks as the admin; the worker, the projections and the
    connector are processes that log in as themselves."""
    with acting_as(ADMIN):
        yield


def enrolments(harness: DeathRegistersHarness, path: Path) -> Path:
    lines = []
    for n, rid in enumerate(IDS):
        p = harness.people[rid]
        lines.append(json.dumps({
            "type": "RetireeEnrolled", "event_id": f"enrol:{rid}",
            "recorded_at": f"2017-01-0{n + 2}T09:00:00+08:00", "retiree_id": rid,
            "name": p["name"], "birth_date": p["birth_date"], "scheme": "URBAN_EMPLOYEE",
            "category": "REGULAR", "residence": "FOSHAN", "district": "CHANCHENG",
            "country": None, "pension_start": "2008-03-01", "monthly_amount_fen": 300_000,
            "disabled": False, "managing_unit": None}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read(run: live.LiveRun, role: str) -> list[dict]:
    return read_events(run.bootstrap, run.topics[role].name)


def view_of(run: live.LiveRun, retiree_id: str) -> RetireeView | None:
    conn = connect(run.dsn)
    try:
        return retiree(conn, retiree_id)
    finally:
        conn.close()


def wait_for(what: str, check, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_deaths_through_the_registers(run: live.LiveRun) -> None:
    harness = DeathRegistersHarness()
    settings = harness.start(run.work_dir / "registers")
    harness.enrol(IDS)
    live.publish(run, enrolments(harness, run.work_dir / "enrol.jsonl"), POLICY, UNTIL)
    died = {"date_of_death": "2017-04-01", "reported_at": "2017-04-02T10:00:00+08:00"}
    d1 = dict(harness.people["FSD001"], **died)
    d2 = dict(harness.people["FSD002"], **died, name="王五")   # id matches, name does not
    mz = harness.drop_deaths("MZ", [d1, d2])
    harness.drop_deaths("GA", [dict(d1, reported_at="2017-04-03T09:00:00+08:00")])
    harness.drop_deaths("WJ", [dict(d1, reported_at="2017-04-02T11:00:00+08:00")])
    harness.drop_raw(harness.next_name("MZ"), b"x" * 10 + b"\r\n")   # malformed
    config = write_config(run.work_dir / "connectors.toml", bootstrap=run.bootstrap,
                          topic_prefix=run.prefix, instances={"deaths": InstanceSpec(
                              "death-registers", settings, {"idle_interval": 0.2})})
    logs = run.work_dir / "logs"
    with (
        live.running(run.worker_argv(), logs / "worker.log") as worker,
        live.running(run.projections_argv(), logs / "projections.log") as projections,
    ):
        proc = ConnectorProcess(config, "deaths", logs / "deaths.log").start()
        try:
            wait_for("the inbox read", lambda: not list(harness.inbox.iterdir()))
            # the civil affairs extract delivered again, under its next number
            done = Path(settings["inbox"]).parent / "done"
            harness.drop_raw(harness.next_name("MZ"), (done / mz).read_bytes())
            wait_for("the second delivery read", lambda: not list(harness.inbox.iterdir()))
            (pending,) = review.listing(Path(settings["inbox"]).parent / "review")
            assert pending["candidates"] == ["FSD002"]
            assert live.wait_until_idle(run, 120, [worker, projections])
            before = view_of(run, "FSD002")
            review.confirm(Path(settings["inbox"]).parent / "review", harness.inbox,
                           pending["review_id"], "FSD002", "staff-7",
                           "the family confirmed it", datetime.now(UTC))
            wait_for("the confirmation read", lambda: not list(harness.inbox.iterdir()))
            assert live.wait_until_idle(run, 120, [worker, projections])
        finally:
            assert proc.stop() == 0, proc.log_tail()
    deaths = [e for e in read(run, EVENTS) if e["type"] == "DeathRecorded"]
    by_retiree = Counter(e["retiree_id"] for e in deaths)
    assert by_retiree == {"FSD001": 4, "FSD002": 1}   # MZ twice, GA, WJ; the confirmation
    assert len({e["event_id"] for e in deaths if e["retiree_id"] == "FSD001"}) == 1
    (letter,) = read(run, DEAD_LETTERS)
    assert "line" in letter["reason"] and "84" in letter["reason"]
    assert before is not None and before.cycles
    assert all(c.status != "DECEASED" for c in before.cycles), \
        "a partial match stopped a pension on its own"
    assert not [i for i in before.instructions if i["type"] == "PaymentTerminated"]
    views = {rid: view_of(run, rid) for rid in IDS}
    for rid in ("FSD001", "FSD002"):
        view = views[rid]
        assert view is not None and view.cycles
        assert all(c.status == "DECEASED" for c in view.cycles)
        assert [i["type"] for i in view.instructions].count("PaymentTerminated") == 1
    third = views["FSD003"]
    assert third is not None and third.cycles
    assert all(c.status != "DECEASED" for c in third.cycles)
