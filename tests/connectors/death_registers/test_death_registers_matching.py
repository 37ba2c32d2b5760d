"""The comparison of register rows with the roster: each category, each refusal, and the
same death in two registers being one death. Pure: no broker, no files."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from connectors.death_registers import formats
from connectors.death_registers.identity import (
    Digester,
    IdentityError,
    check_digit,
    normal_citizen_id,
    normal_name,
)
from connectors.death_registers.matching import (
    Death,
    Enrolled,
    Kind,
    Roster,
    death_event,
    death_key,
    match,
)
from lifecert.events.time import SHANGHAI

D = Digester(bytes(range(32)))
ID_A = "44060419400101123" + check_digit("44060419400101123")
ID_B = "44060419400101456" + check_digit("44060419400101456")
ID_C = "44060419400202123" + check_digit("44060419400202123")
AT = datetime(2017, 4, 2, 10, 0, tzinfo=SHANGHAI)


def enrolled(rid: str, cid: str, name: str, born: date) -> Enrolled:
    return Enrolled(rid, D.citizen_id(cid), D.name(name), born)


ROSTER = Roster([
    enrolled("FS001", ID_A, "李秀英", date(1940, 1, 1)),
    enrolled("FS002", ID_B, "陈伟", date(1940, 1, 1)),
    enrolled("FS003", ID_C, "陈伟", date(1940, 1, 1)),
])


def death(cid: str | None, name: str, born: date | None = date(1940, 1, 1),
          source: str = "CIVIL_AFFAIRS") -> Death:
    return Death(source, "X:1", D.citizen_id(cid) if cid else None, D.name(name), born,
                 date(2017, 4, 1), AT)


def test_id_and_name_match_is_exact() -> None:
    found = match(death(ID_A, "李秀英"), ROSTER)
    assert found.kind is Kind.EXACT and found.retiree_ids == ("FS001",)


def test_name_spelt_with_spaces_or_full_width_letters_is_the_same_name() -> None:
    assert match(death(ID_A, " 李 秀英\u3000"), ROSTER).kind is Kind.EXACT
    assert normal_name("Ｌａｍ Wing-kei") == normal_name("lam wingkei")
    assert normal_name("艾力·买买提") == normal_name("艾力买买提")


def test_id_matching_with_another_name_goes_to_review() -> None:
    found = match(death(ID_A, "李秀兰"), ROSTER)
    assert found.kind is Kind.ID_NAME_DIFFERS and found.retiree_ids == ("FS001",)


def test_name_and_birth_without_id_go_to_review_with_every_namesake() -> None:
    found = match(death(None, "陈伟"), ROSTER)
    assert found.kind is Kind.NAME_BIRTH_ONLY and found.retiree_ids == ("FS002", "FS003")


def test_name_without_id_and_another_birth_date_is_nobody() -> None:
    assert match(death(None, "陈伟", date(1941, 1, 1)), ROSTER).kind is Kind.NONE
    assert match(death(None, "陈伟", None), ROSTER).kind is Kind.NONE


def test_an_id_of_nobody_enrolled_is_no_match_even_with_a_known_name() -> None:
    other = "44060419500101777" + check_digit("44060419500101777")
    assert match(death(other, "李秀英"), ROSTER).kind is Kind.NONE


def test_the_same_death_in_two_registers_has_one_key() -> None:
    a = death(ID_A, "李秀英", source="CIVIL_AFFAIRS")
    b = death(ID_A, "李秀英", source="HUKOU_CANCELLATION")
    ka = death_key(match(a, ROSTER).retiree_ids[0], a.date_of_death)
    kb = death_key(match(b, ROSTER).retiree_ids[0], b.date_of_death)
    assert ka == kb == "death:FS001:2017-04-01"
    assert death_event(a, "FS001")["source"] == "CIVIL_AFFAIRS"


def test_first_generation_ids_are_widened() -> None:
    assert normal_citizen_id("440604400101123") == "44060419400101123" + \
        check_digit("44060419400101123")
    assert normal_citizen_id(ID_A.lower()) == ID_A


@pytest.mark.parametrize(("text", "words"), [
    ("44060419400101123" + ("0" if ID_A[-1] != "0" else "1"), "check digit"),
    ("4406041940010112", "not a citizen id"),
    ("44060419400101\x0123X", "not a citizen id"),
    ("", "not a citizen id"),
])
def test_citizen_ids_refused(text: str, words: str) -> None:
    with pytest.raises(IdentityError, match=words):
        normal_citizen_id(text)


@pytest.mark.parametrize(("text", "words"), [
    ("  ", "empty"), ("\u202e李秀英", "control or format"), ("名" * 101, "longer")])
def test_names_refused(text: str, words: str) -> None:
    with pytest.raises(IdentityError, match=words):
        normal_name(text)


def test_digests_depend_on_the_key_and_keep_ids_and_names_apart() -> None:
    other = Digester(bytes(32))
    assert D.citizen_id(ID_A) != other.citizen_id(ID_A)
    assert ID_A not in D.citizen_id(ID_A)
    with pytest.raises(ValueError, match="32 bytes"):
        Digester(b"short")


def mz(cid: str = ID_A, name: str = "李秀英", born: str = "19400101", died: str = "20170401",
       at: str = "20170402100000") -> bytes:
    return (cid.encode().ljust(18) + name.encode("gbk").ljust(30) + born.encode() +
            died.encode() + at.encode() + b"FS0001\r\n")


def test_each_format_parses_to_the_same_death() -> None:
    a = formats.parse_mz(mz(), "MZ:1", D)
    b = formats.parse_ga(f"ZX1,{ID_A},李秀英,1940-01-01,2017-04-01,2017-04-02 10:00:00,P1\r\n"
                         .encode(), "GA:2", D)
    c = formats.parse_wj(json.dumps({
        "cert_no": "Q1", "id_no": ID_A, "name": "李秀英", "birth_date": "1940-01-01",
        "death_time": "2017-03-31T23:30:00Z", "issued_at": "2017-04-02T10:00:00+08:00",
        "hospital": "H1"}).encode(), "WJ:1", D)
    assert {(x.id_digest, x.name_digest, x.birth_date, x.date_of_death, x.reported_at)
            for x in (a, b, c)} == {(D.citizen_id(ID_A), D.name("李秀英"), date(1940, 1, 1),
                                     date(2017, 4, 1), AT)}
    assert (a.source, b.source, c.source) == ("CIVIL_AFFAIRS", "HUKOU_CANCELLATION",
                                              "DEATH_CERTIFICATE")


def test_a_row_without_citizen_id_has_no_id_digest() -> None:
    assert formats.parse_mz(mz(cid=""), "MZ:1", D).id_digest is None


@pytest.mark.parametrize(("line", "field"), [
    (mz()[:-3] + b"\r\n", "line"),
    (mz(cid="4406041940010112X"), "身份证号"),
    (mz(name="") , "姓名"),
    (mz()[:18] + b"\xff" * 30 + mz()[48:], "姓名"),
    (mz(born="19401301"), "出生日期"),
    (mz(died="00010101"), "死亡日期"),
    (mz(died="20170403"), "死亡日期"),           # after its registration
    (mz(at="99991231235959"), "火化登记时间"),
])
def test_civil_affairs_rows_refused(line: bytes, field: str) -> None:
    with pytest.raises(formats.RowRejected) as caught:
        formats.parse_mz(line, "MZ:1", D)
    assert caught.value.field == field
    assert ID_A not in str(caught.value)


@pytest.mark.parametrize(("line", "field"), [
    (b"\xff\xfe,1\r\n", "line"),
    (b"ZX1,a,b\r\n", "line"),
    (f"ZX1,{ID_A},李秀英,1940/01/01,2017-04-01,2017-04-02 10:00:00,P1".encode(), "出生日期"),
    (f"ZX1,{ID_A},李秀英,1940-01-01,2017-04-01,2017-04-02T10:00:00+08:00,P1".encode(),
     "注销时间"),
])
def test_public_security_rows_refused(line: bytes, field: str) -> None:
    with pytest.raises(formats.RowRejected) as caught:
        formats.parse_ga(line, "GA:2", D)
    assert caught.value.field == field


@pytest.mark.parametrize(("line", "field"), [
    (b"[" * 5000 + b"]" * 5000, "line"),
    (b"[1]", "line"),
    (b'{"cert_no":"Q"}', "id_no"),
    (json.dumps({"cert_no": "Q", "id_no": 2**70, "name": "x", "birth_date": "1940-01-01",
                 "death_time": "2017-04-01T00:00:00+08:00",
                 "issued_at": "2017-04-02T00:00:00+08:00", "hospital": "H"}).encode(), "id_no"),
    ((b'{"cert_no":"Q","id_no":"","name":"x","birth_date":"1940-01-01","death_time":'
      b'"2017-04-01T00:00:00","issued_at":"2017-04-02T00:00:00+08:00","hospital":"H"}')
, "death_time"),
])
def test_hospital_rows_refused(line: bytes, field: str) -> None:
    with pytest.raises(formats.RowRejected) as caught:
        formats.parse_wj(line, "WJ:1", D)
    assert caught.value.field == field


def test_file_names_say_the_register() -> None:
    assert formats.register_of("MZ-20170410-001.dat").source == "CIVIL_AFFAIRS"  # type: ignore[union-attr]
    assert formats.register_of("MZ-20170410-001.csv") is None
    assert formats.register_of("../MZ-20170410-001.dat") is None


def test_the_standards_own_example_has_check_digit_x() -> None:
    assert check_digit("11010519491231002") == "X"
    assert normal_citizen_id("11010519491231002x") == "11010519491231002X"
