"""Records of lifecert's topics made readable (lifecert.pipeline.readable, pure)."""

from __future__ import annotations

import json
import re

import pytest

from lifecert.events import codec
from lifecert.events.interchange import parse_line
from lifecert.events.personal import seal_personal
from lifecert.keystore.memory import MemoryKeyStore
from lifecert.pipeline.readable import (
    Decoded,
    Unreadable,
    decoded,
    line_as_json,
    line_for_people,
    replay_order,
    replayable,
    value_form,
)
from lifecert.pipeline.topic_reader import UnknownTopic, resolve
from lifecert.pipeline.topics import layout
from tests.helpers import cert, enroll

T = 1_494_000_000_000  # record timestamps (ms)


def test_avro_json_and_tombstones_are_read_and_garbage_is_refused_with_its_reason() -> None:
    event = parse_line(cert("C-1", "R-1", "COUNTER", performed_at="2017-05-01T10:00:00+08:00",
                            event_id="e-1"))
    form, encoding = value_form(codec.encode(event))
    assert encoding == "avro" and form is not None
    assert form["type"] == "CertificationRecorded"
    assert form["performed_at"] == "2017-05-01T10:00:00+08:00"
    assert value_form(b'{"position": 12}') == ({"position": 12}, "json")
    assert value_form(None) == (None, "none")
    with pytest.raises(Unreadable, match="neither Avro single-object"):
        value_form(b"\x00\x01garbage")
    with pytest.raises(Unreadable, match="cannot decode"):
        value_form(codec.MARKER + b"\x00" * 8 + b"\x01")
    assert decoded("t", 3, 9, T, b"R-1", b"\xff") == (
        "t", 3, 9, "neither Avro single-object (no C3 01 marker) nor JSON: 1 bytes starting ff")


def test_a_name_stays_sealed_and_dead_letter_bytes_are_base64() -> None:
    keys = MemoryKeyStore()
    enrolled = seal_personal(parse_line(enroll("R-1", event_id="e-0")), keys)
    record = decoded("lifecert.events", 0, 0, T, b"R-1", codec.encode(enrolled))
    assert isinstance(record, Decoded)
    text = line_for_people(record)
    assert "RetireeEnrolled" in text and "key=R-1" in text and text.startswith("0@0  2017-")
    assert record.value is not None and record.value["name"].startswith("lcp1.")
    dead = {
        "type": "DeadLetter", "event_id": "d-1", "recorded_at": enrolled["recorded_at"],
        "source_agency": "lifecert", "stage": "worker", "source_topic": "lifecert.events",
        "source_partition": 0, "source_offset": 5, "key": b"R-1", "value": b"\x00raw",
        "source_position": None, "reason": "bad",
    }
    form, _ = value_form(codec.encode(dead))
    assert form is not None and form["value"] == {"base64": "AHJhdw=="}
    line = json.loads(line_as_json(Decoded("x", 1, 2, T, None, form, "avro")))
    assert line["value"]["key"] == {"base64": "Ui0x"}  # b"R-1"


def _rec(partition: int, offset: int, at: str, kind: str = "CertificationRecorded") -> Decoded:
    return Decoded("e", partition, offset, T, "k", {"type": kind, "recorded_at": at}, "avro")


def test_replay_order_keeps_each_partitions_order_and_merges_by_recorded_at() -> None:
    p0 = [_rec(0, 0, "2017-05-01T10:00:00+08:00"), _rec(0, 1, "2017-04-01T10:00:00+08:00"),
          _rec(0, 2, "2017-06-01T10:00:00+08:00")]
    p1 = [_rec(1, 0, "2017-05-01T03:00:00+00:00"), _rec(1, 1, "2017-05-20T10:00:00+08:00")]
    merged = [(r.partition, r.offset) for r in replay_order([p0, p1])]
    assert merged == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 2)]
    assert not replayable(_rec(0, 0, "2017-05-01T10:00:00+08:00", kind="ClockTick"))
    assert replayable(p0[0])


def test_topics_are_named_by_role_or_name_and_an_unknown_one_is_refused() -> None:
    lay = layout("t1.")
    assert resolve(lay, "verdicts") == "t1.lifecert.verdicts"
    assert resolve(lay, "lifecert.events") == "t1.lifecert.events"
    assert resolve(lay, "t1.lifecert.status") == "t1.lifecert.status"
    with pytest.raises(UnknownTopic, match=re.escape(
            "'lifecert.evnts' is not one of lifecert's topics: events (t1.lifecert.events)")):
        resolve(lay, "lifecert.evnts")


def test_a_name_under_a_prefix_is_taken_without_one_and_refused_under_another() -> None:
    assert resolve(layout(""), "t42.lifecert.events") == "t42.lifecert.events"
    assert resolve(layout(""), "t42.lifecert.dead-letters") == "t42.lifecert.dead-letters"
    with pytest.raises(UnknownTopic, match=re.escape(
            "'t42.lifecert.events' is lifecert's topic events under the prefix 't42.', not "
            "under the prefix 't1.' given (--prefix or LIFECERT_TOPIC_PREFIX): give "
            "`events --prefix t42.`")):
        resolve(layout("t1."), "t42.lifecert.events")
    with pytest.raises(UnknownTopic,
                       match=re.escape("'t42.lifecert.evnts' is not one of lifecert's")):
        resolve(layout(""), "t42.lifecert.evnts")
