"""Records of the input log as the worker sees them, and the records it writes itself.

:func:`classify` decodes one raw record of the events topic into an :class:`Input`, a
:class:`Tick` or an :class:`Unusable` (a dead letter with its reason). The builders make
the worker's own records: :func:`retiree_status` and :func:`dead_letter`, each with a
deterministic ``event_id`` so that a record re-decided after a crash has the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lifecert.domain.fold import uuid5
from lifecert.domain.state import RetireeState
from lifecert.events import codec
from lifecert.events.catalogue import INPUT_TYPES, Event

_INPUTS = frozenset(INPUT_TYPES)
CLOCK_TICK = "ClockTick"
STAGE = "worker"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record was read: topic, partition, offset, and its Kafka timestamp (ms)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    def label(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"


@dataclass(frozen=True, slots=True)
class Input:
    event: Event


@dataclass(frozen=True, slots=True)
class Tick:
    tick: Event


@dataclass(frozen=True, slots=True)
class Unusable:
    reason: str


Classified = Input | Tick | Unusable


def classify(key: bytes | None, value: bytes | None) -> Classified:
    """What a raw record of the events topic is; never raises."""
    if value is None:
        return Unusable("record has no value (a tombstone); the events topic carries events")
    try:
        event = codec.decode(value)
    except codec.CodecError as exc:
        return Unusable(f"undecodable: {type(exc).__name__}: {exc}")
    type_name = event["type"]
    if type_name in _INPUTS:
        if key != event["retiree_id"].encode():
            # Decided in the wrong partition, it would meet another campaign than the
            # rest of its retiree's events.
            return Unusable(
                f"{type_name} keyed {key!r}, not by its retiree_id {event['retiree_id']!r}: "
                f"every record of a retiree must be keyed by the retiree id"
            )
        return Input(event)
    if type_name == CLOCK_TICK:
        return Tick(event)
    return Unusable(
        f"unexpected event type {type_name} on the events topic: it carries the input "
        f"events ({', '.join(INPUT_TYPES)}) and ClockTick only"
    )


def cause_of(event: Event, position: Position) -> str:
    """What identifies the decision a record caused: its event id, else its position."""
    event_id = event.get("event_id")
    return event_id if event_id else position.label()


def status_fields(state: RetireeState) -> tuple[Any, ...]:
    """The fields a RetireeStatus reports, to tell whether a decision changed them."""
    return (state.status(), state.district, state.residence, state.completed_by,
            state.completed_at, state.completed_performed_on, state.corrections,
            state.retractions, state.death_report)


def retiree_status(policy_name: str, state: RetireeState, at: datetime, cause: str) -> Event:
    """The RetireeStatus of ``state`` after the decision identified by ``cause``."""
    return {
        "type": "RetireeStatus",
        "event_id": uuid5(f"{policy_name}|RetireeStatus|{state.retiree_id}|{cause}"),
        "recorded_at": at,
        "source_agency": "lifecert",
        "retiree_id": state.retiree_id,
        "policy": policy_name,
        "status": state.status(),
        "district": state.district,
        "residence": state.residence,
        "completed_by": state.completed_by,
        "completed_at": state.completed_at,
        "revocations": state.revocations,
        "retractions": state.retractions,
        "performed_on": state.completed_performed_on,
        "death_source": None if state.death_report is None else state.death_report[0],
        "death_recorded_at": None if state.death_report is None else state.death_report[1],
    }


def dead_letter(position: Position, key: bytes | None, value: bytes | None, reason: str) -> Event:
    """A DeadLetter for the raw record at ``position``; ``recorded_at`` is the record's own
    Kafka timestamp, so that setting the same record aside twice yields the same record."""
    at = _EPOCH
    if position.timestamp_ms is not None and position.timestamp_ms >= 0:
        at = datetime.fromtimestamp(position.timestamp_ms / 1000, tz=UTC)
    return {
        "type": "DeadLetter",
        "event_id": uuid5(f"DeadLetter|{STAGE}|{position.label()}"),
        "recorded_at": at,
        "source_agency": "lifecert",
        "stage": STAGE,
        "source_topic": position.topic,
        "source_partition": position.partition,
        "source_offset": position.offset,
        "key": key,
        "value": value,
        "source_position": None,
        "reason": reason,
    }
