"""The JSON interchange form of events: one JSON object per line, flat, with ``type``.

``parse_event`` turns a decoded JSON object into an in-memory event (see
:mod:`lifecert.events.catalogue`), reading every field with the rule compiled from its
schema (:mod:`lifecert.events.validation`, the one validator, which the codec's encoder
uses too), and raises :class:`MalformedEvent` naming the field and what to do.
``to_json`` goes the other way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import cache
from json.scanner import make_scanner
from typing import Any

from lifecert.events.catalogue import EVENT_TYPES, INPUT_TYPES, PARTNER_TYPES, Event, event_spec
from lifecert.events.time import isoformat_local
from lifecert.events.validation import FieldRule, catalogue_rules, show_json


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
    its schema (:mod:`lifecert.events.validation`), in order, the JSON value is read with
    the rule's ``read``, which replaces it in place; the first missing or bad field raises
    :class:`MalformedEvent` naming it.

    That is a loop over the rules; it is written out as straight-line code, once per type,
    because replay reads every line through it. Where a rule has an accept-as-is
    expression (its ``read`` would return the value unchanged: plain text, an integer, a
    boolean, an id) the common case costs that expression and no call; where its values
    recur, what ``read`` returned is taken from a memo. The generated code decides
    nothing of its own: a value the expression does not accept goes to ``read``."""
    names: dict[str, Any] = {
        "MalformedEvent": MalformedEvent, "_MEMO_SIZE": _MEMO_SIZE, "type_name": type_name,
    }
    body = ["def read(obj):", "    get = obj.get"]
    for i, rule in enumerate(catalogue_rules(type_name)):
        body += _field_code(i, rule, names)
    exec("\n".join(body), names)  # built from the schema's field names and rules only
    reader: Callable[[dict[str, Any]], None] = names["read"]
    return reader


def _field_code(i: int, rule: FieldRule, names: dict[str, Any]) -> list[str]:
    """The generated lines that read field ``i`` (``rule``) of an object ``obj``."""
    name, read = rule.name, f"_read{i}"
    names[read] = rule.read
    lines = [f"    v = get({name!r})", "    if v is None:"]
    if rule.nullable or name in _OPTIONAL_ENVELOPE:
        lines.append(f"        obj[{name!r}] = None")
    else:
        lines.append(f"        raise MalformedEvent('missing or null; ' + type_name + ' "
                     f"requires it', field={name!r})")
    if rule.recurs:  # a successful read of a recurring kind took a str
        memo = f"_memo{i}"
        names[memo] = _memo(name)
        return [
            *lines,
            f"    elif type(v) is str and (known := {memo}.get(v)) is not None:",
            f"        obj[{name!r}] = known",
            "    else:",
            *_guarded(f"obj[{name!r}] = known = {read}(v)", name),
            f"        if len({memo}) >= _MEMO_SIZE:",
            f"            {memo}.clear()",
            f"        {memo}[v] = known",
        ]
    if rule.accept is None:
        lines.append("    else:")
    else:  # the value stays as it is when the rule accepts it as is
        accept = rule.accept
        for key, value in rule.accept_names.items():  # renamed per field: no clash
            names[f"{key}_{i}"] = value
            accept = re.sub(rf"\b{re.escape(key)}\b", f"{key}_{i}", accept)
        lines.append(f"    elif not ({accept}):")
    return lines + _guarded(f"obj[{name!r}] = {read}(v)", name)


def _guarded(statement: str, field: str) -> list[str]:
    """``statement`` (a call of a reader) with its TypeError told as a MalformedEvent on
    ``field`` (a try costs nothing in Python 3.11 until something is raised)."""
    return [
        "        try:",
        f"            {statement}",
        "        except TypeError as exc:",
        f"            raise MalformedEvent(str(exc), field={field!r}) from None",
    ]


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
    if type_name not in EVENT_TYPES and type_name not in PARTNER_TYPES:
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
