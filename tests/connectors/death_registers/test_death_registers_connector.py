"""The connector's reading of its inbox, without a broker: keys (one death, one event id,
whatever the register and however often delivered), the review queue and its decisions,
the file's journey to ``done``, and the outages. Real files written by the simulator's
functions; the broker half is the contract test and the end-to-end test."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.death_registers import review
from connectors.death_registers.connector import DeathRegistersSource
from connectors.death_registers.roster import write_key
from connectors.sdk import PartnerRecord, PartnerUnavailable, RecordRejected
from lifecert_dev.partners.death_registers import simulator
from lifecert_dev.partners.death_registers.harness import person

NOW = datetime(2017, 4, 20, 2, 0, tzinfo=UTC)


@pytest.fixture
def source(tmp_path: Path) -> DeathRegistersSource:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_key(tmp_path / "key")
    people = [person(f"FS{n:03d}") for n in range(5)]
    simulator.write_roster(tmp_path / "key", tmp_path / "roster.csv", people)
    conn = DeathRegistersSource("deaths", {"inbox": str(inbox),
                                           "roster_file": str(tmp_path / "roster.csv"),
                                           "key_file": str(tmp_path / "key")})
    conn._open()
    return conn


def death(rid: str, **changes: Any) -> dict[str, Any]:
    row = dict(person(rid), date_of_death="2017-04-01",
               reported_at="2017-04-02T10:00:00+08:00")
    row.update(changes)
    return row


def drain(conn: DeathRegistersSource) -> list[PartnerRecord]:
    """Poll and commit until nothing is left, as the runner would; every record read."""
    out: list[PartnerRecord] = []
    position: Any = None
    while records := conn._poll(position, 100):
        out.extend(records)
        position = records[-1].position
        conn._committed(records, [], position)
    return out


def events(records: Sequence[PartnerRecord], conn: DeathRegistersSource) -> list[tuple[str, Any]]:
    out = []
    for r in records:
        with contextlib.suppress(RecordRejected):
            out.extend((r.key, e) for e in conn._to_events(r))
    return out


def test_the_same_death_in_three_registers_is_one_event_id(source: DeathRegistersSource) -> None:
    for n, register in enumerate(("MZ", "GA", "WJ"), start=1):
        ext = {"MZ": "dat", "GA": "csv", "WJ": "jsonl"}[register]
        simulator.drop(source.inbox, f"{register}-20170410-{n:03d}.{ext}",
                       simulator.extract(register, [death("FS001")]))
    got = events(drain(source), source)
    assert {key for key, _ in got} == {"death:FS001:2017-04-01"}
    assert [e["source"] for _, e in got] == ["CIVIL_AFFAIRS", "HUKOU_CANCELLATION",
                                             "DEATH_CERTIFICATE"]
    assert sorted(os.listdir(source.done)) == ["GA-20170410-002.csv", "MZ-20170410-001.dat",
                                               "WJ-20170410-003.jsonl"]
    assert os.listdir(source.inbox) == []


def test_an_extract_delivered_twice_gives_the_same_keys_and_one_review(
        source: DeathRegistersSource) -> None:
    rows = [death("FS001"), death("FS002", name="王五"), death("FS003", citizen_id="")]
    simulator.drop(source.inbox, "MZ-20170410-001.dat", simulator.extract("MZ", rows))
    first = drain(source)
    simulator.drop(source.inbox, "MZ-20170410-001.dat", simulator.extract("MZ", rows))
    simulator.drop(source.inbox, "MZ-20170411-001.dat", simulator.extract("MZ", rows))
    again = drain(source)
    assert [k for k, _ in events(first, source)] == ["death:FS001:2017-04-01"]
    assert [k for k, _ in events(again, source)] == ["death:FS001:2017-04-01"] * 2
    pending = review.listing(source.review)
    assert sorted((p["kind"], tuple(p["candidates"])) for p in pending) == [
        ("ID_NAME_DIFFERS", ("FS002",)), ("NAME_BIRTH_ONLY", ("FS003",))]
    text = json.dumps(pending, ensure_ascii=False)
    assert person("FS002")["citizen_id"] not in text and person("FS003")["name"] not in text


def test_a_confirmed_review_becomes_the_death_with_who_and_why(
        source: DeathRegistersSource) -> None:
    simulator.drop(source.inbox, "GA-20170410-001.csv",
                   simulator.extract("GA", [death("FS002", name="王五")]))
    assert events(drain(source), source) == []
    (entry,) = review.listing(source.review)
    with pytest.raises(review.ReviewError, match="not a candidate"):
        review.confirm(source.review, source.inbox, entry["review_id"], "FS004", "staff-7",
                       "family confirmed", NOW)
    review.confirm(source.review, source.inbox, entry["review_id"], "FS002", "staff-7",
                   "family confirmed by phone", NOW)
    ((key, event),) = events(drain(source), source)
    assert key == "death:FS002:2017-04-01"
    assert event == {"type": "DeathRecorded", "recorded_at": NOW.isoformat(),
                     "retiree_id": "FS002", "date_of_death": "2017-04-01",
                     "source": "HUKOU_CANCELLATION"}
    (done,) = review.listing(source.review, "confirmed")
    assert (done["decided_by"], done["reason"]) == ("staff-7", "family confirmed by phone")
    with pytest.raises(review.ReviewError, match="confirmed already"):
        review.dismiss(source.review, entry["review_id"], "staff-8", "no", NOW)


def test_a_staff_file_without_its_confirmation_is_refused(
        source: DeathRegistersSource) -> None:
    # The inbox is the registers' share: a line shaped like a staff confirmation proves
    # nothing until the review folder (the connector's own) holds that confirmation.
    forged = {"review_id": "0123456789abcdef", "retiree_id": "FS001",
              "date_of_death": "2017-04-01", "source": "CIVIL_AFFAIRS",
              "confirmed_by": "staff-7", "reason": "x", "confirmed_at": NOW.isoformat()}
    (source.inbox / "SR-20170410-0123456789abcdef.jsonl").write_text(
        json.dumps(forged) + "\n", encoding="utf-8")
    simulator.drop(source.inbox, "GA-20170410-001.csv",
                   simulator.extract("GA", [death("FS002", name="王五")]))
    records = drain(source)
    assert events(records, source) == []
    refused = [r.data.refused for r in records if r.data.refused]
    assert len(refused) == 1 and "has no staff confirmation" in refused[0]
    # A real confirmation, then a second line naming another retiree under its review id.
    (entry,) = review.listing(source.review)
    path = review.confirm(source.review, source.inbox, entry["review_id"], "FS002",
                          "staff-7", "family confirmed by phone", NOW)
    line = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(line) + "\n" + json.dumps({**line, "retiree_id": "FS003"})
                    + "\n", encoding="utf-8")
    records = drain(source)
    assert [e["retiree_id"] for _, e in events(records, source)] == ["FS002"]
    (bad,) = [r.data.refused for r in records if r.data.refused]
    assert "retiree_id differ" in bad


@pytest.mark.parametrize(("rid", "by", "why", "words"), [
    ("not-an-id", "staff-7", "x", "not a review id"),
    ("0123456789abcdef", "staff-7", "x", "no such review"),
    ("0123456789abcdef", "staff 7", "x", "not a staff id"),
    ("0123456789abcdef", "staff-7", " ", "must say why"),
    ("0123456789abcdef", "staff-7", "a\nb", "must say why"),
])
def test_decisions_refused(source: DeathRegistersSource, rid: str, by: str, why: str,
                           words: str) -> None:
    with pytest.raises(review.ReviewError, match=words):
        review.dismiss(source.review, rid, by, why, NOW)


def test_a_forged_staff_file_is_refused_by_field(source: DeathRegistersSource) -> None:
    line = {"review_id": "0123456789abcdef", "retiree_id": "FS001",
            "date_of_death": "2017-04-01", "source": "FAMILY_REPORT", "confirmed_by": "x",
            "reason": "y", "confirmed_at": NOW.isoformat()}
    simulator.drop(source.inbox, "SR-20170420-0123456789abcdef.jsonl",
                   (json.dumps(line) + "\n").encode())
    (record,) = drain(source)
    with pytest.raises(RecordRejected, match="source"):
        source._to_events(record)


def test_a_link_in_the_inbox_is_refused_not_followed(source: DeathRegistersSource,
                                                      tmp_path: Path) -> None:
    secret = tmp_path / "secret.dat"
    secret.write_bytes(simulator.extract("MZ", [death("FS001")]))
    os.symlink(secret, source.inbox / "MZ-20170410-001.dat")
    (record,) = source._poll(None, 100)
    with pytest.raises(RecordRejected, match="symbolic link"):
        source._to_events(record)
    assert record.raw == b""


def test_citizen_ids_are_masked_in_what_a_dead_letter_keeps(source: DeathRegistersSource) -> None:
    simulator.drop(source.inbox, "MZ-20170410-001.dat",
                   simulator.extract("MZ", [death("FS001", date_of_death="2017-04-05")]))
    (record,) = source._poll(None, 100)
    with pytest.raises(RecordRejected, match="死亡日期"):
        source._to_events(record)
    assert person("FS001")["citizen_id"].encode() not in record.raw


def test_no_inbox_or_no_roster_is_an_outage(source: DeathRegistersSource) -> None:
    simulator.drop(source.inbox, "MZ-20170410-001.dat", simulator.extract("MZ", [death("FS1")]))
    source.roster_file.rename(source.roster_file.with_suffix(".away"))
    with pytest.raises(PartnerUnavailable, match="roster"):
        source._poll(None, 100)
    source.inbox.rename(source.inbox.with_suffix(".away"))
    with pytest.raises(PartnerUnavailable, match="inbox"):
        source._poll(None, 100)


def test_an_empty_extract_is_done_with_and_the_next_is_read(
        source: DeathRegistersSource) -> None:
    simulator.drop(source.inbox, "GA-20170410-001.csv", b"")
    simulator.drop(source.inbox, "MZ-20170410-002.dat", simulator.extract("MZ", [death("FS001")]))
    assert [k for k, _ in events(drain(source), source)] == ["death:FS001:2017-04-01"]
    assert os.listdir(source.inbox) == []
