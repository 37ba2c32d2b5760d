"""Verdicts (issue 18 item 1): every rejection the rules make but a redelivery becomes an
EventRejected, the same in replay and in the worker's step (both call
lifecert.domain.verdicts.verdict)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lifecert.domain import reasons
from lifecert.domain.policy import load_policy
from lifecert.domain.verdicts import NOT_REPORTED, verdict
from lifecert.events import codec
from lifecert.events.catalogue import enum_symbols, personal_field_names
from lifecert.events.interchange import parse_event, parse_line
from lifecert.replay import replay_lines
from streams.partition_state import PartitionCampaign
from tests.helpers import cert, death, docs, enroll, gov_enroll

POLICY = load_policy("foshan-2017")


def test_the_schema_names_every_reason_of_the_domain() -> None:
    assert enum_symbols("RejectionReason") == reasons.REJECTION_REASONS
    assert personal_field_names("EventRejected") == ()


def _lines() -> list[str]:
    return [
        gov_enroll("G-1", recorded_at="2017-01-05T09:00:00+08:00"),
        enroll("F-1", recorded_at="2017-01-05T09:00:00+08:00"),
        # A community certifies a government retiree: only the unit may (rule 3).
        cert("C-1", "G-1", "COUNTER", performed_at="2017-05-01T10:00:00+08:00",
             agency_id="FS-COUNTER-3", event_id="e-c1"),
        # Before the window opened (rule 2).
        cert("C-2", "F-1", "COUNTER", performed_at="2017-03-10T10:00:00+08:00",
             agency_id="FS-COUNTER-3", event_id="e-c2"),
        # A form for a certification that does not need one.
        docs("C-2", "F-1", recorded_at="2017-05-02T10:00:00+08:00", event_id="e-d2"),
        death("F-1", date_of_death="2017-06-01", recorded_at="2017-06-05T10:00:00+08:00",
              event_id="e-x1"),
        # A second death report.
        death("F-1", date_of_death="2017-06-01", recorded_at="2017-06-06T10:00:00+08:00",
              event_id="e-x2"),
        # Nobody enrolled.
        cert("C-9", "NOBODY", "COUNTER", performed_at="2017-05-01T10:00:00+08:00",
             event_id="e-c9"),
    ]


def test_replay_gives_one_verdict_per_reported_rejection() -> None:
    lines = _lines()
    # The same certification delivered twice: a duplicate, decided once, not reported.
    result = replay_lines([*lines, lines[2]], until=dt.date(2017, 12, 31))
    got = [(v["judged_event_id"], v["reason"]) for v in result.verdicts]
    assert got == [
        ("e-c1", reasons.CHANNEL_NOT_ALLOWED),
        ("e-c2", reasons.OUTSIDE_WINDOW),
        ("e-d2", reasons.DOCUMENTS_NOT_REQUIRED),
        ("e-x2", reasons.DEATH_ALREADY_RECORDED),
        ("e-c9", reasons.UNKNOWN_RETIREE),
    ]
    assert [r["reason"] for r in result.rejections][-1] == reasons.DUPLICATE_EVENT
    assert result.stats.verdicts == 5 and result.stats.rejected == 6
    first = result.verdicts[0]
    assert first["reported_by"] == "FS-COUNTER-3" and first["agency_id"] == "FS-COUNTER-3"
    assert first["certification_id"] == "C-1" and first["policy"] == "foshan-2017"
    assert first["performed_at"] == "2017-05-01T10:00:00+08:00"
    assert first["recorded_at"] == "2017-05-01T10:00:00+08:00"  # the judged event's
    for line in result.verdicts:  # valid interchange events, that encode and decode
        event = parse_event(json.loads(json.dumps(line)), allowed=("EventRejected",))
        assert codec.decode(codec.encode(event)) == event


def test_the_worker_step_carries_the_same_verdicts_as_replay() -> None:
    lines = _lines()
    replayed = replay_lines(lines, until=dt.date(2017, 12, 31)).verdicts
    part = PartitionCampaign.fresh(POLICY, 0)
    live = []
    for n, line in enumerate(lines):
        step = part.decide(parse_line(line), f"events/0@{n}")
        live += step.verdicts
        assert len(step.verdicts) == (step.rejection is not None)
    assert [json.loads(json.dumps(v, default=str))["event_id"] for v in live] == [
        v["event_id"] for v in replayed]
    assert [v["reason"] for v in live] == [v["reason"] for v in replayed]


def test_a_verdict_id_depends_on_the_event_and_the_reason_only() -> None:
    event = parse_line(cert("C-1", "G-1", "COUNTER", performed_at="2017-05-01T10:00:00+08:00",
                            event_id="e-1"))
    a = verdict(event, reasons.CHANNEL_NOT_ALLOWED, POLICY)
    b = verdict(dict(event), reasons.CHANNEL_NOT_ALLOWED, POLICY)
    c = verdict(event, reasons.OUTSIDE_WINDOW, POLICY)
    assert a is not None and b is not None and c is not None
    assert a["event_id"] == b["event_id"] != c["event_id"]
    no_id = parse_line(cert("C-1", "G-1", "COUNTER",
                            performed_at="2017-05-01T10:00:00+08:00", event_id=None))
    d = verdict(no_id, reasons.CHANNEL_NOT_ALLOWED, POLICY)
    assert d is not None and d["judged_event_id"] is None
    assert d["event_id"] == verdict(no_id, reasons.CHANNEL_NOT_ALLOWED, POLICY)["event_id"]


def test_a_redelivery_is_not_reported_and_an_unknown_reason_is_refused() -> None:
    event = parse_line(cert("C-1", "G-1", "COUNTER", performed_at="2017-05-01T10:00:00+08:00"))
    assert {reasons.DUPLICATE_EVENT} == NOT_REPORTED
    assert verdict(event, reasons.DUPLICATE_EVENT, POLICY) is None
    with pytest.raises(ValueError, match="unknown rejection reason 'NOPE'"):
        verdict(event, "NOPE", POLICY)


def test_a_redelivery_for_a_retiree_not_enrolled_gives_its_verdict_once() -> None:
    # UNKNOWN_RETIREE does not remember the event id: the second delivery is judged
    # again, with the same verdict id; replay writes it once, as the read model keeps it.
    line = cert("C-9", "NOBODY", "COUNTER", performed_at="2017-05-01T10:00:00+08:00",
                event_id="e-9")
    result = replay_lines([line, line])
    assert [r["reason"] for r in result.rejections] == [reasons.UNKNOWN_RETIREE] * 2
    assert len(result.verdicts) == 1 and result.stats.verdicts == 1
