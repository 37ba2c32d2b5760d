"""The teams' results file and its row checks (connectors.home_visits.batch) and the events
a row becomes (connectors.home_visits.connector.events_of): pure, no broker."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from connectors.death_registers import review
from connectors.home_visits import batch as hb
from connectors.home_visits.connector import events_of
from lifecert.events.catalogue import EVENT_TYPES, PARTNER_TYPES
from lifecert.events.interchange import parse_event
from lifecert_dev.partners.home_visits.simulator import encode

ARRIVED = date(2017, 5, 2)
AT = datetime(2017, 5, 2, 2, 0, tzinfo=UTC)
PHONE, ADDRESS = "0757-83331234", "佛山市禅城区祖庙路 8 号"


def rows(*cells: dict[str, str]) -> tuple[hb.Row, ...]:
    return hb.read_batch(encode(cells))


def good(**changes: str) -> dict[str, str]:
    row = {"visit_id": "V-1", "retiree_id": "FS000000001", "visited_on": "2017-04-28",
           "result": "ALIVE"}
    row.update(changes)
    return row


def check(**changes: str) -> hb.Report:
    [row] = rows(good(**changes))
    return hb.check_row(row, ARRIVED, {})


def test_alive_with_contact_is_a_certification_a_contact_update_and_a_report() -> None:
    report = check(phone=PHONE, address=ADDRESS)
    events = events_of("HV-CHANCHENG", AT, report)
    assert [e["type"] for e in events] == ["CertificationRecorded", "ContactDetailsUpdated",
                                           "HomeVisitReported"]
    cert, contact, reported = events
    assert (cert["channel"], cert["agency_id"], cert["certification_id"]) == \
        ("HOME_VISIT", "HV-CHANCHENG", "V-1")
    assert cert["performed_at"] == "2017-04-28T00:00:00+08:00"
    assert (contact["phone"], contact["address"], contact["channel"]) == \
        (PHONE, ADDRESS, "HOME_VISIT")
    assert reported["outcome"] == "ALIVE"
    for event in events:
        parse_event(dict(event), allowed=EVENT_TYPES + PARTNER_TYPES)


def test_alive_without_contact_makes_no_contact_update() -> None:
    assert [e["type"] for e in events_of("HV-SHUNDE", AT, check())] == \
        ["CertificationRecorded", "HomeVisitReported"]
    assert [e["type"] for e in events_of("HV-SHUNDE", AT, check(phone=PHONE))] == \
        ["CertificationRecorded", "ContactDetailsUpdated", "HomeVisitReported"]


@pytest.mark.parametrize("outcome", ["NOT_FOUND", "DECEASED"])
def test_not_found_and_deceased_certify_nothing_and_record_no_death(outcome: str) -> None:
    extra = {"date_of_death": "2017-04-20"} if outcome == "DECEASED" else {}
    events = events_of("HV-NANHAI", AT, check(result=outcome, **extra))
    assert [(e["type"], e["outcome"]) for e in events] == [("HomeVisitReported", outcome)]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"visit_id": "V 1"}, "line 2: visit_id"),
        ({"retiree_id": ""}, "retiree_id"),
        ({"visited_on": "2017/04/28"}, "visited_on '2017/04/28' is not a date"),
        ({"visited_on": "2017-05-03"}, "after the day the file arrived"),
        ({"visited_on": "2016-04-01"}, "more than a year before"),
        ({"result": "alive"}, "result 'alive' must be one of ALIVE, NOT_FOUND, DECEASED"),
        ({"result": "DECEASED"}, "date_of_death is required"),
        ({"result": "DECEASED", "date_of_death": "2017-04-29"}, "after visited_on"),
        ({"date_of_death": "2017-04-20"}, "only for result DECEASED"),
        ({"result": "NOT_FOUND", "phone": PHONE}, "only for result ALIVE"),
        ({"phone": "call 110"}, "phone must be digits"),
        ({"phone": "1" * 40}, "phone has 40 characters"),
        ({"address": "x" * 201}, "address has 201 characters"),
        ({"address": "佛山\x1b[2J"}, "address holds control characters"),
    ],
)
def test_each_refusal_names_the_line_and_the_column(changes: dict[str, str],
                                                    words: str) -> None:
    with pytest.raises(hb.RowRefused) as caught:
        check(**changes)
    assert words in caught.value.reason


def test_a_refusal_never_holds_the_phone_or_the_address() -> None:
    secret_phone, secret_address = "13800138000" + "9" * 30, "秘密地址" * 60
    for changes in ({"phone": secret_phone}, {"address": secret_address},
                    {"result": "NOT_FOUND", "phone": "13800138000"},
                    {"visited_on": "bad", "phone": "13800138000", "address": "秘密地址"}):
        [row] = rows(good(**changes))
        with pytest.raises(hb.RowRefused) as caught:
            hb.check_row(row, ARRIVED, {})
        assert "13800138000" not in caught.value.reason
        assert "秘密" not in caught.value.reason
        raw = hb.row_raw(row)
        assert b"13800138000" not in raw and "秘密".encode() not in raw
        assert b"***" in raw


def test_a_visit_id_repeated_in_a_file_is_refused_the_first_kept() -> None:
    first, second = rows(good(), good(retiree_id="FS000000002"))
    seen: dict[str, int] = {}
    assert hb.check_row(first, ARRIVED, seen).retiree_id == "FS000000001"
    with pytest.raises(hb.RowRefused, match="repeats line 2"):
        hb.check_row(second, ARRIVED, seen)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"visit_id,retiree_id\r\nV-1,FS1\r\n", "line 1 must be the header"),
        ("visit_id,retiree_id,visited_on,result,date_of_death,phone,address\r\n"
         "V-1,张".encode("gbk"), "not UTF-8"),
        (b"", "line 1 must be the header"),
        (b"\x00\x01", "NUL"),
    ],
)
def test_a_file_that_is_no_results_file_is_refused_whole(data: bytes, words: str) -> None:
    with pytest.raises(hb.BatchRefused, match=words):
        hb.read_batch(data)


def test_a_long_cell_is_the_rows_problem_not_the_files() -> None:
    [row] = rows(good(address="佛" * 200_000))
    with pytest.raises(hb.RowRefused, match="address has 200000 characters"):
        hb.check_row(row, ARRIVED, {})


def test_a_death_a_team_found_waits_once_in_the_review_queue_and_staff_confirm_it(
        tmp_path: Path) -> None:
    """The death-registers review queue takes the team's report (one entry per team and
    visit however often it is read); `lifecert review deaths` lists it and a confirmation
    becomes the staff line the death-registers connector turns into a DeathRecorded with
    source HOME_VISIT."""
    folder, inbox = tmp_path / "review", tmp_path / "inbox"
    inbox.mkdir()
    rid, path = review.write_home_visit(folder, "HV-SHUNDE", "V-9", "FS000000009",
                                        date(2017, 5, 30), AT)
    assert path is not None
    assert review.write_home_visit(folder, "HV-SHUNDE", "V-9", "FS000000009",
                                   date(2017, 5, 30), AT) == (rid, None)
    shown = subprocess.run([sys.executable, "-m", "lifecert.cli", "review", "deaths", "list",
                            "--review-dir", str(folder)], capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"{rid}  HOME_VISIT_DECEASED" in shown.stdout and "1 review(s)" in shown.stdout
    line = review.confirm(folder, inbox, rid, "FS000000009", "STAFF-7", "checked with the "
                          "family", datetime(2017, 6, 2, 2, 0, tzinfo=UTC))
    event = review.confirmation_event(line.read_bytes())
    assert (event["type"], event["source"], event["date_of_death"]) == \
        ("DeathRecorded", "HOME_VISIT", "2017-05-30")
