"""The JSON interchange form of events: one JSON object per line, flat, with ``type``.

``parse_event`` turns a decoded JSON object into an in-memory event (see
:mod:`lifecert.events.catalogue`), reading every field with the rule compiled from its
schema (:mod:`lifecert.events.validation`, the one validator, which the codec's encoder
uses too), and raises :class:`MalformedEvent` naming the field and what to do.
``to_json`` goes the other way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import cache
from json.scanner import make_scanner
from typing import Any

from lifecert.events.catalogue import EVENT_TYPES, INPUT_TYPES, Event, event_spec
from lifecert.events.codec import default_store
from lifecert.events.time import isoformat_local
from lifecert.events.validation import show_json


class MalformedEvent(ValueError):
    """An input that is not a valid event. ``line`` is 1-based when known, ``field`` names
    the offending field (``None`` when the line as a whole is bad)."""

    def __init__(self, reason: str, *, field: str | None = None, line: int | None = None):
        self.reason = reason
        self.field = field
        self.line = line
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"line {self.line}" if self.line is not None else "event"
        if self.field is not None:
            where += f", field {self.field!r}"
        return f"{where}: {self.reason}"

    def at_line(self, line: int) -> MalformedEvent:
        return MalformedEvent(self.reason, field=self.field, line=line)


TOO_DEEP = "not valid JSON: nested too deeply (an event is one flat object)"


def loads(text: str | bytes) -> Any:
    """``json.loads`` that raises only ``ValueError``: nesting too deep for the parser (a
    ``RecursionError``) is reported as such, never a traceback."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None


# The envelope in the interchange form: ``event_id`` may be absent (``lifecert publish``
# assigns one), ``source_agency`` may be absent or null, ``recorded_at`` is required.
_OPTIONAL_ENVELOPE = frozenset({"event_id", "source_agency"})


_MEMO_SIZE = 65_536


@cache
def _memo(name: str) -> dict[str, Any]:
    """What the reader of field ``name`` returned for the strings it read so far (shared
    by the event types with this field; bounded), so that a retiree id, an agency, a date
    or an enum symbol that recurs is read once: a dict lookup costs a fraction of a call.
    A cache, nothing more: it holds only what the reader (pure) returned."""
    return {}


@cache
def _reader_of(type_name: str) -> Callable[[dict[str, Any]], None]:
    """The reader of one event type: for each field of the rules the codec compiled from
    its schema (:mod:`lifecert.events.validation`), in order, the value is read with the
    rule's ``read`` (or taken from the memo of what it returned) and replaces the JSON value
    in place; the first missing or bad field raises :class:`MalformedEvent` naming it.

    That is a loop over the rules; it is written out as straight-line code, once per type,
    because replay reads every line through it and the loop's own overhead was a fifth of
    the reading. The generated code holds no check of its own: only calls to the readers."""
    names: dict[str, Any] = {
        "MalformedEvent": MalformedEvent, "_MEMO_SIZE": _MEMO_SIZE, "type_name": type_name,
    }
    body = ["def read(obj):", "    get = obj.get", "    field = None", "    try:"]
    for i, rule in enumerate(default_store().by_type(type_name).rules):
        name, read = rule.name, f"_read{i}"
        names[read] = rule.read
        required = not (rule.nullable or name in _OPTIONAL_ENVELOPE)
        body += [f"        field = {name!r}", f"        v = get({name!r})", "        if v is None:"]
        if required:
            body.append(f"            raise MalformedEvent('missing or null; ' + type_name + ' "
                        f"requires it', field={name!r})")
        else:
            body.append(f"            obj[{name!r}] = None")
        if rule.recurs:  # a successful read of a recurring kind took a str
            names[f"_memo{i}"] = _memo(name)
            body += [
                f"        elif type(v) is str and (known := _memo{i}.get(v)) is not None:",
                f"            obj[{name!r}] = known",
                "        else:",
                f"            obj[{name!r}] = known = {read}(v)",
                f"            if len(_memo{i}) >= _MEMO_SIZE:",
                f"                _memo{i}.clear()",
                f"            _memo{i}[v] = known",
            ]
        else:
            body += ["        else:", f"            obj[{name!r}] = {read}(v)"]
    body += [
        "    except TypeError as exc:",
        "        raise MalformedEvent(str(exc), field=field) from None",
    ]
    exec("\n".join(body), names)  # built above from the schema's field names only
    reader: Callable[[dict[str, Any]], None] = names["read"]
    return reader


