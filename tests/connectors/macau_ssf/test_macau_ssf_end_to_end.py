"""Macau SSF both ways, end to end: the real broker, the real database, SSF's simulator as
its own process, both connectors as `lifecert connectors run` processes.

SSF's generated population comes in (form-4 certifications, forms, deaths of Foshan
retirees in Macau; SSF's beneficiaries living in Foshan as assistance cases); Foshan's
counters answer every case (each result delivered twice on the topic, one re-entered under
a new event id) and Foshan asks SSF about its five retirees in Macau who have not
certified (`lifecert assistance request` from the projected statuses, run twice), while SSF
is stopped; SSF is started again; every answer and request reaches SSF once, SSF's receipts
come back, and SSF answers Foshan's requests: three by a form-4 certification performed
after Foshan asked (two listed before the request reached SSF, one after), two not found on
their due day, one answer listed twice and applied once. The projected read model equals
the domain's fold of the topic and `lifecert replay --assistance`'s cases (live == replay)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from connectors.macau_ssf import ssf
from connectors.sdk.process import InstanceSpec
from lifecert.domain import assistance
from lifecert.domain.fold import uuid5
from lifecert.domain.policy import load_policy
from lifecert.events.interchange import parse_event, to_json
from lifecert.events.time import SHANGHAI
from lifecert.pipeline.topics import ASSISTANCE_RESULTS, DEAD_LETTERS, EVENTS, STATUS
from lifecert.replay import AssistanceTotals, replay_assistance
from lifecert_dev.partners.macau_ssf.harness import SsfSimulator, card_of, result_event
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import wait_for
from projections.queries import assistance_cases, assistance_refusals, open_cases_by_age
from tests.connectors.assistance_world import (
    RUNNER,
    AssistanceWorld,
    case_in_utc,
    status_event,
)

pytestmark = pytest.mark.stack

RETIREES, BENEFICIARIES, SEED, ASKED = 30, 12, 41, 5
CAL = load_policy("foshan-2017").working_days


class World(AssistanceWorld):
    def __init__(self, bootstrap: str, work: Path, admin_dsn: str) -> None:
        super().__init__(bootstrap, work, admin_dsn, "ssf")
        self.sim = SsfSimulator(work / "fss")
        self.sim.start()
        settings = self.sim.settings()
        self.configure({
            "ssf-in": InstanceSpec("macau-ssf", {**settings, "due_working_days": 15}, RUNNER),
            "ssf-out": InstanceSpec("macau-ssf-results",
                                    {**settings, "ack_log": str(work / "acks.jsonl")}, RUNNER)})

    def stop_partner(self) -> None:
        self.sim.stop()


@pytest.fixture
def world(stack: StackStatus, tmp_path: Path) -> Iterator[World]:
    w = World(stack.kafka_bootstrap, tmp_path, stack.postgres_dsn)
    yield w
    w.close()


def _of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def test_both_directions_with_ssf_down_and_duplicates(world: World) -> None:
    fed = world.sim.populate(RETIREES, BENEFICIARIES, SEED)
    world.sim.append([{"tipo": "BENEFICIARIO", "n_processo": "FSS-P3-BAD",
                       "n_beneficiario": "99000001", "bir": "1234567(8)",
                       "prestacao": "PENSAO_VELHICE",
                       "data_hora_pedido": "2017-05-02T09:00:00+08:00",
                       "data_hora_comunicacao": "2017-05-02T09:00:00+08:00"}])
    source = world.start("ssf-in")
    wait_for(f"{fed} events and a dead letter",
             lambda: len(world.read(EVENTS)) + len(world.read(ASSISTANCE_RESULTS)) >= fed
             and len(world.read(DEAD_LETTERS)) >= 1, source)
    inputs = world.read(EVENTS)
    requests = _of(world.read(ASSISTANCE_RESULTS), "AssistanceRequested")
    assert len(requests) == BENEFICIARIES
    assert len(_of(inputs, "CertificationRecorded")) == 27  # 30 retirees, one in ten died
    assert len(_of(inputs, "DeathRecorded")) == 3
    assert all(e["channel"] == "MACAU_SSF" for e in _of(inputs, "CertificationRecorded"))
    assert len(_of(inputs, "CertificationDocumentsReceived")) == 9
    # SSF's beneficiaries are foreign: none is on the input log, the only topic the payment
    # fold reads, so no Foshan payment instruction can ever name one.
    assert not any(e["retiree_id"].startswith("MO-SSF-") for e in inputs)
    (letter,) = world.read(DEAD_LETTERS)
    assert "bir" in letter["reason"] and "check digit" in letter["reason"]
    assert "1234567" not in letter["reason"]

    # Foshan's counters answer every case while SSF is down.
    world.sim.stop()
    answers = [result_event(SEED, i) for i in range(BENEFICIARIES)]
    again = {**answers[0], "event_id": uuid5("re-entered at the counter")}
    stray = parse_event({
        "type": "AssistanceAcknowledged", "event_id": "stray-ack",
        "recorded_at": "2017-06-01T10:00:00+08:00", "source_agency": "MACAU-SSF",
        "case_id": "FSS-P3-NEVER", "retiree_id": "MO-SSF-1", "partner": "MACAU-SSF",
        "acknowledges": "RESULT", "acknowledged_at": "2017-06-01T10:00:00+08:00",
        "receipt": "FSS-R0"}, allowed=("AssistanceAcknowledged",))
    # every result delivered twice, one re-entered, and a receipt of a case never asked
    world.publish(answers + answers + [again, stray])
    # Foshan asks SSF about its retirees living in Macau who have not certified (OUTBOUND):
    # the statuses the worker publishes, projected; `lifecert assistance request` run twice
    # before the read model shows its cases (the same requests again, same ids).
    world.publish([status_event(f"FS-MO-{n:05d}", "MACAU", "NOT_CERTIFIED") for n in range(ASKED)]
                  + [status_event("FS-MO-99999", "MACAU", "CERTIFIED"),
                     status_event("FS-FS-00001", "FOSHAN", "NOT_CERTIFIED")], STATUS)
    world.project()
    for _ in range(2):
        assert "published 5 request(s)" in world.ask("2017-05-15T09:00:00+08:00")
    asks = [e for e in _of(world.read(ASSISTANCE_RESULTS), "AssistanceRequested")
            if e["direction"] == "OUTBOUND"]
    assert len(asks) == 2 * ASKED and len({a["event_id"] for a in asks}) == ASKED
    assert {a["retiree_id"] for a in asks} == {f"FS-MO-{n:05d}" for n in range(ASKED)}
    asks = list({a["event_id"]: a for a in asks}.values())
    # Mid-campaign, SSF not answered yet: on 20 June the five requests (due 13 June) are
    # overdue, in the read model as in `lifecert replay --assistance`.
    world.project()
    projected, totals = _cases_both_ways(world, date(2017, 6, 20), "mid")
    assert (totals.inbound, totals.outbound, totals.answered, totals.overdue) == (
        BENEFICIARIES, ASKED, BENEFICIARIES, ASKED)
    assert sum(r.overdue for r in open_cases_by_age(list(projected.values()),
                                                   date(2017, 6, 20), CAL)) == ASKED
    sink = world.start("ssf-out")
    sink.wait_metric("lifecert_connector_retries_total", 3, 60)
    source.check_alive()
    sink.check_alive()
    world.sim.start()  # same port, same state
    wait_for("SSF's receipts", lambda: len(_receipts(world)) >= BENEFICIARIES,
             source, timeout=120)
    results = world.sim.results()
    assert len(results) == BENEFICIARIES, "SSF applied each case's answer once"
    assert sorted(r["n_processo"] for r in results) == sorted(a["case_id"] for a in answers)
    assert sum(r["posts"] for r in results) >= BENEFICIARIES + 1  # duplicates reached SSF
    acks = [json.loads(line) for line in (world.work / "acks.jsonl").read_text().splitlines()]
    assert {a["n_recibo"] for a in acks if a["type"] == "AssistanceResult"} == \
        {r["n_recibo"] for r in results}
    assert any(a["duplicate"] for a in acks)

    # SSF holds each of Foshan's requests once and acknowledges it. Its form-4
    # certifications answer them: FS-MO-00000 and -00001 certified at SSF after Foshan asked
    # (23 and 24 May), listed before the requests reached SSF; FS-MO-00002 certifies now;
    # FS-MO-00003 and -00004 certified in April, before Foshan asked: those answer nothing,
    # and SSF finds neither by the due day. Then SSF lists an answer a second time.
    wait_for("Foshan's requests at SSF", lambda: len(world.sim.requests()) >= ASKED, source)
    assert sorted(r["n_pensionista_foshan"] for r in world.sim.requests()) == \
        sorted(a["retiree_id"] for a in asks)
    world.sim.append([{"tipo": "PROVA_DE_VIDA", "n_registo": "FSS-P4-41-LATE",
                       "n_pensionista_foshan": "FS-MO-00002", "bir": card_of("FS-MO-00002"),
                       "balcao": "MO-SSF-SEDE", "data_hora_prova": "2017-05-25T10:00:00+08:00",
                       "data_hora_comunicacao": "2017-05-25T11:00:00+08:00"}])
    assert world.sim.answer_requests(resultado="NAO_ENCONTRADO") == 2
    client = world.sim.client()
    try:
        feed = client.get(ssf.FEED_PATH, {"limite": 1000}).data["itens"]
    finally:
        client.close()
    said = [i["registo"] for i in feed if i["registo"]["tipo"] == ssf.ANSWER]
    assert len(said) == ASKED, "SSF answered each request once"
    world.sim.append([said[0]])  # the same answer listed again
    wait_for("SSF's answers", lambda: len(_outbound(world)) >= ASKED + 1, source)
    time.sleep(1.0)  # a receipt listed twice, or an answer posted back, would show now
    assert len(_receipts(world)) == BENEFICIARIES
    assert len({e["event_id"] for e in _outbound(world)}) == ASKED + 1
    assert len(world.sim.results()) == BENEFICIARIES, "SSF's own answers are not posted back"
    assert len(_of(world.read(EVENTS), "CertificationRecorded")) == 27 + 1
    for proc in world.procs.values():
        assert proc.stop() == 0, proc.log_tail()

    # live == replay: the projected cases are the domain's fold of the topic.
    folded = assistance.fold(world.read(ASSISTANCE_RESULTS))
    assert len(folded) == BENEFICIARIES + ASKED
    inbound = [c for c in folded.values() if c.direction == "INBOUND"]
    outbound = [c for c in folded.values() if c.direction == "OUTBOUND"]
    assert len(inbound) == BENEFICIARIES and len(outbound) == ASKED
    assert all(c.status == assistance.RECEIVED for c in inbound)
    assert all(c.status == assistance.ANSWERED and c.acknowledged_at is not None
               for c in outbound)
    answered = {c.retiree_id: (c.outcome, c.result_id) for c in outbound}
    assert {r: a for r, a in answered.items() if a[0] == "CERTIFIED_ALIVE"} == {
        "FS-MO-00000": ("CERTIFIED_ALIVE", "FSS-P4-41-00000"),
        "FS-MO-00001": ("CERTIFIED_ALIVE", "FSS-P4-41-00001"),
        "FS-MO-00002": ("CERTIFIED_ALIVE", "FSS-P4-41-LATE")}
    not_found = [c for c in outbound if c.outcome == "NOT_FOUND"]
    assert sorted(c.retiree_id for c in not_found) == ["FS-MO-00003", "FS-MO-00004"]
    assert all(c.answered_at == datetime(2017, 6, 13, 17, 0, tzinfo=SHANGHAI)
               and c.due_on == date(2017, 6, 13) for c in not_found), "on the due day"
    world.project()
    world.project()  # a restart: no change
    conn = psycopg2.connect(world.dsn)
    try:
        projected = {c.key: c for c in assistance_cases(conn)}
        refusals = assistance_refusals(conn)
    finally:
        conn.close()
    # every case is open or answered now: nobody is asked again
    assert "0 request(s) due on 2017-06-01" in world.ask("2017-06-01T09:00:00+08:00")
    assert projected.keys() == folded.keys()
    for key, case in folded.items():
        assert case_in_utc(projected[key]) == case_in_utc(case), key
    assert open_cases_by_age(list(projected.values()), date(2017, 7, 1), CAL) == []
    # `lifecert replay --assistance` on the topic's dump gives the projected cases too.
    projected, totals = _cases_both_ways(world, date(2017, 7, 1), "replay")
    assert (totals.inbound, totals.outbound, totals.answered, totals.overdue) == (
        BENEFICIARIES, ASKED, BENEFICIARIES + ASKED, 0)
    assert refusals == [("stray-ack", "MACAU-SSF", "FSS-P3-NEVER", "AssistanceAcknowledged",
                         assistance.UNKNOWN_CASE)]


def _cases_both_ways(world: World, as_of: date, out: str
                     ) -> tuple[dict[tuple[str, str], assistance.Case], AssistanceTotals]:
    """The read model's cases, checked equal to `lifecert replay --assistance`'s over the
    topic's dump (into ``out``), and replay's totals on ``as_of``."""
    conn = psycopg2.connect(world.dsn)
    try:
        projected = {c.key: c for c in assistance_cases(conn)}
    finally:
        conn.close()
    dump = world.work / f"{out}.jsonl"
    dump.write_text("".join(json.dumps(to_json(e), ensure_ascii=False) + "\n"
                            for e in world.read(ASSISTANCE_RESULTS)), encoding="utf-8")
    dead: list[dict[str, Any]] = []
    replayed, totals = replay_assistance(dump, world.work / out, as_of,
                                         on_dead_letter=dead.append)
    assert dead == [] and replayed.keys() == projected.keys()
    for key, case in replayed.items():
        assert case_in_utc(projected[key]) == case_in_utc(case), key
    rows = (world.work / out / "assistance.csv").read_text().splitlines()
    assert len(rows) == 1 + len(projected)
    assert sum(row.endswith(",1") for row in rows) == totals.overdue
    return projected, totals


def _receipts(world: World) -> list[dict[str, Any]]:
    return [e for e in _of(world.read(ASSISTANCE_RESULTS), "AssistanceAcknowledged")
            if e["acknowledges"] == "RESULT" and e["event_id"] != "stray-ack"]


def _outbound(world: World) -> list[dict[str, Any]]:
    return [e for e in _of(world.read(ASSISTANCE_RESULTS), "AssistanceResult")
            if e.get("direction") == "OUTBOUND"]
