"""The one value validator of lifecert events, compiled once per schema from its ``.avsc``.

For every flat field of an event schema (the envelope's fields but ``type``, then the
payload's) :func:`compile_fields` walks the field's Avro type once and makes a
:class:`FieldRule` holding the two forms of the same rule:

- ``check``: does an in-memory value (an ``int``, a ``datetime.date``, an aware
  ``datetime``, an enum symbol...) fit the type? It returns None, or what the value must
  be. The codec's :func:`~lifecert.events.codec.encode` asks it of every dict event.
- ``read``: the in-memory value of an interchange (JSON) value: a date from
  ``"YYYY-MM-DD"``, a UTC datetime from ISO 8601 with offset, an id, a month, an enum's own
  symbol object. It raises ``TypeError`` saying what is wrong and what to send. The
  interchange parser (:func:`~lifecert.events.interchange.parse_event`) asks it of every
  line.

Both take the field's name, type, enum symbols, nullability and default from the schema,
and the lifecert bounds (id patterns, years, text) from :mod:`lifecert.events.bounds`; the
codec checks the bounds of an in-memory value with :func:`bounds.value_problem`, the
words the decoder uses. (The codec's decode walker, which runs only after fastavro failed
on some bytes to say where they are corrupt, checks bytes, not values, and is not part of
this module.)
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC
from functools import cache
from typing import Any, NamedTuple

from lifecert.events import bounds
from lifecert.events.catalogue import ALL_TYPES, raw_schema
from lifecert.events.time import parse_month

__all__ = [
    "ENVELOPE_FIELD",
    "NAMED",
    "PRIMITIVES",
    "Check",
    "FieldRule",
    "NotAnEventSchema",
    "Reader",
    "catalogue_rules",
    "collect_definitions",
    "compile_fields",
    "defines",
    "full_name",
    "show_json",
    "show_value",
]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})

ENVELOPE_FIELD = "envelope"

# A check returns None for a valid value, else what the value must be ("must be ...").
Check = Callable[[Any], str | None]
# A reader returns the in-memory value of a JSON value, or raises TypeError saying why not.
Reader = Callable[[Any], Any]


class FieldRule(NamedTuple):
    """One flat field of an event schema and the two forms of its value rule (a tuple, so
    that the encoder's and the parser's loops unpack it)."""

    name: str
    in_envelope: bool
    has_default: bool
    nullable: bool  # its type is a union with null
    check: Check
    read: Reader
    # Its interchange values recur (agency ids, enums, dates, months), so a reader
    # of many lines may keep what ``read`` returned for a value: ``read`` is pure.
    recurs: bool
    # The common valid case of ``read``, for a reader generated as code: a Python
    # expression over the name ``v`` (and the names in ``accept_names``) that is true only
    # when ``read(v)`` would return ``v`` itself, so that the call can be skipped; None when
    # ``read`` converts (dates, times, enums) or has no such case. When it is false,
    # ``read`` decides (it may still accept, e.g. non-ASCII text, or say what is wrong).
    accept: str | None = None
    accept_names: Mapping[str, Any] = {}


class NotAnEventSchema(ValueError):
    """The schema has no record ``envelope`` field, or its flat field names clash."""


def compile_fields(parsed: Mapping[str, Any]) -> tuple[FieldRule, ...]:
    """The rule of every flat field of a (fastavro-parsed) event schema, ``type`` aside,
    in the schema's order, the envelope's fields at the envelope's place."""
    names: Mapping[str, Any] = parsed.get("__named_schemas", {})
    memo: dict[str, Check] = {}
    rules: list[FieldRule] = []
    full_name = parsed["name"]
    for field in parsed["fields"]:
        if field["name"] != ENVELOPE_FIELD:
            rules.append(_rule(field, False, names, memo))
            continue
        ftype = field["type"]
        env = names.get(ftype, ftype) if isinstance(ftype, str) else ftype
        if not isinstance(env, dict) or env.get("type") != "record":
            raise NotAnEventSchema(f"{full_name}: field 'envelope' must be a record")
        rules.extend(_rule(ef, True, names, memo) for ef in env["fields"] if ef["name"] != "type")
    if not any(f["name"] == ENVELOPE_FIELD for f in parsed["fields"]):
        raise NotAnEventSchema(f"{full_name}: an event schema needs an 'envelope' field")
    flat = [rule.name for rule in rules]
    if "type" in flat or len(set(flat)) != len(flat):
        raise NotAnEventSchema(
            f"{full_name}: payload and envelope field names must be distinct "
            f"and not 'type' (flat fields: {flat})"
        )
    return tuple(rules)


