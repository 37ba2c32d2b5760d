"""Avro single-object codec for lifecert events.

A record is the Avro *single-object encoding*: the marker ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then
the Avro binary body. Any Avro library can decode it given the schema set.

In memory an event is a flat ``dict`` (see :mod:`lifecert.events.catalogue`); the Avro
datum nests the envelope: ``{"envelope": {"event_id", "type", "recorded_at",
"source_agency"}, **payload}``. :func:`to_datum` and :func:`from_datum` convert.

Schemas are parsed once, in a :class:`SchemaStore`; :func:`encode` and :func:`decode` use
the module's default store (the catalogue) unless given another. Every failure is a
:class:`CodecError` (a ``ValueError``); fastavro's own exceptions never escape.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from functools import cache
from io import BytesIO
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from lifecert.events import bounds
from lifecert.events.catalogue import ALL_TYPES, previous_schemas, raw_schema
from lifecert.events.record import EventLike, EventRecord
from lifecert.events.validation import (
    ENVELOPE_FIELD,
    NAMED,
    PRIMITIVES,
    FieldRule,
    NotAnEventSchema,
    collect_definitions,
    compile_fields,
    defines,
    full_name,
    show_value,
)

__all__ = [
    "HEADER_SIZE",
    "MARKER",
    "BadMarker",
    "CodecError",
    "CorruptRecord",
    "DecodeError",
    "InvalidEvent",
    "InvalidValue",
    "RegisteredSchema",
    "SchemaError",
    "SchemaMismatch",
    "SchemaStore",
    "TruncatedRecord",
    "UnknownEventType",
    "UnknownFingerprint",
    "crc64_avro",
    "decode",
    "default_store",
    "encode",
    "from_datum",
    "to_datum",
]

MARKER = b"\xc3\x01"
HEADER_SIZE = 10  # marker + 8-byte fingerprint

_CATALOGUE_ENVELOPE_FIELDS: tuple[str, ...] = tuple(
    f["name"] for f in raw_schema("Envelope")["fields"]
)


# --------------------------------------------------------------------------- errors


class CodecError(ValueError):
    """Base class of every error raised by the codec."""


class SchemaError(CodecError):
    """A schema given to the store is not a valid lifecert event schema."""


class InvalidEvent(CodecError):
    """An in-memory event does not fit its schema (raised by :func:`encode`)."""


class UnknownEventType(InvalidEvent):
    """The event's ``type`` has no schema in the store."""


class DecodeError(CodecError):
    """Bytes could not be decoded."""


class BadMarker(DecodeError):
    """The bytes do not start with the single-object marker ``C3 01``."""


class UnknownFingerprint(DecodeError):
    """No schema in the store has the record's writer fingerprint."""

    def __init__(self, message: str, fingerprint: int) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint


class CorruptRecord(DecodeError):
    """The body does not decode with the writer schema."""


class TruncatedRecord(CorruptRecord):
    """The record ends before its body (or header) is complete."""


class SchemaMismatch(DecodeError):
    """The reader schema cannot resolve the writer schema (Avro schema resolution)."""


