"""The connectors' health, the pure parts: heartbeats parsed and refused, the dead letters'
index (no payload, no reason), the projections' batch of both topics, and the dashboard's
lines with stale connectors flagged. End to end: test_projections.py (the broker and
PostgreSQL) and the connector kit (a real connector's heartbeat)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from connectors.sdk import heartbeat as sdk_heartbeat
from lifecert.events.codec import encode
from lifecert.pipeline.topics import CONNECTOR_STATUS, DEAD_LETTERS, layout
from projections.health import (
    STALE_AFTER,
    UNREADABLE,
    ConnectorRow,
    HeartbeatError,
    connector_rows,
    dead_letter_entry,
    parse_heartbeat,
)
from projections.records import BatchBuilder

NOW = datetime(2017, 6, 1, 10, 0, tzinfo=UTC)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def beat(kind: str = "pension-master", lag: int | None = 3,
         at: datetime = NOW) -> bytes:
    return sdk_heartbeat.heartbeat_value(kind, lag, at)


def letter(stage: str, event_id: str = "d1", reason: str = "R1 张三 44060419500315002X",
           value: bytes = b"secret") -> bytes:
    return encode({"type": "DeadLetter", "event_id": event_id, "recorded_at": NOW,
                   "source_agency": None, "stage": stage, "source_topic": "lifecert.events",
                   "source_partition": 0, "source_offset": 7, "key": b"R1", "value": value,
                   "source_position": None, "reason": reason})


def test_a_heartbeat_is_parsed() -> None:
    got = parse_heartbeat("master", beat(), NOW)
    assert (got.connector, got.kind, got.lag, got.measured_at) == ("master", "pension-master",
                                                                    3, NOW)
    assert parse_heartbeat("m", beat(lag=None), NOW).lag is None


@pytest.mark.parametrize(("value", "expected"), [
    (b"not json", "not JSON"),
    (b"[1]", "not a JSON object"),
    (json.dumps({"kind": "", "lag": 1, "measured_at": NOW.isoformat()}).encode(), "'kind'"),
    (json.dumps({"kind": "k", "lag": -1, "measured_at": NOW.isoformat()}).encode(), "'lag'"),
    (json.dumps({"kind": "k", "lag": True, "measured_at": NOW.isoformat()}).encode(), "'lag'"),
    (json.dumps({"kind": "k", "lag": 1.5, "measured_at": NOW.isoformat()}).encode(), "'lag'"),
    (json.dumps({"kind": "k", "lag": 1, "measured_at": "2017-06-01T10:00:00"}).encode(),
     "'measured_at' must be a time with its offset"),
    (json.dumps({"kind": "k\x00", "lag": 1, "measured_at": NOW.isoformat()}).encode(),
     "'kind'"),
    (beat(at=NOW + timedelta(hours=1)), "in the future"),
])
def test_a_bad_heartbeat_is_refused_saying_what(value: bytes, expected: str) -> None:
    with pytest.raises(HeartbeatError, match=expected):
        parse_heartbeat("master", value, NOW)


def test_a_heartbeat_of_a_hostile_name_is_refused() -> None:
    with pytest.raises(HeartbeatError, match="the key"):
        parse_heartbeat("x" * 201, beat(), NOW)


def test_a_dead_letters_entry_keeps_no_payload_and_no_reason() -> None:
    entry = dead_letter_entry("lifecert.dead-letters", 0, 5, letter("connector:master"))
    assert (entry.letter_id, entry.stage, entry.source_topic, entry.recorded_at) == (
        "d1", "connector:master", "lifecert.events", NOW)
    assert "张三" not in repr(entry) and "secret" not in repr(entry)
    junk = dead_letter_entry("lifecert.dead-letters", 0, 6, b"\xc3\x01junk")
    assert junk.stage == UNREADABLE and junk.recorded_at is None
    # the same position gives the same id: a record read again counts once
    assert junk == dead_letter_entry("lifecert.dead-letters", 0, 6, None)
    assert junk != dead_letter_entry("lifecert.dead-letters", 0, 7, None)


def test_the_projections_batch_of_heartbeats_and_dead_letters() -> None:
    topics = layout("t.")
    status, dead = topics[CONNECTOR_STATUS].name, topics[DEAD_LETTERS].name
    builder = BatchBuilder(topics)
    for rec in (
        Rec(status, 0, 0, b"master", beat(lag=9, at=NOW - timedelta(seconds=30))),
        Rec(status, 0, 1, b"master", beat(lag=0)),  # the latest counts
        Rec(status, 0, 2, b"gone", beat()),
        Rec(status, 0, 3, b"gone", None),  # a tombstone: forget it
        Rec(status, 0, 4, b"bad", b"{}"),
        Rec(status, 0, 5, None, beat()),
        Rec(dead, 2, 0, b"R1", letter("worker", "w1")),
        Rec(dead, 2, 1, b"R1", letter("worker", "w1")),  # published twice: once
        Rec(dead, 3, 0, b"x", b"garbage"),  # counted, not set aside again
    ):
        builder.add(rec)
    batch = builder.batch
    assert batch.heartbeats["master"] is not None and batch.heartbeats["master"].lag == 0
    assert batch.heartbeats["gone"] is None
    assert len(batch.dead_letters) == 2
    assert {e.stage for e in batch.dead_letters.values()} == {"worker", UNREADABLE}
    reasons = [r.reason for r in batch.rejected]
    assert len(reasons) == 2 and all(r.startswith("connector heartbeat") or "without a key"
                                     in r for r in reasons), reasons
    assert batch.next_offsets[(status, 0)] == 6 and batch.next_offsets[(dead, 3)] == 1


def test_dashboard_lines_flag_stale_connectors_and_join_their_dead_letters() -> None:
    beats = [("master", "pension-master", 0, NOW - timedelta(seconds=20)),
             ("ledger", "payment-ledger", 12, NOW - STALE_AFTER - timedelta(seconds=1))]
    letters = [("connector:master", 2, NOW), ("worker", 1, NOW - timedelta(days=1)),
               ("connector:old", 4, NOW - timedelta(days=3))]
    rows = connector_rows(beats, letters, NOW)
    assert rows == [
        ConnectorRow("ledger", "payment-ledger", 12, beats[1][3], True, 0, None),
        ConnectorRow("master", "pension-master", 0, beats[0][3], False, 2, NOW),
        # dead letters of a connector never heard from: stale
        ConnectorRow("old", None, None, None, True, 4, NOW - timedelta(days=3)),
        # another stage: no heartbeat expected
        ConnectorRow("worker", None, None, None, False, 1, NOW - timedelta(days=1)),
    ]
    assert connector_rows([], [], NOW) == []


def test_stale_means_several_heartbeats_missed() -> None:
    assert STALE_AFTER.total_seconds() >= 3 * sdk_heartbeat.EVERY_S


def test_heartbeats_go_when_the_lag_changes_or_every_30_s_and_pause_after_a_failure() -> None:
    schedule = sdk_heartbeat.Schedule()
    assert schedule.due(5, 0.0)
    schedule.sent(5, 0.0)
    assert not schedule.due(5, 10.0) and schedule.due(4, 10.0)  # changed
    schedule.sent(4, 10.0)
    assert not schedule.due(4, 39.9) and schedule.due(4, 40.0)  # 30 s on
    schedule.failed(50.0)
    assert not schedule.due(3, 50.0 + sdk_heartbeat.PAUSE_S - 1)
    assert schedule.due(3, 50.0 + sdk_heartbeat.PAUSE_S)
    assert json.loads(sdk_heartbeat.heartbeat_value("k", None, NOW)) == {
        "kind": "k", "lag": None, "measured_at": "2017-06-01T10:00:00+00:00"}
    with pytest.raises(ValueError, match="offset"):
        sdk_heartbeat.heartbeat_value("k", 1, datetime(2017, 6, 1))