def parse_event(obj: Any, *, allowed: Iterable[str] = INPUT_TYPES) -> Event:
    """Check and convert one decoded JSON object in place; returns it as an event.

    Unknown extra fields are kept as they are (partners may send more)."""
    if type(obj) is not dict:
        raise MalformedEvent(f"expected a JSON object, got {show_json(obj)}")
    type_name = obj.get("type")
    if type(type_name) is not str:
        if type_name is not None:
            raise MalformedEvent(f"expected an event type name, got {show_json(type_name)}",
                                 field="type")
        if "type" not in obj:
            raise MalformedEvent("missing field; every event names its type", field="type")
        raise _unknown_type(type_name, allowed)
    # The shipped input types have their readers ready; other selections build them once.
    read = _INPUT_READERS.get(type_name) if allowed is INPUT_TYPES else None
    if read is None:
        if type_name not in allowed:
            raise _unknown_type(type_name, allowed)
        read = _reader_of(type_name)
    read(obj)
    return obj


_INPUT_READERS = {name: _reader_of(name) for name in INPUT_TYPES}


def _unknown_type(type_name: str | None, allowed: Iterable[str]) -> MalformedEvent:
    return MalformedEvent(
        f"unknown event type {show_json(type_name)}; expected one of {', '.join(allowed)}",
        field="type",
    )


# typeshed types the context as a make_scanner; the C scanner reads any decoder's attributes.
_scan_json = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def _loads(line: str | bytes) -> Any:
    """``json.loads`` for one line, calling the C scanner directly on the common case (a
    UTF-8 line holding one object and a newline); anything else goes through
    ``json.loads`` so that its error messages stay exact."""
    try:
        text = line if isinstance(line, str) else line.decode("utf-8")
        obj, end = _scan_json(text, 0)
        if end == len(text) or text[end:].isspace():
            return obj
    except (ValueError, StopIteration, AttributeError):
        pass
    return json.loads(line)


def parse_line(line: str | bytes, line_no: int | None = None) -> Event:
    """Parse one line of a JSON-lines event file."""
    try:
        obj = _loads(line)
    except ValueError as exc:
        raise MalformedEvent(f"not valid JSON: {exc}", line=line_no) from None
    except RecursionError:
        raise MalformedEvent(TOO_DEEP, line=line_no) from None
    try:
        return parse_event(obj)
    except MalformedEvent as exc:
        raise exc.at_line(line_no) if line_no is not None else exc from None


def to_json(event: Event) -> dict[str, Any]:
    """The interchange form of an event: dates and months as strings, times in
    Asia/Shanghai with their offset. Key order: type, envelope, then the schema's fields."""
    type_name = event["type"]
    if type_name not in EVENT_TYPES:
        raise MalformedEvent(f"unknown event type {type_name!r}", field="type")
    out: dict[str, Any] = {"type": type_name}
    for key in ("event_id", "recorded_at", "source_agency"):
        if key in event:
            out[key] = plain(event[key])
    for spec in event_spec(type_name).fields:
        if spec.name in event:
            out[spec.name] = plain(event[spec.name])
    for key, value in event.items():
        if key not in out:
            out[key] = plain(value)
    return out


def dumps(event: Event) -> str:
    """One line of the interchange form (no newline), keys in catalogue order."""
    return json.dumps(to_json(event), ensure_ascii=False, separators=(",", ":"))


def plain(value: Any) -> Any:
    """A value in its interchange (JSON) form: times in Asia/Shanghai with offset, dates
    ISO, lists element by element; anything else as is."""
    if isinstance(value, datetime):
        return isoformat_local(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