class InvalidValue(DecodeError):
    """The record decodes but a value is outside :mod:`lifecert.events.bounds` (an id that
    does not match its pattern, a date in the year 9999); ``field`` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


# ------------------------------------------------------------------ CRC-64-AVRO

_CRC64_EMPTY = 0xC15D213AA4D7A795


def _crc64_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_CRC64_TABLE = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The CRC-64-AVRO (Rabin) fingerprint of ``data``, as an unsigned int (Avro spec)."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


# ------------------------------------------------------- named-type inlining

def _inline(schema: Any, definitions: Mapping[str, Any]) -> Any:
    """``schema`` made standalone: the first reference to each named type it does not
    define itself is replaced by that type's definition (later ones stay names), which is
    what Avro's Java parser yields, and what the Parsing Canonical Form must be taken of.
    """
    defined: set[str] = set()

    def walk(t: Any, namespace: str | None) -> Any:
        if isinstance(t, str):
            if t in PRIMITIVES:
                return t
            full = full_name(t, namespace)
            if full in defined or full not in definitions:
                return t  # an unknown name is left for the parser to report
            return walk(copy.deepcopy(definitions[full]), namespace)
        if isinstance(t, list):
            return [walk(branch, namespace) for branch in t]
        if not isinstance(t, dict):
            return t
        kind = t.get("type")
        out = dict(t)
        if kind in NAMED and isinstance(t.get("name"), str):
            full, namespace = defines(t, namespace)
            defined.add(full)
        if kind in ("record", "error"):
            out["fields"] = [
                {**field, "type": walk(field.get("type"), namespace)}
                for field in t.get("fields", ())
            ]
        elif kind == "array":
            out["items"] = walk(t.get("items"), namespace)
        elif kind == "map":
            out["values"] = walk(t.get("values"), namespace)
        elif isinstance(kind, dict | list):
            out["type"] = walk(kind, namespace)
        elif isinstance(kind, str) and kind not in PRIMITIVES | NAMED | {"array", "map"}:
            return walk(kind, namespace)  # {"type": "some.Name"} is a reference
        return out

    return walk(schema, None)


# ---------------------------------------------------------- decode diagnosis


class _Short(Exception):
    def __init__(self, expected: int, got: int) -> None:
        self.expected, self.got = expected, got


class _Bad(Exception):
    pass


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


class _Walker:
    """A slow, careful reader of an Avro body, used only after fastavro failed, to say
    where and why."""

    def __init__(self, data: bytes, pos: int, names: Mapping[str, Any]) -> None:
        self.data, self.pos, self.names = data, pos, names
        self.where = ""  # the innermost field being read

    def need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise _Short(n, len(self.data) - self.pos)

    def long(self) -> int:
        result = shift = 0
        for _ in range(10):
            self.need(1)
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
        raise _Bad("a variable-length integer runs over 10 bytes")

    def take(self, n: int) -> bytes:
        if n < 0:
            raise _Bad(f"negative length {n}")
        self.need(n)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def walk(self, t: Any, path: str) -> None:
        if isinstance(t, list):
            index = self.long()
            if not 0 <= index < len(t):
                raise _Bad(f"union branch index {index} out of range ({len(t)} branches)")
            self.walk(t[index], path)
            return
        if isinstance(t, str):
            if t not in PRIMITIVES:
                self.walk(self.names[t], path)
                return
            t = {"type": t}
        kind = t["type"]
        if isinstance(kind, dict | list) or (
            kind not in PRIMITIVES and kind not in NAMED and kind not in ("array", "map")
        ):
            self.walk(kind, path)
        elif kind in ("record", "error"):
            for field in t["fields"]:
                self.where = f"{path}.{field['name']}" if path else field["name"]
                self.walk(field["type"], self.where)
        elif kind == "enum":
            index = self.long()
            symbols = t["symbols"]
            if not 0 <= index < len(symbols):
                raise _Bad(
                    f"enum index {index} out of range: {t['name']} has {len(symbols)} symbols "
                    f"(0..{len(symbols) - 1}: {', '.join(symbols)}); the writer used a symbol "
                    "this schema does not have, or the record is corrupt"
                )
        elif kind == "fixed":
            self.take(t["size"])
        elif kind in ("array", "map"):
            self.blocks(t, path)
        else:
            self.primitive(kind, t.get("logicalType"))

    def blocks(self, t: dict[str, Any], path: str) -> None:
        while True:
            count = self.long()
            if count == 0:
                return
            if count < 0:
                count = -count
                self.long()  # block size in bytes
            # Every item of our schemas takes at least one byte; this also stops a corrupt
            # huge count from looping for ever.
            self.need(count)
            for i in range(count):
                if t["type"] == "map":
                    self.primitive("string", None)
                self.where = f"{path}[{i}]"
                self.walk(t["items"] if t["type"] == "array" else t["values"], self.where)

    def primitive(self, kind: str, logical: str | None) -> None:
        if kind in ("int", "long"):
            value = self.long()
            try:
                if logical == "timestamp-micros":
                    _EPOCH + dt.timedelta(microseconds=value)
                elif logical == "timestamp-millis":
                    _EPOCH + dt.timedelta(milliseconds=value)
                elif logical == "date":
                    dt.date.fromordinal(value + _EPOCH_ORDINAL)
            except (OverflowError, ValueError):
                raise _Bad(f"{logical} value {value} is out of Python's range") from None
        elif kind == "boolean":
            self.take(1)
        elif kind == "float":
            self.take(4)
        elif kind == "double":
            self.take(8)
        elif kind in ("bytes", "string"):
            raw = self.take(self.long())
            if kind == "string":
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Bad(f"invalid UTF-8 in a string ({exc.reason})") from None
        # null: nothing to read


# ------------------------------------------------------------------ schemas


class RegisteredSchema:
    """One parsed event schema: its standalone JSON, fastavro form, fingerprint, header,
    and the rules of its flat fields (:mod:`lifecert.events.validation`), compiled once."""

    __slots__ = (
        "_checks",
        "_flat_names",
        "canonical_form",
        "fingerprint",
        "full_name",
        "header",
        "parsed",
        "rules",
        "schema",
        "type_name",
    )

    def __init__(self, schema: object) -> None:
        """``schema`` must be standalone (named types it uses defined in it)."""
        if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
            raise SchemaError("an event schema must be an Avro record schema (a JSON object)")
        try:
            parsed = parse_schema(schema, {})
            canonical = to_parsing_canonical_form(parsed)
        except Exception as exc:  # fastavro raises several unrelated types here
            raise SchemaError(f"invalid Avro schema {schema.get('name')!r}: {exc}") from exc
        assert isinstance(parsed, dict)  # a record schema parses to a dict
        self.schema: dict[str, Any] = schema
        self.parsed: dict[str, Any] = parsed
        self.canonical_form: str = canonical
        self.full_name: str = parsed["name"]
        self.type_name: str = self.full_name.rpartition(".")[2]
        self.fingerprint: int = crc64_avro(canonical.encode("utf-8"))
        self.header: bytes = MARKER + self.fingerprint.to_bytes(8, "little")
        try:
            self.rules: tuple[FieldRule, ...] = compile_fields(parsed)
        except NotAnEventSchema as exc:
            raise SchemaError(str(exc)) from None
        self._flat_names = tuple(rule.name for rule in self.rules)
        # What the encoder's loop unpacks of each rule.
        self._checks = tuple((r.name, r.in_envelope, r.has_default, r.check) for r in self.rules)

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint as a 64-bit number in hex (as Java's ``parsingFingerprint64``)."""
        return f"{self.fingerprint:016x}"

    def __repr__(self) -> str:
        return f"<RegisteredSchema {self.full_name} fingerprint={self.fingerprint_hex}>"

    def to_datum(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Validate the flat ``event`` against this schema and nest it (raises InvalidEvent)."""
        envelope: dict[str, Any] = {"type": self.type_name}
        datum: dict[str, Any] = {ENVELOPE_FIELD: envelope}
        seen = 1 if "type" in event else 0
        for name, in_envelope, has_default, check in self._checks:
            try:
                value = event[name]
            except KeyError:
                if has_default:
                    continue
                raise InvalidEvent(
                    f"invalid {self.type_name} event: missing field {name!r}"
                ) from None
            seen += 1
            problem = check(value)
            if problem is not None:
                raise InvalidEvent(
                    f"invalid {self.type_name} event: field {name!r} must be {problem}; "
                    f"got {show_value(value)}"
                )
            bad = bounds.value_problem(name, value)
            if bad is not None:  # what decode would refuse is never written
                raise InvalidEvent(f"invalid {self.type_name} event: field {name!r}: {bad}")
            if in_envelope:
                envelope[name] = value
            else:
                datum[name] = value
        if seen != len(event):
            known = {"type", *self._flat_names}
            unknown = sorted(str(k) for k in event if k not in known)
            raise InvalidEvent(
                f"invalid {self.type_name} event: unknown field(s) {', '.join(unknown)} "
                f"(fields of {self.full_name}: {', '.join(sorted(known))})"
            )
        return datum

    def typed_datum(self, event: EventRecord) -> dict[str, Any] | None:
        """The datum of a typed event, unchecked (its type was made from a checked event);
        None when its class does not have exactly this schema's fields (another version)."""
        if type(event).__struct_fields__ != self._flat_names:
            return None
        envelope: dict[str, Any] = {"type": self.type_name}
        datum: dict[str, Any] = {ENVELOPE_FIELD: envelope}
        for name, in_envelope, *_ in self.rules:
            (envelope if in_envelope else datum)[name] = getattr(event, name)
        return datum

    def diagnose(self, data: bytes, exc: Exception, reader: RegisteredSchema | None) -> CodecError:
        """The error to raise for ``data`` (header included) that fastavro failed on."""
        walker = _Walker(data, HEADER_SIZE, self.parsed.get("__named_schemas", {}))
        try:
            walker.walk(self.parsed, "")
        except _Short as short:
            return TruncatedRecord(
                f"{self.type_name} record (writer fingerprint {self.fingerprint_hex}): "
                f"expected {short.expected} more byte(s) for field {walker.where!r} at byte "
                f"{walker.pos} of {len(data)}, got {short.got}; record truncated or corrupt"
            )
        except (_Bad, KeyError, TypeError) as bad:
            return CorruptRecord(
                f"{self.type_name} record (writer fingerprint {self.fingerprint_hex}) is "
                f"corrupt at field {walker.where!r} (byte {walker.pos} of {len(data)}): {bad}"
            )
        if reader is not None:
            return SchemaMismatch(
                f"cannot read a {self.full_name} record (writer fingerprint "
                f"{self.fingerprint_hex}) with reader schema {reader.full_name} "
                f"(fingerprint {reader.fingerprint_hex}): {exc}"
            )
        return CorruptRecord(
            f"{self.type_name} record (writer fingerprint {self.fingerprint_hex}) could not be "
            f"decoded: {type(exc).__name__}: {exc}"
        )


class SchemaStore:
    """Parsed schemas keyed by fingerprint and by event type name.

    Loaded with every schema of the catalogue (input and output events). ``register``
    adds other versions; for each type name one version is *current*, the one
    :func:`encode` writes with (the catalogue's unless another is registered current).
    """

    def __init__(self, *, catalogue: bool = True) -> None:
        self._definitions: dict[str, Any] = {}
        self._by_fingerprint: dict[int, RegisteredSchema] = {}
        self._current: dict[str, RegisteredSchema] = {}
        self._readers_by_id: dict[int, tuple[Mapping[str, Any], RegisteredSchema]] = {}
        self._readers_by_text: dict[str, RegisteredSchema] = {}
        collect_definitions(raw_schema("Envelope"), None, self._definitions)
        for name in ALL_TYPES:
            collect_definitions(raw_schema(name), None, self._definitions)
        if catalogue:
            for name in ALL_TYPES:
                self.register(raw_schema(name))
            for schema in previous_schemas():  # readable, never written
                self.register(schema)

    def prepare(self, schema: Mapping[str, Any] | str) -> RegisteredSchema:
        """Parse ``schema`` (a dict, or JSON text), resolving named types it refers to but
        does not define (``lifecert.events.Envelope``, the catalogue's enums), without
        registering it."""
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise SchemaError(f"schema is not valid JSON: {exc}") from exc
        if not isinstance(schema, Mapping):
            raise SchemaError(f"a schema must be a JSON object, got {type(schema).__name__}")
        return RegisteredSchema(_inline(dict(schema), self._definitions))

    def register(
        self, schema: Mapping[str, Any] | str | RegisteredSchema, *, current: bool = False
    ) -> RegisteredSchema:
        """Add a writer schema so records written with it decode; returns it (its
        ``fingerprint`` included). ``current=True`` makes :func:`encode` write its type
        with it. Registering a schema already known returns the stored one."""
        rs = schema if isinstance(schema, RegisteredSchema) else self.prepare(schema)
        rs = self._by_fingerprint.setdefault(rs.fingerprint, rs)
        if current or rs.type_name not in self._current:
            self._current[rs.type_name] = rs
        return rs

    def by_fingerprint(self, fingerprint: int | bytes) -> RegisteredSchema:
        """The schema with this fingerprint (int, or the 8 header bytes); KeyError if none."""
        if isinstance(fingerprint, bytes | bytearray):
            fingerprint = int.from_bytes(fingerprint, "little")
        return self._by_fingerprint[fingerprint]

    def by_type(self, type_name: str) -> RegisteredSchema:
        """The current schema of event type ``type_name``; KeyError if none."""
        return self._current[type_name]

    def versions(self, type_name: str) -> tuple[RegisteredSchema, ...]:
        """Every registered schema of ``type_name``, in registration order."""
        return tuple(rs for rs in self._by_fingerprint.values() if rs.type_name == type_name)

    def fingerprints(self) -> dict[int, str]:
        """Fingerprint -> full name of every registered schema."""
        return {fp: rs.full_name for fp, rs in self._by_fingerprint.items()}

    def type_names(self) -> tuple[str, ...]:
        """The event type names with a current schema."""
        return tuple(self._current)

    def __iter__(self) -> Iterator[RegisteredSchema]:
        return iter(tuple(self._by_fingerprint.values()))

    def __len__(self) -> int:
        return len(self._by_fingerprint)

    def __contains__(self, fingerprint: object) -> bool:
        return fingerprint in self._by_fingerprint

    def reader(self, schema: Mapping[str, Any] | str | RegisteredSchema) -> RegisteredSchema:
        """``schema`` prepared as a reader schema, cached by identity (a dict must not be
        changed after use) or by JSON text."""
        if isinstance(schema, RegisteredSchema):
            return schema
        if isinstance(schema, str):
            rs = self._readers_by_text.get(schema)
            if rs is None:
                rs = self._readers_by_text[schema] = self.prepare(schema)
            return rs
        # The cache holds the dict itself, so its id cannot be reused while cached.
        hit = self._readers_by_id.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        rs = self.prepare(schema)
        if len(self._readers_by_id) >= 256:
            self._readers_by_id.clear()
        self._readers_by_id[id(schema)] = (schema, rs)
        return rs

    def _unknown(self, fingerprint: int, raw: bytes) -> UnknownFingerprint:
        known = ", ".join(
            f"{rs.type_name} {rs.fingerprint_hex}" for rs in self._by_fingerprint.values()
        )
        return UnknownFingerprint(
            f"unknown writer schema fingerprint {fingerprint:016x} (header bytes {raw.hex()}): "
            f"no schema with this CRC-64-AVRO fingerprint is in the store; register the "
            f"writer's schema with SchemaStore.register() to decode such records. "
            f"Known ({len(self._by_fingerprint)}): {known}",
            fingerprint,
        )


@cache
def default_store() -> SchemaStore:
    """The catalogue's schemas, parsed once per process."""
    return SchemaStore()


# ------------------------------------------------------------------ codec


def to_datum(event: Mapping[str, Any]) -> dict[str, Any]:
    """The Avro datum of a flat event: envelope fields nested under ``envelope``.

    Conversion only; :func:`encode` also checks every value against the schema.
    """
    envelope = {k: event[k] for k in _CATALOGUE_ENVELOPE_FIELDS if k in event}
    datum: dict[str, Any] = {ENVELOPE_FIELD: envelope}
    for key, value in event.items():
        if key not in envelope:
            datum[key] = value
    return datum


def from_datum(type_name: str, datum: Mapping[str, Any]) -> dict[str, Any]:
    """The flat event of an Avro datum; ``type`` is ``type_name``, whatever the envelope says."""
    event: dict[str, Any] = {"type": type_name}
    for key, value in datum.items():
        if key == ENVELOPE_FIELD:
            for env_key, env_value in value.items():
                if env_key != "type":
                    event[env_key] = env_value
        else:
            event[key] = value
    return event


def encode(event: EventLike, store: SchemaStore | None = None) -> bytes:
    """The single-object encoding of a flat event, written with its type's current schema.

    A typed event (:mod:`lifecert.events.types`) is written as it is: its values were
    checked when it was parsed. A ``dict`` is checked field by field first.
    Raises InvalidEvent (UnknownEventType for a type without a schema).
    """
    if store is None:
        store = default_store()
    if isinstance(event, EventRecord):
        rs = store._current.get(event.type_name)
        datum = None if rs is None else rs.typed_datum(event)
        if rs is not None and datum is not None:
            return _write(rs, datum)
        event = event.to_dict()  # another version of the schema: checked as a dict
    try:
        type_name = event["type"]
        rs = store._current[type_name]
    except KeyError:
        if "type" not in event:
            raise InvalidEvent("event has no 'type' field") from None
        raise UnknownEventType(
            f"no schema for event type {event['type']!r}; known types: "
            f"{', '.join(store.type_names())}"
        ) from None
    except TypeError:
        raise InvalidEvent(
            f"an event must be a dict with a str 'type', got {show_value(event)}"
        ) from None
    return _write(rs, rs.to_datum(event))


def _write(rs: RegisteredSchema, datum: dict[str, Any]) -> bytes:
    buf = BytesIO()
    buf.write(rs.header)
    try:
        schemaless_writer(buf, rs.parsed, datum)
    except Exception as exc:  # only what validation does not foresee (e.g. bad UTF-8)
        raise InvalidEvent(
            f"invalid {rs.type_name} event: {type(exc).__name__}: {exc}") from exc
    return buf.getvalue()


def decode(
    data: bytes | bytearray | memoryview,
    store: SchemaStore | None = None,
    reader_schema: Mapping[str, Any] | str | RegisteredSchema | None = None,
) -> dict[str, Any]:
    """The flat event of a single-object encoded record.

    With ``reader_schema`` the body is resolved to it (Avro schema resolution): fields it
    adds take their defaults. Timestamps come back as aware UTC datetimes. Values outside
    :mod:`lifecert.events.bounds` raise :class:`InvalidValue`, so that no reader of the log
    meets an id with a control character or a date its arithmetic cannot handle.
    """
    if store is None:
        store = default_store()
    if data[:2] != MARKER:
        if len(data) < 2 and MARKER.startswith(bytes(data)):
            raise TruncatedRecord(
                f"expected {HEADER_SIZE} header bytes (marker c3 01 and 8-byte fingerprint), "
                f"got {len(data)}; record truncated or corrupt"
            )
        head = bytes(data[:2]).hex(" ")
        hint = " (a Confluent Schema Registry frame starts with 00)" if data[:1] == b"\x00" else ""
        raise BadMarker(
            f"not an Avro single-object encoded record: expected marker c3 01, got {head}{hint}"
        )
    if len(data) < HEADER_SIZE:
        raise TruncatedRecord(
            f"expected {HEADER_SIZE} header bytes (marker c3 01 and 8-byte fingerprint), "
            f"got {len(data)}; record truncated or corrupt"
        )
    fingerprint = int.from_bytes(data[2:HEADER_SIZE], "little")
    writer = store._by_fingerprint.get(fingerprint)
    if writer is None:
        raise store._unknown(fingerprint, bytes(data[2:HEADER_SIZE]))
    reader = None if reader_schema is None else store.reader(reader_schema)
    fo = BytesIO(data)
    fo.seek(HEADER_SIZE)
    try:
        datum = schemaless_reader(fo, writer.parsed, None if reader is None else reader.parsed)
    except Exception as exc:  # fastavro raises EOFError, IndexError, ValueError...
        raise writer.diagnose(bytes(data), exc, reader) from exc
    if fo.tell() != len(data):
        raise CorruptRecord(
            f"{writer.type_name} record has {len(data) - fo.tell()} byte(s) after its body "
            f"(expected {fo.tell()} bytes in all): corrupt, or not written with schema "
            f"{writer.fingerprint_hex}"
        )
    if not isinstance(datum, dict):
        raise CorruptRecord(f"{writer.full_name} did not decode to a record")
    envelope = datum.get(ENVELOPE_FIELD)
    if isinstance(envelope, dict) and envelope.get("type", writer.type_name) != writer.type_name:
        raise CorruptRecord(
            f"envelope type {envelope['type']!r} does not match the writer schema "
            f"{writer.full_name}"
        )
    event = from_datum(writer.type_name if reader is None else reader.type_name, datum)
    problem = bounds.event_problem(event)
    if problem is not None:
        field, text = problem
        raise InvalidValue(
            f"{writer.type_name} record (writer fingerprint {writer.fingerprint_hex}), field "
            f"{field!r}: {text}", field)
    return event
