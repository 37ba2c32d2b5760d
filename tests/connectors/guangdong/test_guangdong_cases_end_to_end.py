"""Guangdong's assistance cases both ways, end to end: the real broker, the real database,
the provincial system's simulator as its own process, both connectors as `lifecert
connectors run` processes.

OUTBOUND: Foshan asks the province about its three retirees living elsewhere in Guangdong
who have not certified (`lifecert assistance request` from the projected statuses, run
twice: each request twice on the topic) while the province is down; the province comes
back; each case is registered once. The residence city's office certifies one retiree (its
certification on the feed answers the case) and finds neither of the others; the receipts,
the certification and the answers come back through the feed. INBOUND: Guangzhou's case
about its retiree living in Foshan, Foshan's answer (as the API publishes it) delivered
twice and re-entered under a new event id: the province applies it once. The projected
cases equal the domain's fold of the topic (live == replay)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from connectors.sdk.process import InstanceSpec
from lifecert.domain import assistance
from lifecert.domain.fold import uuid5
from lifecert.events.interchange import parse_event
from lifecert.pipeline.topics import ASSISTANCE_RESULTS, DEAD_LETTERS, EVENTS, STATUS
from lifecert_dev.partners.guangdong.harness import GuangdongHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import wait_for
from projections.queries import assistance_cases
from tests.connectors.assistance_world import (
    RUNNER,
    AssistanceWorld,
    case_in_utc,
    status_event,
)

pytestmark = pytest.mark.stack

ASKED = ("FS-GD-00001", "FS-GD-00002", "FS-GD-00003")
GZ_CASE = "GDXC-440100-17-000001"


class World(AssistanceWorld):
    def __init__(self, bootstrap: str, work: Path, admin_dsn: str) -> None:
        super().__init__(bootstrap, work, admin_dsn, "gdc")
        self.province = GuangdongHarness(break_mode="stop")
        settings = self.province.start(work)
        self.configure({
            "gd-in": InstanceSpec("guangdong-xregion", settings, RUNNER),
            "gd-out": InstanceSpec("guangdong-results", {
                "url": settings["url"], "ca_file": settings["ca_file"], "timeout": 5.0,
                "ack_log": str(work / "acks.jsonl")}, RUNNER)})

    def stop_partner(self) -> None:
        self.province.stop()


@pytest.fixture
def world(stack: StackStatus, tmp_path: Path) -> Iterator[World]:
    w = World(stack.kafka_bootstrap, tmp_path, stack.postgres_dsn)
    yield w
    w.close()


def _answer(event_id: str) -> dict[str, Any]:
    """Foshan's counter's answer to Guangzhou's case, as the API publishes it."""
    return parse_event({
        "type": "AssistanceResult", "event_id": event_id,
        "recorded_at": "2017-05-12T10:05:00+08:00", "source_agency": "FS-SIB-NH02",
        "certification_id": "FS-GZ-1", "retiree_id": "GZ000000017", "home_region": "GUANGDONG",
        "method": "COUNTER", "agency_id": "FS-SIB-NH02",
        "performed_at": "2017-05-12T10:00:00+08:00", "partner": "GD-XREGION",
        "case_id": GZ_CASE, "outcome": "CERTIFIED_ALIVE", "direction": "INBOUND"},
        allowed=("AssistanceResult",))