def _rule(
    field: Mapping[str, Any], in_envelope: bool, names: Mapping[str, Any], memo: dict[str, Check]
) -> FieldRule:
    ftype, fmt = field["type"], field.get("lifecert.format")
    read, recurs = _reader(field["name"], ftype, names, fmt)
    accept, accept_names = _ACCEPTS.get(read, (None, {}))
    if _ID_READERS.get(field["name"]) is read:
        accept = "type(v) is str and _fullmatch(v) is not None"
        accept_names = {"_fullmatch": bounds.ID_FIELDS[field["name"]][0].fullmatch}
    return FieldRule(
        name=field["name"],
        in_envelope=in_envelope,
        has_default="default" in field,
        nullable=isinstance(ftype, list) and "null" in ftype,
        check=_compile(ftype, names, fmt, memo),
        read=read,
        recurs=recurs,
        accept=accept,
        accept_names=accept_names,
    )


def full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def defines(t: dict[str, Any], namespace: str | None) -> tuple[str, str | None]:
    """Full name of the named type ``t`` and the namespace its contents are read in."""
    full = full_name(t["name"], t.get("namespace", namespace))
    return full, (full.rpartition(".")[0] or None)


def collect_definitions(t: Any, namespace: str | None, out: dict[str, Any]) -> None:
    """Add every named type defined in ``t`` to ``out``, with an explicit namespace."""
    if isinstance(t, list):
        for branch in t:
            collect_definitions(branch, namespace, out)
        return
    if not isinstance(t, dict):
        return
    kind = t.get("type")
    if kind in NAMED and isinstance(t.get("name"), str):
        full, namespace = defines(t, namespace)
        # An explicit namespace keeps the full name when inlined into another namespace.
        out.setdefault(full, {**t, "name": full.rpartition(".")[2], "namespace": namespace or ""})
        for field in t.get("fields", ()):
            collect_definitions(field.get("type"), namespace, out)
    elif kind == "array":
        collect_definitions(t.get("items"), namespace, out)
    elif kind == "map":
        collect_definitions(t.get("values"), namespace, out)
    elif isinstance(kind, dict | list):
        collect_definitions(kind, namespace, out)


@cache
def catalogue_rules(type_name: str) -> tuple[FieldRule, ...]:
    """The rules of the catalogue's event type ``type_name``, compiled from its ``.avsc``
    as shipped, its named types (the envelope, shared enums) resolved from the catalogue's
    schemas: the same rules as the codec's current schema of that type (tests/events
    compares them), without loading fastavro, so that reading interchange lines
    (``lifecert replay``) does not pay for the codec. KeyError for a name not in the
    catalogue."""
    if type_name not in ALL_TYPES:
        raise KeyError(type_name)
    return compile_fields({**raw_schema(type_name), "__named_schemas": _catalogue_names()})


@cache
def _catalogue_names() -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name in ("Envelope", *ALL_TYPES):
        collect_definitions(raw_schema(name), None, names)
    return names


# ------------------------------------------------------- in-memory values (encode)

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_MONTH_RE = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])")


def _accept(_: Any) -> str | None:
    return None


def _check_null(v: Any) -> str | None:
    return None if v is None else "None"


def _check_boolean(v: Any) -> str | None:
    return None if v is True or v is False else "a bool"


