"""Records of lifecert's topics in a form people and ``lifecert replay`` read (pure: no
Kafka). ``lifecert topics tail`` prints them; ``lifecert log dump`` writes them out.

A value is an Avro single-object record (every event topic) or JSON (the connector
checkpoints). Personal fields stay as they are on the log: sealed
(docs/personal-data.md); a dead letter's raw key and value bytes, sealed too, are shown
as base64. Nothing here opens a sealed value.
"""

from __future__ import annotations

import base64
import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lifecert.events import codec
from lifecert.events.catalogue import EVENT_TYPES, INPUT_TYPES
from lifecert.events.interchange import plain, to_json
from lifecert.events.time import isoformat_local


class Unreadable(ValueError):
    """A record value that is neither a lifecert Avro record nor JSON; says why."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """One record: where it is, its key as text, and its value in interchange form
    (``None`` for a tombstone)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    value: dict[str, Any] | None
    encoding: str  # "avro", "json" or "none"


def value_form(value: bytes | None) -> tuple[dict[str, Any] | None, str]:
    """(the value as interchange JSON, its encoding). Raises :class:`Unreadable`."""
    if value is None:
        return None, "none"
    if value[:2] == codec.MARKER:
        try:
            event = codec.decode(value)
        except codec.CodecError as exc:
            raise Unreadable(f"an Avro record lifecert cannot decode: {exc}") from None
        return interchange_form(event), "avro"
    try:
        obj = json.loads(value)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Unreadable(
            f"neither Avro single-object (no C3 01 marker) nor JSON: {len(value)} bytes "
            f"starting {value[:8].hex()}"
        ) from None
    return (obj if isinstance(obj, dict) else {"value": obj}), "json"


def interchange_form(event: dict[str, Any]) -> dict[str, Any]:
    """An event's interchange form (``lifecert replay``'s lines); the pipeline's own
    records (ticks, statuses, dead letters) field by field, bytes as base64."""
    if event["type"] in EVENT_TYPES:
        return to_json(event)
    return {k: _plain(v) for k, v in event.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return plain(value)


def key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(key).decode("ascii")


def decoded(topic: str, partition: int, offset: int, timestamp_ms: int, key: bytes | None,
            value: bytes | None) -> Decoded | tuple[str, int, int, str]:
    """The record decoded, or (topic, partition, offset, why) when it cannot be."""
    try:
        form, encoding = value_form(value)
    except Unreadable as exc:
        return topic, partition, offset, str(exc)
    return Decoded(topic, partition, offset, timestamp_ms, key_text(key), form, encoding)


def line_for_people(record: Decoded) -> str:
    """``partition@offset  time  TYPE  key=K  {fields}``: one line, the fields as compact
    JSON without the envelope's type."""
    when = isoformat_local(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC))
    where = f"{record.partition}@{record.offset}"
    if record.value is None:
        return f"{where}  {when}  (tombstone)  key={record.key}"
    fields = {k: v for k, v in record.value.items() if k != "type"}
    kind = record.value.get("type", f"({record.encoding})")
    body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return f"{where}  {when}  {kind}  key={record.key}  {body}"


def line_as_json(record: Decoded) -> str:
    return json.dumps(
        {"topic": record.topic, "partition": record.partition, "offset": record.offset,
         "timestamp_ms": record.timestamp_ms, "key": record.key, "encoding": record.encoding,
         "value": record.value},
        ensure_ascii=False, separators=(",", ":"),
    )


def replay_order(partitions: Iterable[Iterable[Decoded]]) -> Iterator[Decoded]:
    """One sequence from each partition's records (each in offset order): merged by the
    events' recorded_at, every partition's own order kept (so every retiree's events stay
    in log order, as the worker decided them)."""

    def when(record: Decoded) -> str:
        value = record.value or {}
        at = value.get("recorded_at")
        return _sortable(at) if isinstance(at, str) else ""

    return heapq.merge(*partitions, key=when)


def _sortable(text: str) -> str:
    """An interchange time (local, with its offset) as a UTC ISO string that sorts."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC).isoformat()
    except ValueError:
        return text


def replayable(record: Decoded) -> bool:
    """Whether ``lifecert replay`` takes the record as a line: an input event (clock ticks
    are not: replay runs the clock on recorded_at and --until)."""
    return record.value is not None and record.value.get("type") in INPUT_TYPES