def test_cases_both_ways_with_the_province_down_and_duplicates(world: World) -> None:
    province = world.province
    province.register_cases([{"caseNo": GZ_CASE, "insuredId": "GZ000000017",
                              "insuredCity": "440100",
                              "registerTime": "2017-05-08 09:00:00+08:00"}])
    answer = _answer(uuid5("gd-answer-1"))
    world.publish([answer, answer, {**answer, "event_id": uuid5("re-entered")}])
    world.publish([status_event(r, "GUANGDONG", "NOT_CERTIFIED") for r in ASKED]
                  + [status_event("FS-GD-00009", "GUANGDONG", "CERTIFIED"),
                     status_event("FS-FS-00001", "FOSHAN", "NOT_CERTIFIED")], STATUS)
    world.project()
    for _ in range(2):  # before the read model shows the cases: the same requests again
        assert "published 3 request(s)" in world.ask("2017-05-15T09:00:00+08:00")
    asks = [e for e in world.read(ASSISTANCE_RESULTS) if e["type"] == "AssistanceRequested"]
    assert len(asks) == 6 and len({a["event_id"] for a in asks}) == 3
    assert {(a["partner"], a["direction"], a["retiree_id"]) for a in asks} == \
        {("GD-XREGION", "OUTBOUND", r) for r in ASKED}

    province.break_partner()  # the simulator's process stopped
    sink = world.start("gd-out")
    sink.wait_metric("lifecert_connector_retries_total", 2, 60)
    sink.check_alive()
    province.mend_partner()  # started again, same port, same state
    wait_for("the cases and the answer at the province",
             lambda: sum(c["posts"] for c in province.cases()) >= 1 + 6, sink, timeout=120)
    held = {c["caseNo"]: c for c in province.cases()}
    assert len(held) == 4, "each of Foshan's cases registered once"
    assert sorted(c["insuredId"] for c in held.values() if c["idempotencyKey"]) == \
        sorted(ASKED)
    assert all(held[a["case_id"]]["posts"] == 2 for a in asks), "posted twice, applied once"
    gz = held[GZ_CASE]
    assert gz["answer"]["certNo"] == "FS-GZ-1" and gz["answerKey"] == answer["event_id"]
    wait_for("the answer's three posts", lambda: province.cases()[0]["answerPosts"] >= 3,
             sink)
    assert province.cases()[0]["answer"] == gz["answer"], "applied once: the first answer"

    # The residence city's office certifies the first retiree: its certification, on the
    # feed, answers the case; the others are not found.
    province.feed([{
        "type": "CertificationRecorded", "event_id": "x", "recorded_at":
        "2017-05-20T11:00:00+08:00", "certification_id": "GDXR-17-00000777",
        "retiree_id": ASKED[0], "channel": "ASSISTED_OFFICE",
        "agency_id": "GD-GUANGZHOU-SIB", "performed_at": "2017-05-20T10:00:00+08:00"}])
    assert province.answer_cases("2017-06-05 10:00:00+08:00", "2") == 2
    source = world.start("gd-in")
    wait_for("the receipts, the certification and the answers",
             lambda: len([e for e in world.read(ASSISTANCE_RESULTS)
                          if e["type"] == "AssistanceResult"
                          and e.get("direction") == "OUTBOUND"]) >= 3, source)
    (certification,) = world.read(EVENTS)
    assert (certification["type"], certification["retiree_id"], certification["channel"]) == \
        ("CertificationRecorded", ASKED[0], "ASSISTED_OFFICE")
    assert world.read(DEAD_LETTERS) == []
    for proc in world.procs.values():
        assert proc.stop() == 0, proc.log_tail()

    world.project()
    folded = assistance.fold(world.read(ASSISTANCE_RESULTS))
    conn = psycopg2.connect(world.dsn)
    try:
        projected = {c.key: c for c in assistance_cases(conn)}
    finally:
        conn.close()
    assert projected.keys() == folded.keys() and len(folded) == 4
    for key, case in folded.items():
        assert case_in_utc(projected[key]) == case_in_utc(case), key
    out = {c.retiree_id: c for c in folded.values() if c.direction == "OUTBOUND"}
    assert {r: (c.status, c.outcome) for r, c in out.items()} == {
        ASKED[0]: (assistance.ANSWERED, "CERTIFIED_ALIVE"),
        ASKED[1]: (assistance.ANSWERED, "NOT_FOUND"),
        ASKED[2]: (assistance.ANSWERED, "NOT_FOUND")}
    assert out[ASKED[0]].result_id == "GDXR-17-00000777"
    assert all(c.acknowledged_at is not None and c.due_on == date(2017, 6, 13)
               for c in out.values()), "the province's receipts acknowledged each case"
    (inbound,) = [c for c in folded.values() if c.direction == "INBOUND"]
    assert (inbound.case_id, inbound.status, inbound.result_id, inbound.requested_at is None) \
        == (GZ_CASE, assistance.ANSWERED, "FS-GZ-1", False)
    assert "0 request(s) due on 2017-06-01" in world.ask("2017-06-01T09:00:00+08:00")