def _check_int(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and _INT_MIN <= v <= _INT_MAX:
        return None
    return "an int in the Avro int range (32-bit signed)"


def _check_long(v: Any) -> str | None:
    if isinstance(v, int) and not isinstance(v, bool) and _LONG_MIN <= v <= _LONG_MAX:
        return None
    return "an int in the Avro long range (64-bit signed)"


def _check_float(v: Any) -> str | None:
    return None if isinstance(v, int | float) and not isinstance(v, bool) else "a float"


def _check_bytes(v: Any) -> str | None:
    return None if isinstance(v, bytes | bytearray) else "bytes"


def _check_string(v: Any) -> str | None:
    return None if isinstance(v, str) else "a str"


def _check_month(v: Any) -> str | None:
    if isinstance(v, str) and _MONTH_RE.fullmatch(v):
        return None
    return "a month string 'YYYY-MM'"


def _check_timestamp(v: Any) -> str | None:
    if isinstance(v, dt.datetime):
        if v.utcoffset() is not None:
            return None
        return (
            "a timezone-aware datetime (a naive datetime is ambiguous and is rejected: "
            "give it a tzinfo, e.g. tzinfo=timezone.utc)"
        )
    return "a timezone-aware datetime"


def _check_local_timestamp(v: Any) -> str | None:
    return None if isinstance(v, dt.datetime) else "a datetime"


def _check_date(v: Any) -> str | None:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return None
    return "a datetime.date (not a datetime)"


_PRIMITIVE_CHECKS: dict[str, Check] = {
    "null": _check_null,
    "boolean": _check_boolean,
    "int": _check_int,
    "long": _check_long,
    "float": _check_float,
    "double": _check_float,
    "bytes": _check_bytes,
    "string": _check_string,
}
_LOGICAL_CHECKS: dict[str, Check] = {
    "timestamp-millis": _check_timestamp,
    "timestamp-micros": _check_timestamp,
    "local-timestamp-millis": _check_local_timestamp,
    "local-timestamp-micros": _check_local_timestamp,
    "date": _check_date,
}


def _compile(t: Any, names: Mapping[str, Any], fmt: str | None, memo: dict[str, Check]) -> Check:
    """A check for in-memory values of the (fastavro-parsed) type ``t``; ``fmt`` is the
    field's ``lifecert.format`` property."""
    if isinstance(t, str):
        if t in PRIMITIVES:
            return _check_month if (t == "string" and fmt == "month") else _PRIMITIVE_CHECKS[t]
        if t in memo:
            return memo[t]
        return _compile(names[t], names, fmt, memo)
    if isinstance(t, list):
        return _compile_union(t, names, fmt, memo)
    kind = t["type"]
    if isinstance(kind, dict | list):
        return _compile(kind, names, fmt, memo)
    if kind in ("record", "error"):
        return _compile_record(t, names, memo)
    if kind == "enum":
        symbols = frozenset(t["symbols"])
        expected = f"one of the symbols of enum {t['name']} ({', '.join(t['symbols'])})"

        def check_enum(v: Any) -> str | None:
            return None if isinstance(v, str) and v in symbols else expected

        memo[t["name"]] = check_enum
        return check_enum
    if kind == "fixed":
        size = t["size"]

        def check_fixed(v: Any) -> str | None:
            return None if isinstance(v, bytes) and len(v) == size else f"{size} bytes"

        memo[t["name"]] = check_fixed
        return check_fixed
    if kind == "array":
        return _compile_array(_compile(t["items"], names, fmt, memo))
    if kind == "map":
        return _compile_map(_compile(t["values"], names, fmt, memo))
    logical = t.get("logicalType")
    if logical is None:
        return _compile(kind, names, fmt, memo)
    # Logical types this codec does not know (decimal, uuid...) are left to fastavro.
    return _LOGICAL_CHECKS.get(logical, _accept)


def _compile_union(
    branches: list[Any], names: Mapping[str, Any], fmt: str | None, memo: dict[str, Check]
) -> Check:
    nullable = "null" in branches
    checks = [_compile(b, names, fmt, memo) for b in branches if b != "null"]
    if nullable and len(checks) == 1:
        inner = checks[0]

        def check_optional(v: Any) -> str | None:
            if v is None:
                return None
            problem = inner(v)
            return None if problem is None else f"{problem}, or None"

        return check_optional

    def check_union(v: Any) -> str | None:
        if v is None and nullable:
            return None
        problems = []
        for check in checks:
            problem = check(v)
            if problem is None:
                return None
            problems.append(problem)
        return " or ".join(problems + (["None"] if nullable else []))

    return check_union


def _compile_array(inner: Check) -> Check:
    def check_array(v: Any) -> str | None:
        if not isinstance(v, list | tuple):
            return "a list"
        for i, item in enumerate(v):
            problem = inner(item)
            if problem is not None:
                return f"a list whose items are each {problem} (item {i} is {show_value(item)})"
        return None

    return check_array


def _compile_map(inner: Check) -> Check:
    def check_map(v: Any) -> str | None:
        if not isinstance(v, Mapping):
            return "a dict"
        for key, item in v.items():
            if not isinstance(key, str):
                return f"a dict with str keys (key {show_value(key)} is not)"
            problem = inner(item)
            if problem is not None:
                return f"a dict whose values are each {problem} (value of {key!r} is not)"
        return None

    return check_map


def _compile_record(t: dict[str, Any], names: Mapping[str, Any], memo: dict[str, Check]) -> Check:
    fields: list[tuple[str, bool, Check]] = []

    def check_record(v: Any) -> str | None:
        if not isinstance(v, Mapping):
            return f"a dict (record {t['name']})"
        for name, has_default, check in fields:
            if name not in v:
                if has_default:
                    continue
                return f"a dict (record {t['name']}) with field {name!r}"
            problem = check(v[name])
            if problem is not None:
                return f"a dict (record {t['name']}) whose field {name!r} is {problem}"
        return None

    memo[t["name"]] = check_record  # before the fields: a record may refer to itself
    fields.extend(
        (f["name"], "default" in f, _compile(f["type"], names, f.get("lifecert.format"), memo))
        for f in t["fields"]
    )
    return check_record


def show_value(v: Any, limit: int = 120) -> str:
    """An in-memory value for a message: ``repr`` cut at ``limit``, and its type."""
    text = repr(v)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{text} ({type(v).__name__})"


# ------------------------------------------------------- interchange values (JSON)


def _reader(name: str, t: Any, names: Mapping[str, Any], fmt: str | None) -> tuple[Reader, bool]:
    """The reader of JSON values of the (fastavro-parsed) type ``t`` of field ``name``, and
    whether its values recur (see :attr:`FieldRule.recurs`). A null branch is the parser's
    business (missing or null); the other branch is read."""
    if isinstance(t, list):
        branches = [b for b in t if b != "null"]
        if len(branches) != 1:
            return _no_json_form(f"a union of {len(branches)} types"), False
        t = branches[0]
    if isinstance(t, str) and t not in PRIMITIVES:
        t = names.get(t, t)
    if isinstance(t, dict):
        kind, logical = t["type"], t.get("logicalType")
        if logical == "date":
            return _date, True
        if logical == "timestamp-micros":
            return _timestamp, False
        if kind == "enum":
            return _enum(tuple(t["symbols"])), True
        if kind == "array" and fmt == "month" and t["items"] == "string":
            return _months, False
        if logical is None and isinstance(kind, str) and kind in PRIMITIVES:
            t = kind
    if t == "string":
        if fmt == "month":
            return _month, True
        if name in bounds.ID_FIELDS:
            return _ID_READERS[name], name in _AGENCY_IDS
        return _string, False
    if t in ("long", "int"):
        return _long, False
    if t == "boolean":
        return _boolean, False
    return _no_json_form(f"Avro type {t if isinstance(t, str) else t.get('type')!r}"), False


def _no_json_form(what: str) -> Reader:
    def refuse(value: Any) -> Any:
        raise TypeError(f"{what} has no interchange (JSON) form; got {show_json(value)}")

    return refuse


_EARLIEST, _LATEST = bounds.EARLIEST_YEAR, bounds.LATEST_YEAR
# An agency's id recurs (a few hundred agencies send everything); a retiree's or a
# certification's seldom does within a memo's window (a retiree's events are months apart:
# 18% and 6% of them recur in the 2017 campaign), and a miss costs more than the pattern.
_AGENCY_IDS = frozenset({"agency_id", "source_agency"})


def _string(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {show_json(value)}")
    if len(value) > bounds.MAX_TEXT or not value.isascii():
        problem = bounds.text_problem(value)
        if problem is not None:
            raise TypeError(problem)
    return value


def _id(field: str) -> Reader:
    fullmatch = bounds.ID_FIELDS[field][0].fullmatch

    def read_id(value: Any) -> str:
        if type(value) is not str:
            raise TypeError(f"expected a string, got {show_json(value)}")
        if fullmatch(value) is None:
            raise TypeError(bounds.id_problem(field, value))
        return value

    return read_id


# One reader per id field (an id rule's accept-as-is is its pattern's fullmatch: _rule).
_ID_READERS: dict[str, Reader] = {field: _id(field) for field in bounds.ID_FIELDS}


def _long(value: Any) -> int:
    if type(value) is not int:
        hint = " (money is integer fen, never a decimal)" if isinstance(value, float) else ""
        raise TypeError(f"expected an integer, got {show_json(value)}{hint}")
    if not bounds.LONG_MIN <= value <= bounds.LONG_MAX:
        raise TypeError(
            f"{show_json(value)} is outside the range of a 64-bit integer (Avro long)")
    return value


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise TypeError(f"expected true or false, got {show_json(value)}")
    return value


def _date(value: Any) -> dt.date:
    if type(value) is not str or len(value) != 10:
        raise TypeError(f"expected a date as YYYY-MM-DD, got {show_json(value)}")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise TypeError(f"expected a date as YYYY-MM-DD, got {show_json(value)}") from None
    if not _EARLIEST <= day.year <= _LATEST:
        raise TypeError(f"{show_json(value)}: {bounds.year_problem(day)}")
    return day


def _timestamp(value: Any) -> dt.datetime:
    if type(value) is not str:
        raise TypeError(f"expected an ISO 8601 time with offset, got {show_json(value)}")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise TypeError(
            f"expected an ISO 8601 time with offset (e.g. 2017-05-02T09:30:00+08:00), "
            f"got {show_json(value)}"
        ) from None
    if parsed.tzinfo is None:
        raise TypeError(
            f"time {bounds.show(value)} has no UTC offset; write it with +08:00 "
            "(Asia/Shanghai) or Z"
        )
    try:  # to_utc's conversion, without its call (a line's time has a tzinfo here)
        utc = parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 is before year 1 in UTC
        utc = parsed
    if not (_EARLIEST <= utc.year <= _LATEST and _EARLIEST <= parsed.year <= _LATEST):
        problem = bounds.year_problem(utc) or bounds.year_problem(parsed)
        raise TypeError(f"{show_json(value)}: {problem}")
    return utc


def _month(value: Any) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a month as YYYY-MM, got {show_json(value)}")
    try:
        parse_month(value)
    except ValueError as exc:
        raise TypeError(str(exc)) from None
    year = int(value[:4])
    if not _EARLIEST <= year <= _LATEST:
        raise TypeError(f"{show_json(value)}: {bounds.year_problem(year)}")
    return value


def _months(value: Any) -> list[str]:
    if type(value) is not list:
        raise TypeError(f"expected a list of months (YYYY-MM), got {show_json(value)}")
    return [_month(item) for item in value]


# The accept-as-is expressions of the readers that return their value unchanged (see
# FieldRule.accept); each implies its reader's checks, which tests/events check value by
# value. An id's is made in _rule (its pattern is the field's).
_ACCEPTS: dict[Reader, tuple[str, Mapping[str, Any]]] = {
    # Text that UTF-8 can encode is what has no surrogate code point (U+D800-U+DFFF).
    _string: ("type(v) is str and len(v) <= _MAX_TEXT "
              "and (v.isascii() or _find_surrogate(v) is None)",
              {"_MAX_TEXT": bounds.MAX_TEXT,
               "_find_surrogate": re.compile("[\ud800-\udfff]").search}),
    _long: ("type(v) is int and _LONG_MIN <= v <= _LONG_MAX",
            {"_LONG_MIN": bounds.LONG_MIN, "_LONG_MAX": bounds.LONG_MAX}),
    _boolean: ("type(v) is bool", {}),
}


def _enum(symbols: tuple[str, ...]) -> Reader:
    # The schema's own symbol objects replace the values: JSON makes a new string for every
    # value, and a million states each holding its own "FOSHAN" add up.
    canonical = {symbol: symbol for symbol in symbols}

    def read_enum(value: Any) -> str:
        if type(value) is str:
            symbol = canonical.get(value)
            if symbol is not None:
                return symbol
        raise TypeError(f"{show_json(value)} is not one of {', '.join(symbols)}")

    return read_enum


def show_json(value: Any) -> str:
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
