"""The mailroom register's lines: each refusal names its field; the writer's lock and its
refusal of a second registration of the same form (connectors/mailroom/register.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mailroom import register as mr

GOOD: dict[str, Any] = {
    "v": 1, "registered_at": "2017-05-05T10:02:11+08:00", "certification_id": "C-77120",
    "agency_id": "CC-ZUMIAO-03", "retiree_id": "FS000104729", "form_number": 1,
    "postmarked_on": "2017-05-02", "received_at": "2017-05-05T00:00:00+08:00",
    "scan_sha256": "9f" * 32}


def line(**changes: Any) -> bytes:
    return json.dumps({**GOOD, **changes}).encode() + b"\n"


def test_a_good_line_and_its_event() -> None:
    reg = mr.parse_line(line())
    event = reg.event()
    assert event == {"type": "CertificationDocumentsReceived",
                     "recorded_at": "2017-05-05T10:02:11+08:00", "certification_id": "C-77120",
                     "retiree_id": "FS000104729", "received_at": "2017-05-05T00:00:00+08:00",
                     "agency_id": "CC-ZUMIAO-03", "form_number": 1,
                     "postmarked_on": "2017-05-02", "scan_sha256": "9f" * 32}
    assert mr.parse_line(reg.line()) == reg  # the writer's line reads back the same


def test_nullable_fields() -> None:
    reg = mr.parse_line(line(agency_id=None, postmarked_on=None, scan_sha256=None))
    assert (reg.agency_id, reg.postmarked_on, reg.scan_sha256) == (None, None, None)


@pytest.mark.parametrize(("raw", "words"), [
    (line(v=2), "v: 2 is not register version 1"),
    (line(form_number=0), "form_number: 0 is not a form number"),
    (line(form_number="1"), "form_number: '1' is not a form number"),
    (line(form_number=True), "form_number: True"),
    (line(scan_sha256="9F" * 32), "scan_sha256"),
    (line(scan_sha256=""), "scan_sha256"),
    (line(registered_at=None), "registered_at: missing"),
    (line(registered_at="2017-05-05T10:02:11"), "registered_at"),
    (line(certification_id="C 1"), "certification_id"),
    (line(retiree_id=""), "retiree_id"),
    (line(agency_id="A\u202e"), "agency_id"),
    (line(received_at="yesterday"), "received_at"),
    (line(postmarked_on="2017-5-2"), "postmarked_on"),
    (line(postmarked_on="2017-05-06"), "postmarked_on 2017-05-06 is after the form arrived"),
    (line(received_at="2017-05-06T00:00:00+08:00"), "received_at 2017-05-05T16:00:00+00:00 is "
                                                    "after registered_at"),
    (line(name="李秀英"), "unknown key(s) ['name']"),
    (b"\xff\xfe\n", "the line is not UTF-8"),
    (b"{\n", "the line is not JSON"),
    (b"[1]\n", "not a JSON object"),
    (b"[" * 2000 + b"]" * 2000, "nested too deeply"),
    (b" " * 5000, "at most 4,096"),
])
def test_each_refusal_names_its_field(raw: bytes, words: str) -> None:
    with pytest.raises(mr.RegistrationRefused) as caught:
        mr.parse_line(raw)
    assert words in str(caught.value), str(caught.value)


def test_append_refuses_the_same_form_twice_unless_again(tmp_path: Path) -> None:
    register = tmp_path / "mailroom" / "register.jsonl"
    reg = mr.parse_line(line())
    assert mr.append(register, reg) == 0
    with pytest.raises(mr.RegistrationRefused, match="already registered at"):
        mr.append(register, reg)
    other_agency = mr.parse_line(line(agency_id="NH-GUICHENG-01"))
    second = mr.append(register, other_agency)
    assert second == len(reg.line())
    mr.append(register, reg, again=True)
    third = second + len(other_agency.line())
    assert [offset for offset, _ in mr.lines(register)] == [0, second, third]
    with register.open("ab") as fh:
        fh.write(b'{"v": 1')  # a line still being written is not a line yet
    assert len(list(mr.lines(register))) == 3


_JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
              st.text(max_size=40), st.sampled_from(["0001-01-01", "9999-12-31T23:59:59+14:00",
                                                      "ab" * 32, "C\x00"])),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(mr.KEYS), value=_JSONISH)
def test_hostile_values_are_refused_or_read_valid(key: str, value: Any) -> None:
    raw = json.dumps({**GOOD, key: value}).encode() + b"\n"
    try:
        reg = mr.parse_line(raw)
    except mr.RegistrationRefused:
        return
    assert reg.form_number in mr.FORMS
    assert reg.scan_sha256 is None or mr.SHA256_RE.fullmatch(reg.scan_sha256)
    assert reg.received_at <= reg.registered_at
