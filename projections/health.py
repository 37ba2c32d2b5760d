"""The connectors' health, for the staff dashboard (pure: no I/O): their heartbeats
(``connector_status``: the lag each last measured, and when) and an index of the dead
letters (``dead_letters``: who set each aside, and when).

Neither keeps anything a person could be found by: a heartbeat holds a kind, a number and
a time; a dead letter's entry its id, stage, source topic and time, never its payload nor
its reason (a partner's text may quote a record).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lifecert.events.codec import CodecError, decode

# A stage is "worker", "projections", "publish", "connector:<instance>"...; longer text
# (a hostile record) is cut.
MAX_NAME = 200
UNREADABLE = "(unreadable)"  # the stage of a record on the dead-letter topic that is none
# A connector whose last heartbeat is older than this is stale: 4 heartbeats missed
# (connectors/sdk/heartbeat.py sends one at least every 30 s).
STALE_AFTER = timedelta(minutes=2)
# A heartbeat's time may run this far ahead of the projections' clock (clock skew).
FUTURE_SLACK = timedelta(minutes=5)
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lifecert/dead-letter-index")


class HeartbeatError(ValueError):
    """A heartbeat that is not one; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ConnectorHeartbeat:
    connector: str
    kind: str
    lag: int | None  # None: the connector cannot tell
    measured_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    letter_id: str  # the DeadLetter's event id (or, unreadable, one made from its position)
    stage: str
    source_topic: str | None
    recorded_at: datetime | None


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME \
            or not value.isprintable():
        raise HeartbeatError(f"{what} must be printable text of 1 to {MAX_NAME} characters")
    return value


def parse_heartbeat(connector: str, value: bytes, now: datetime | None = None
                    ) -> ConnectorHeartbeat:
    """The heartbeat of ``connector`` (the record's key) from its JSON ``value``
    (connectors/sdk/heartbeat.py). Raises :class:`HeartbeatError`."""
    _name(connector, "the key (the connector instance's name)")
    try:
        obj = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        raise HeartbeatError("the value is not JSON") from None
    if not isinstance(obj, dict):
        raise HeartbeatError("the value is not a JSON object")
    kind = _name(obj.get("kind"), "field 'kind'")
    lag = obj.get("lag")
    if lag is not None and (not isinstance(lag, int) or isinstance(lag, bool)
                            or not 0 <= lag < 2**63):
        raise HeartbeatError("field 'lag' must be a whole number of records, or null")
    text = obj.get("measured_at")
    try:
        at = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise HeartbeatError("field 'measured_at' must be a time with its offset")
    if at > (now or datetime.now(UTC)) + FUTURE_SLACK:
        raise HeartbeatError(f"field 'measured_at' is in the future ({text})")
    return ConnectorHeartbeat(connector, kind, lag, at)


def dead_letter_entry(topic: str, partition: int, offset: int, value: bytes | None
                      ) -> DeadLetterEntry:
    """The index entry of the record at (topic, partition, offset) of the dead-letter
    topic: the DeadLetter's id, stage, source topic and time; a record that is no
    DeadLetter counts under :data:`UNREADABLE`."""
    event = None
    if value is not None:
        try:
            event = decode(value)
        except CodecError:
            event = None
    if event is None or event.get("type") != "DeadLetter":
        letter_id = str(uuid.uuid5(_ID_NAMESPACE, f"{topic}|{partition}|{offset}"))
        return DeadLetterEntry(letter_id, UNREADABLE, None, None)
    letter_id, stage = str(event["event_id"]), str(event["stage"])
    if not letter_id.isprintable() or len(letter_id) > MAX_NAME:  # ids are UUIDs
        letter_id = str(uuid.uuid5(_ID_NAMESPACE, f"{topic}|{partition}|{offset}"))
    stage = stage[:MAX_NAME] if stage.isprintable() and stage else UNREADABLE
    source = event.get("source_topic")
    source = source[:MAX_NAME] if isinstance(source, str) and source.isprintable() else None
    return DeadLetterEntry(letter_id, stage, source, event["recorded_at"])


CONNECTOR_STAGE = "connector:"


def connector_of(stage: str) -> str | None:
    """The connector instance a dead letter's stage names (runner.stage_of), else None."""
    return stage[len(CONNECTOR_STAGE):] or None if stage.startswith(CONNECTOR_STAGE) else None


@dataclass(frozen=True, slots=True)
class ConnectorRow:
    """One line of the dashboard's connectors panel: a connector instance (its heartbeat
    and its dead letters), or another stage that set dead letters aside (worker,
    projections, publish: no heartbeat, no lag)."""

    name: str
    kind: str | None  # None: not a connector
    lag: int | None
    measured_at: datetime | None
    stale: bool  # a connector whose last heartbeat is older than STALE_AFTER (or none)
    dead_letters: int
    last_dead_letter: datetime | None


def connector_rows(
    beats: list[tuple[str, str, int | None, datetime]],
    letters: list[tuple[str, int, datetime | None]],
    now: datetime,
) -> list[ConnectorRow]:
    """The panel's lines from ``connector_health`` (connector, kind, lag, measured_at) and
    the dead letters counted by stage (stage, count, newest): connectors by name, then the
    other stages by name."""
    by_stage = {stage: (n, newest) for stage, n, newest in letters}
    rows: list[ConnectorRow] = []
    for name, kind, lag, at in sorted(beats):
        n, newest = by_stage.pop(CONNECTOR_STAGE + name, (0, None))
        rows.append(ConnectorRow(name, kind, lag, at, now - at > STALE_AFTER, n, newest))
    others: list[ConnectorRow] = []
    for stage, (n, newest) in sorted(by_stage.items()):
        connector = connector_of(stage)
        if connector is not None:  # dead letters of a connector never heard from
            rows.append(ConnectorRow(connector, None, None, None, True, n, newest))
        else:
            others.append(ConnectorRow(stage, None, None, None, False, n, newest))
    return rows + others
