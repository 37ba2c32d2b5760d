"""The event catalogue, read from the Avro schemas shipped in this package.

The ``.avsc`` files are the single source of the event vocabulary: field names, types,
enum symbols. The JSON interchange parser and the codec both derive from this module.

In memory an event is a flat ``dict``: the envelope fields ``type``, ``event_id``,
``recorded_at``, ``source_agency`` beside the payload fields, with values of these kinds:

========== ======================== ==============================================
kind       Python value             Avro
========== ======================== ==============================================
string     ``str``                  ``string``
long       ``int``                  ``long``
boolean    ``bool``                 ``boolean``
date       ``datetime.date``        ``int`` / ``date``
timestamp  aware ``datetime``       ``long`` / ``timestamp-micros``
month      ``str`` ``"YYYY-MM"``    ``string`` with field property ``lifecert.format: month``
months     ``list[str]``            ``array<string>`` with ``lifecert.format: month``
enum       ``str`` (a symbol)       ``enum``
========== ======================== ==============================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeAlias

Event: TypeAlias = dict[str, Any]
"""An event in its flat mapping form (the one declaration; the typed classes are in
:mod:`lifecert.events.types`)."""

NAMESPACE = "lifecert.events"
ENVELOPE = f"{NAMESPACE}.Envelope"

INPUT_TYPES: tuple[str, ...] = (
    "RetireeEnrolled",
    "PensionAmountChanged",
    "CertificationRecorded",
    "CertificationDocumentsReceived",
    "DeathRecorded",
    "CertificationRevoked",
    "DeathReportRetracted",
    "ContactDetailsUpdated",
)
OUTPUT_TYPES: tuple[str, ...] = (
    "PaymentHoldPlaced",
    "PaymentHoldReleased",
    "PaymentTerminated",
    "OverpaymentDetected",
    "FraudSuspected",
    "HomeVisitDue",
    "PaymentReinstated",
    "OverpaymentCancelled",
    "PaymentEstateSettled",
)
# The fold's verdicts: an input the rules did not apply, with its reason, sent back to the
# agency that reported it (on lifecert.verdicts; docs/rules.md, Verdicts).
VERDICT_TYPES: tuple[str, ...] = ("EventRejected",)
EVENT_TYPES: tuple[str, ...] = INPUT_TYPES + OUTPUT_TYPES + VERDICT_TYPES
# Records of the live pipeline itself: clock ticks in the input log, the status topic, and
# dead letters. They are not domain events (replay neither reads nor writes them).
PIPELINE_TYPES: tuple[str, ...] = ("ClockTick", "RetireeStatus", "DeadLetter")
# Records exchanged with partner systems that are not part of the campaign fold: the
# assistance cases ("please certify this person for us", lifecert.domain.assistance), both
# directions: the request, the acknowledgements, and the result (Foshan's results for other
# regions' and Macau SSF's beneficiaries living in Foshan go back to the partner); the
# consular system's cases and the bureau's reviews of them (an approval becomes a
# CertificationRecorded on the input log).
PARTNER_TYPES: tuple[str, ...] = (
    "AssistanceResult", "AssistanceRequested", "AssistanceAcknowledged",
    "ConsularCaseReceived", "ConsularCaseReviewed",
    # issue 14: what a district home-visit team found (the home-visit tasks read model),
    # and staff's dismissal of a death it reported
    "HomeVisitReported", "HomeVisitDeathDismissed",
)
# What the hub's edge raises for its security staff (on lifecert.alerts): about an agency,
# never about a retiree; the read models do not project them.
SECURITY_TYPES: tuple[str, ...] = ("SecurityAlert",)
ALL_TYPES: tuple[str, ...] = EVENT_TYPES + PIPELINE_TYPES + PARTNER_TYPES + SECURITY_TYPES

# Envelope fields as they appear flat in the interchange form; ``type`` names the event.
ENVELOPE_FIELDS: tuple[str, ...] = ("type", "event_id", "recorded_at", "source_agency")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of an event: its name, kind, whether null is allowed, enum symbols."""

    name: str
    kind: str
    nullable: bool = False
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event type: its name, its Avro schema (as loaded JSON) and its payload fields."""

    name: str
    schema: dict[str, Any]
    fields: tuple[FieldSpec, ...]

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}.{self.name}"


def _schema_text(name: str) -> str:
    return (resources.files("lifecert.events") / "schemas" / f"{NAMESPACE}.{name}.avsc").read_text(
        encoding="utf-8"
    )


@cache
def raw_schema(name: str) -> dict[str, Any]:
    """The schema of ``name`` (``"Envelope"`` or an event type) exactly as shipped."""
    schema: dict[str, Any] = json.loads(_schema_text(name))
    return schema


# A payload field whose schema says ``"lifecert.personal": true`` holds personal data
# (ContactDetailsUpdated's phone and address): never on a log line, never in an export
# other than the contact read model (DESIGN.md, rules 11-14; docs/events.md).
PERSONAL_PROPERTY = "lifecert.personal"


@cache
def personal_field_names(type_name: str) -> tuple[str, ...]:
    """The payload fields of ``type_name`` its schema declares personal (none for a name
    not in the catalogue)."""
    if type_name not in ALL_TYPES:
        return ()
    return tuple(
        f["name"] for f in raw_schema(type_name)["fields"] if f.get(PERSONAL_PROPERTY) is True
    )


def previous_schemas() -> list[dict[str, Any]]:
    """Earlier versions of shipped schemas (``schemas/previous/NAME.vN.avsc``), which a
    schema store still registers so that records written with them decode; e.g.
    FraudSuspected before ``FACE_MATCH_AFTER_NOT_LIVE`` was added to its reasons."""
    folder = resources.files("lifecert.events") / "schemas" / "previous"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".avsc")),
                   key=lambda f: f.name)
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def _kind(field: dict[str, Any], avro_type: Any) -> tuple[str, tuple[str, ...]]:
    fmt = field.get("lifecert.format")
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return "date", ()
        if logical == "timestamp-micros":
            return "timestamp", ()
        if avro_type["type"] == "enum":
            return "enum", tuple(avro_type["symbols"])
        if avro_type["type"] == "array" and fmt == "month":
            return "months", ()
        raise ValueError(f"unsupported Avro type in field {field['name']!r}: {avro_type!r}")
    if isinstance(avro_type, str) and avro_type.startswith(NAMESPACE + "."):
        return "enum", enum_symbols(avro_type[len(NAMESPACE) + 1 :])
    if avro_type == "bytes":
        return "bytes", ()
    if avro_type == "string":
        return ("month" if fmt == "month" else "string"), ()
    if avro_type in ("long", "int"):
        return "long", ()
    if avro_type == "boolean":
        return "boolean", ()
    raise ValueError(f"unsupported Avro type in field {field['name']!r}: {avro_type!r}")


def _field_spec(field: dict[str, Any]) -> FieldSpec:
    avro_type = field["type"]
    nullable = False
    if isinstance(avro_type, list):
        non_null = [t for t in avro_type if t != "null"]
        if len(non_null) != 1:
            raise ValueError(f"only [null, T] unions are supported: field {field['name']!r}")
        nullable, avro_type = True, non_null[0]
    kind, symbols = _kind(field, avro_type)
    return FieldSpec(field["name"], kind, nullable, symbols)


@cache
def event_spec(name: str) -> EventSpec:
    """The spec of event type ``name``; ``KeyError`` for a name not in the catalogue."""
    if name not in ALL_TYPES:
        raise KeyError(name)
    schema = raw_schema(name)
    fields = tuple(_field_spec(f) for f in schema["fields"] if f["name"] != "envelope")
    return EventSpec(name, schema, fields)


@cache
def envelope_spec() -> tuple[FieldSpec, ...]:
    """The envelope's fields (``type`` included)."""
    return tuple(_field_spec(f) for f in raw_schema("Envelope")["fields"])


def enum_symbols(enum_name: str) -> tuple[str, ...]:
    """Symbols of a named enum (e.g. ``"Channel"``) as declared in the schemas."""
    for name in ALL_TYPES:
        for field in raw_schema(name)["fields"]:
            candidates = field["type"] if isinstance(field["type"], list) else [field["type"]]
            for t in candidates:
                if isinstance(t, dict) and t.get("type") == "enum" and t["name"] == enum_name:
                    return tuple(t["symbols"])
    raise KeyError(enum_name)
