"""Hostile values in every field an agency sends: each becomes the item's or the cursor's
ordinary refusal, naming the field, never another exception (issue 11, item 7)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifecert.api.partner import CursorError, ItemError, decode_cursor, encode_cursor, prepare
from lifecert.api.protos import common_pb2
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.events import bounds
from lifecert.events.interchange import MalformedEvent
from tests.helpers import examples

NOW = dt.datetime(2017, 5, 3, tzinfo=dt.UTC)
FAST = settings(max_examples=examples(300), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Text as protobuf carries it (valid UTF-8: it refuses lone surrogates itself), with the
# characters hostile input favours.
_HOSTILE_CHARS = st.sampled_from(["\x00", "\n", "\r", "\t", "\x1b", "\u202e", "\ufeff", " ",
                                  "'", '"', "\\", "%", "/", ":", "é", "张", "\U0001f600"])
HOSTILE_TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
    st.lists(st.one_of(_HOSTILE_CHARS, st.sampled_from(["FS1", "C-1", "A"])),
             max_size=12).map("".join),
    st.integers(0, 5000).map(lambda n: "R" * n),
)


def _cert(**overrides: Any) -> px.SubmitItem:
    fields: dict[str, Any] = {
        "certification_id": "C-1", "retiree_id": "R1", "channel": common_pb2.MACAU_SSF,
        "performed_at": Timestamp(seconds=int(dt.datetime(2017, 5, 2, tzinfo=dt.UTC)
                                              .timestamp())),
    }
    fields.update(overrides)
    return px.SubmitItem(certification=px.Certification(**fields))


def _refused_naming(item: px.SubmitItem, field: str) -> None:
    """``prepare`` accepts the item, or refuses it with a reason that names ``field``."""
    try:
        prepared = prepare(0, item, "MO-SSF", NOW)
    except ItemError as exc:
        assert field in str(exc), str(exc)
        return
    except MalformedEvent as exc:
        assert exc.field == field, exc.describe()
        return
    value = prepared.event.get(field)
    if field in bounds.ID_FIELDS:
        assert bounds.id_problem(field, value) is None


@pytest.mark.parametrize("field", ["certification_id", "retiree_id"])
@FAST
@given(value=HOSTILE_TEXT)
def test_hostile_certification_ids(field: str, value: str) -> None:
    _refused_naming(_cert(**{field: value}), field)


@FAST
@given(value=HOSTILE_TEXT)
def test_hostile_documents_ids(value: str) -> None:
    at = Timestamp(seconds=int(dt.datetime(2017, 5, 2, tzinfo=dt.UTC).timestamp()))
    for field in ("certification_id", "retiree_id"):
        fields = {"certification_id": "C-1", "retiree_id": "R1", "received_at": at,
                  field: value}
        _refused_naming(px.SubmitItem(documents_received=px.DocumentsReceived(**fields)),
                        field)


@FAST
@given(value=HOSTILE_TEXT, retiree=HOSTILE_TEXT)
def test_hostile_death_reports(value: str, retiree: str) -> None:
    item = px.SubmitItem(death=px.DeathReport(retiree_id="R1", date_of_death=value))
    _refused_naming(item, "date_of_death")
    item = px.SubmitItem(death=px.DeathReport(retiree_id=retiree, date_of_death="2017-04-01"))
    _refused_naming(item, "retiree_id")


@FAST
@given(channel=st.integers(-(2**31), 2**31 - 1))
def test_unknown_channel_numbers_are_refused(channel: int) -> None:
    _refused_naming(_cert(channel=channel), "channel")


@FAST
@given(seconds=st.integers(-(2**63), 2**63 - 1), nanos=st.integers(-(2**31), 2**31 - 1))
def test_timestamps_out_of_range_are_refused(seconds: int, nanos: int) -> None:
    _refused_naming(_cert(performed_at=Timestamp(seconds=seconds, nanos=nanos)), "performed_at")


@pytest.mark.parametrize(
    ("item", "words"),
    [
        (_cert(retiree_id="FS\x00001"), "retiree_id"),
        (_cert(certification_id="C 1"), "certification_id"),
        (_cert(channel=999), "channel 999 is not a channel"),
        (_cert(performed_at=Timestamp(seconds=-62135596800)), "year 1 is out of range"),
        (_cert(performed_at=Timestamp(seconds=10**12)), "performed_at is not a valid time"),
        (px.SubmitItem(death=px.DeathReport(retiree_id="R1", date_of_death="20170401")),
         "YYYY-MM-DD"),
        (px.SubmitItem(death=px.DeathReport(retiree_id="R1", date_of_death="0999-04-01")),
         "date_of_death: year 999 is out of range"),
    ],
)
def test_hostile_items_examples(item: px.SubmitItem, words: str) -> None:
    with pytest.raises(ItemError, match=words):
        prepare(0, item, "MO-SSF", NOW)


# --------------------------------------------------------------------------- cursors

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=12,
)


def _cursor_of(body: bytes) -> str:
    return "c1." + base64.urlsafe_b64encode(body).decode().rstrip("=")


def _decodes_or_refuses(cursor: str) -> None:
    try:
        positions = decode_cursor(cursor, {"t.status", "t.pay"})
    except CursorError:
        return
    for parts in positions.values():
        for partition, offset in parts.items():
            assert type(partition) is int and partition >= 0
            assert type(offset) is int and 0 <= offset <= bounds.LONG_MAX


@FAST
@given(body=_JSON)
def test_cursor_of_any_json_is_decoded_or_refused(body: Any) -> None:
    _decodes_or_refuses(_cursor_of(json.dumps(body).encode()))
    _decodes_or_refuses(_cursor_of(json.dumps({"t.status": body}).encode()))
    _decodes_or_refuses(_cursor_of(json.dumps({"t.status": {"0": body}}).encode()))


@FAST
@given(text=st.text(max_size=200), raw=st.binary(max_size=200))
def test_cursor_of_any_text_or_bytes_is_decoded_or_refused(text: str, raw: bytes) -> None:
    _decodes_or_refuses(text)
    _decodes_or_refuses("c1." + text)
    _decodes_or_refuses(_cursor_of(raw))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,  # deeper than json's recursion limit, within 10,000
        b'{"t.status": {"0": 1e400}}',  # infinity
        b'{"t.status": {"0": NaN}}',
        b'{"t.status": {"0": true}}',
        b'{"t.status": {"0": 9223372036854775808}}',  # 2**63: no Kafka offset
        b'{"t.status": {" 1": 5}}',
        b'{"t.status": {"\\u0661": 5}}',  # an Arabic-Indic digit one: int() takes it
        b'{"t.status": {"-1": 5}}',
        b'{"t.status": {"0": -1}}',
        b'{"t.status": [1, 2]}',
        b'"t.status"',
    ],
)
def test_hostile_cursors_are_refused(body: bytes) -> None:
    with pytest.raises(CursorError, match="not a lifecert cursor"):
        decode_cursor(_cursor_of(body), {"t.status"})


def test_cursors_still_round_trip() -> None:
    positions = {"t.status": {0: 5, 1: bounds.LONG_MAX}, "t.pay": {3: 0}}
    assert decode_cursor(encode_cursor(positions), {"t.status", "t.pay"}) == positions
