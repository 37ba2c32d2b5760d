"""The JSON interchange form of events: one JSON object per line, flat, with ``type``.

``parse_event`` turns a decoded JSON object into an in-memory event (see
:mod:`lifecert.events.catalogue`), checking every field against the schemas, and raises
:class:`MalformedEvent` naming the field and what to do. ``to_json`` goes the other way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import cache
from json.scanner import make_scanner
from typing import Any

from lifecert.events import bounds
from lifecert.events.catalogue import (
    EVENT_TYPES,
    INPUT_TYPES,
    PARTNER_TYPES,
    Event,
    FieldSpec,
    envelope_spec,
    event_spec,
)
from lifecert.events.time import isoformat_local, parse_month, to_utc


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


Converter = Callable[[Any], Any]

TOO_DEEP = "not valid JSON: nested too deeply (an event is one flat object)"


def loads(text: str | bytes) -> Any:
    """``json.loads`` that raises only ``ValueError``: nesting too deep for the parser (a
    ``RecursionError``) is reported as such, never a traceback."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None


def _string(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {_show(value)}")
    problem = bounds.text_problem(value)
    if problem is not None:
        raise TypeError(problem)
    return value


def _id(field: str) -> Converter:
    def convert(value: Any) -> str:
        if type(value) is not str:
            raise TypeError(f"expected a string, got {_show(value)}")
        problem = bounds.id_problem(field, value)
        if problem is not None:
            raise TypeError(problem)
        return value

    return convert


def _long(value: Any) -> int:
    if type(value) is not int:
        hint = " (money is integer fen, never a decimal)" if isinstance(value, float) else ""
        raise TypeError(f"expected an integer, got {_show(value)}{hint}")
    if not bounds.LONG_MIN <= value <= bounds.LONG_MAX:
        raise TypeError(f"{_show(value)} is outside the range of a 64-bit integer (Avro long)")
    return value


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected true or false, got {_show(value)}")
    return value


def _date(value: Any) -> date:
    if type(value) is not str or len(value) != 10:
        raise TypeError(f"expected a date as YYYY-MM-DD, got {_show(value)}")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise TypeError(f"expected a date as YYYY-MM-DD, got {_show(value)}") from None
    problem = bounds.year_problem(day)
    if problem is not None:
        raise TypeError(f"{_show(value)}: {problem}")
    return day


def _timestamp(value: Any) -> datetime:
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 time with offset, got {_show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TypeError(
            f"expected an ISO 8601 time with offset (e.g. 2017-05-02T09:30:00+08:00), "
            f"got {_show(value)}"
        ) from None
    if parsed.tzinfo is None:
        raise TypeError(
            f"time {bounds.show(value)} has no UTC offset; write it with +08:00 "
            "(Asia/Shanghai) or Z"
        )
    try:
        utc = to_utc(parsed)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 is before year 1 in UTC
        utc = parsed
    problem = bounds.year_problem(utc) or bounds.year_problem(parsed)
    if problem is not None:
        raise TypeError(f"{_show(value)}: {problem}")
    return utc


def _month(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a month as YYYY-MM, got {_show(value)}")
    try:
        parse_month(value)
    except ValueError as exc:
        raise TypeError(str(exc)) from None
    problem = bounds.year_problem(int(value[:4]))
    if problem is not None:
        raise TypeError(f"{_show(value)}: {problem}")
    return value


def _months(value: Any) -> list[str]:
    if type(value) is not list:
        raise TypeError(f"expected a list of months (YYYY-MM), got {_show(value)}")
    return [_month(item) for item in value]


def _enum(symbols: tuple[str, ...]) -> Converter:
    canonical = {symbol: symbol for symbol in symbols}

    def convert(value: Any) -> str:
        if type(value) is not str or value not in canonical:
            raise TypeError(f"{_show(value)} is not one of {', '.join(symbols)}")
        return canonical[value]

    return convert


_CONVERTERS: dict[str, Converter] = {
    "string": _string,
    "long": _long,
    "boolean": _boolean,
    "date": _date,
    "timestamp": _timestamp,
    "month": _month,
    "months": _months,
}


def _converter(spec: FieldSpec) -> Converter:
    if spec.kind == "enum":
        return _enum(spec.symbols)
    if spec.kind == "string" and spec.name in bounds.ID_FIELDS:
        return _id(spec.name)
    return _CONVERTERS[spec.kind]


# The envelope in the interchange form: ``event_id`` may be absent (``lifecert publish``
# assigns one), ``source_agency`` may be absent or null, ``recorded_at`` is required.
_OPTIONAL_ENVELOPE = frozenset({"event_id", "source_agency"})


@cache
def _plan(type_name: str) -> tuple[tuple[str, Converter, bool], ...]:
    """(field, converter, required-and-non-null) for the envelope and the payload."""
    plan: list[tuple[str, Converter, bool]] = []
    for spec in envelope_spec():
        if spec.name == "type":
            continue
        plan.append((spec.name, _converter(spec), spec.name not in _OPTIONAL_ENVELOPE))
    for spec in event_spec(type_name).fields:
        plan.append((spec.name, _converter(spec), not spec.nullable))
    return tuple(plan)


def parse_event(obj: Any, *, allowed: Iterable[str] = INPUT_TYPES) -> Event:
    """Check and convert one decoded JSON object in place; returns it as an event.

    Unknown extra fields are kept as they are (partners may send more)."""
    if type(obj) is not dict:
        raise MalformedEvent(f"expected a JSON object, got {_show(obj)}")
    type_name = obj.get("type")
    if type(type_name) is not str:
        if type_name is not None:
            raise MalformedEvent(f"expected an event type name, got {_show(type_name)}",
                                 field="type")
        if "type" not in obj:
            raise MalformedEvent("missing field; every event names its type", field="type")
        raise _unknown_type(type_name, allowed)
    # The shipped input types have their parsers ready; other selections build them once.
    fast = _FAST_PARSERS.get(type_name) if allowed is INPUT_TYPES else None
    if fast is None:
        if type_name not in allowed:
            raise _unknown_type(type_name, allowed)
        fast = _fast_parser(type_name)
    try:
        if fast(obj):
            return obj
    except (TypeError, ValueError, AttributeError, OverflowError):
        pass
    return _parse_slowly(obj, type_name)


def _unknown_type(type_name: str | None, allowed: Iterable[str]) -> MalformedEvent:
    return MalformedEvent(
        f"unknown event type {_show(type_name)}; expected one of {', '.join(allowed)}",
        field="type",
    )


def _parse_slowly(obj: dict[str, Any], type_name: str) -> Event:
    """Field by field, with a precise error for the first bad field."""
    for name, convert, required in _plan(type_name):
        value = obj.get(name)
        if value is None:
            if required:
                raise MalformedEvent(f"missing or null; {type_name} requires it", field=name)
            obj[name] = None
            continue
        try:
            obj[name] = convert(value)
        except TypeError as exc:
            raise MalformedEvent(str(exc), field=name) from None
    return obj


# The fast path: a function per event type, generated from the schemas, that checks and
# converts every field with inline tests and assigns them only when all are good. It
# returns False (or raises) on any doubt, and ``_parse_slowly`` then finds the precise
# error. Replay spends most of its time here, hence the code generation.
_FAST_CHECKS = {
    "string": "type({v}) is str and len({v}) <= _MAX_TEXT and ({v}.isascii() or _utf8({v}))",
    "id": "type({v}) is str and {match}({v})",
    "long": "type({v}) is int and _LONG_MIN <= {v} <= _LONG_MAX",
    "boolean": "type({v}) is bool",
    "date": "type({v}) is str and len({v}) == 10",
    "timestamp": "type({v}) is str",
    "month": (
        "type({v}) is str and len({v}) == 7 and {v}[4] == '-' and {v}[:4].isdigit() "
        "and '01' <= {v}[5:] <= '12' and {v}[5:].isdigit() "
        "and _FIRST_YEAR <= {v}[:4] <= _LAST_YEAR"
    ),
    "months": "type({v}) is list and all(_month_ok(x) for x in {v})",
    "enum": "{v} in {symbols}",
}
# Enum values are replaced by the schema's own symbol objects: JSON makes a new string for
# every value, and a million states each holding its own "FOSHAN" add up.


def _month_ok(value: Any) -> bool:
    try:
        _month(value)
    except TypeError:
        return False
    return True


def _utf8(value: str) -> bool:
    return bounds.text_problem(value) is None


@cache
def _id_matcher(field: str) -> Callable[[str], Any]:
    """The pattern's ``fullmatch`` for ``field``; for ids that recur (agencies, retirees:
    not event ids) with a bounded memory of the values that matched, a set lookup being
    six times cheaper than the regular expression."""
    fullmatch = bounds.ID_FIELDS[field][0].fullmatch
    if field == "event_id":
        return fullmatch
    known: set[str] = set()

    def match(value: str) -> bool:
        if value in known:
            return True
        if fullmatch(value) is None:
            return False
        if len(known) >= 65_536:
            known.clear()
        known.add(value)
        return True

    return match


@cache
def _fast_parser(type_name: str) -> Callable[[dict[str, Any]], bool]:
    names: dict[str, Any] = {
        "_date": date.fromisoformat,
        "_datetime": datetime.fromisoformat,
        "_to_utc": to_utc,
        "_month_ok": _month_ok,
        "_utf8": _utf8,
        "_MAX_TEXT": bounds.MAX_TEXT,
        "_LONG_MIN": bounds.LONG_MIN,
        "_LONG_MAX": bounds.LONG_MAX,
        "_FIRST_YEAR": f"{bounds.EARLIEST_YEAR:04d}",
        "_LAST_YEAR": f"{bounds.LATEST_YEAR:04d}",
        "_EARLIEST": bounds.EARLIEST_YEAR,
        "_LATEST": bounds.LATEST_YEAR,
    }
    body = ["def parse(obj):", "    get = obj.get"]
    assigns = []
    specs = [s for s in envelope_spec() if s.name != "type"] + list(event_spec(type_name).fields)
    for i, spec in enumerate(specs):
        v = f"v{i}"
        required = not (spec.nullable or spec.name in _OPTIONAL_ENVELOPE)
        symbols = match = ""
        kind = spec.kind
        if kind == "enum":
            symbols = f"_symbols{i}"
        elif kind == "string" and spec.name in bounds.ID_FIELDS:
            kind, match = "id", f"_match{i}"
            names[match] = _id_matcher(spec.name)
        check = _FAST_CHECKS[kind].format(v=v, symbols=symbols, match=match)
        body.append(f"    {v} = get({spec.name!r})")
        if spec.kind == "enum":
            names[symbols] = {symbol: symbol for symbol in spec.symbols}
            body.append(f"    {v} = {symbols}.get({v}, {v}) if type({v}) is str else {v}")
        if required:
            body.append(f"    if not ({check}): return False")
        else:
            body.append(f"    if {v} is not None and not ({check}): return False")
        convert = {"date": "_date({v})", "timestamp": "_datetime({v})"}.get(spec.kind)
        if convert is not None:
            convert = convert.format(v=v)
            if required:
                body.append(f"    {v} = {convert}")
            else:
                body.append(f"    {v} = None if {v} is None else {convert}")
            if spec.kind == "timestamp":
                body.append(f"    if {v} is not None and {v}.tzinfo is None: return False")
                body.append(f"    {v} = None if {v} is None else _to_utc({v})")
            body.append(
                f"    if {v} is not None and not (_EARLIEST <= {v}.year <= _LATEST): return False"
            )
        assigns.append(f"    obj[{spec.name!r}] = {v}")
    body.extend(assigns)
    body.append("    return True")
    exec("\n".join(body), names)  # the source is built above from the schemas only
    parse: Callable[[dict[str, Any]], bool] = names["parse"]
    return parse


_FAST_PARSERS = {name: _fast_parser(name) for name in INPUT_TYPES}


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


def _show(value: Any) -> str:
    """A value for a message: as JSON (control characters and lone surrogates escaped,
    other characters as they are), else ``repr``; cut to 60 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
        if not text.isascii():
            text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        try:
            text = ascii(value)
        except RecursionError:
            text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."
