"""The consular system's case feed: what a case looks like, how it is signed, how it maps.

The spec a consular-system engineer implements is docs/partners/consular-app.md; in short:

- ``GET /v1/health`` answers 200 when the feed is up.
- ``GET /v1/bureaus/<division>/cases?after=<seq>&limit=<n>`` (bearer token, HTTPS) answers
  ``{"cases": [{"seq": 17, "key_id": "...", "payload": "<base64>", "signature":
  "<base64>"}, ...], "last_seq": 42}``: the cases pushed to that bureau after ``seq``,
  in ``seq`` order. ``seq`` is the feed's position, never reused.
- ``payload`` is the case as UTF-8 JSON bytes; ``signature`` is the consular system's
  Ed25519 signature of exactly those bytes. The bureau pins the consular system's public
  key and never reads a payload whose signature does not verify.

The payload (every field required)::

    {"caseNo": "LS2017-000123",                 # the case number (a redelivery keeps it)
     "pensionNo": "FS095160846",                # Foshan's pension id (no passport number)
     "mission": {"code": "CN-CG-VANCOUVER",     # the mission's code in the directory
                 "type": "CONSULATE_GENERAL",   # EMBASSY, CONSULATE_GENERAL, CONSULATE,
                                                # TRADE_OFFICE, CARETAKER_EMBASSY
                 "country": "CA"},              # ISO 3166-1 alpha-2, country of residence
     "documentsChecked": ["PASSPORT", "RESIDENCE_PERMIT"],
     "faceCheck": {"passed": true, "at": "2017-05-03T22:15:00+08:00"},
     "pushedAt": "2017-05-04T09:00:00+08:00"}
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from lifecert.events import bounds
from lifecert.events.catalogue import Event, enum_symbols
from lifecert.events.interchange import loads

HEALTH_PATH = "/v1/health"
FOSHAN = "440600"
MISSION_TYPES: tuple[str, ...] = enum_symbols("MissionKind")
DOCUMENTS: tuple[str, ...] = ("PASSPORT", "RESIDENCE_PERMIT")
MAX_PAYLOAD = 64 * 1024
_COUNTRY = re.compile(r"[A-Z]{2}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2}|Z)")


def feed_path(division: str) -> str:
    return f"/v1/bureaus/{division}/cases"


class CaseRejected(Exception):
    """A case that cannot be taken; ``reason`` names the field and what to do."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_verify_key(path: str | Path) -> Ed25519PublicKey:
    """The consular system's public key from a PEM file; ``ValueError`` saying what is
    wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        key = load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"{path} holds no PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def b64(value: Any, field: str) -> bytes:
    if type(value) is not str:
        raise CaseRejected(f"field {field}: expected base64 text, got {bounds.show(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CaseRejected(f"field {field}: {bounds.show(value)} is not base64") from None


def verify(key: Ed25519PublicKey, payload: bytes, signature: bytes) -> None:
    """``CaseRejected`` unless ``signature`` is the consular system's over ``payload``."""
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        raise CaseRejected(
            "field signature: the Ed25519 signature does not verify with the consular "
            "system's public key (verify_key_file): the case was altered or not signed by "
            "the consular system; ask it to push the case again") from None


def case_to_event(payload: bytes) -> Event:
    """The ConsularCaseReceived of a verified payload; ``CaseRejected`` naming the field."""
    if len(payload) > MAX_PAYLOAD:
        raise CaseRejected(f"payload: {len(payload)} bytes, at most {MAX_PAYLOAD}")
    try:
        case = loads(payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CaseRejected(f"payload: byte {exc.start + 1} is not UTF-8") from None
    except ValueError as exc:
        raise CaseRejected(f"payload: not JSON ({exc})") from None
    if not isinstance(case, dict):
        raise CaseRejected(f"payload: expected a JSON object, got {type(case).__name__}")
    mission = _object(case, "mission")
    face = _object(case, "faceCheck")
    documents = case.get("documentsChecked")
    if not isinstance(documents, list) or any(d not in DOCUMENTS for d in documents) \
            or len(set(documents)) != len(documents):
        raise CaseRejected(f"field documentsChecked: {bounds.show(documents)} is not a list of "
                           f"distinct {', '.join(DOCUMENTS)}")
    passed = face.get("passed")
    if type(passed) is not bool:
        raise CaseRejected(f"field faceCheck.passed: expected true or false, got "
                           f"{bounds.show(passed)}")
    kind = mission.get("type")
    if kind not in MISSION_TYPES:
        raise CaseRejected(f"field mission.type: {bounds.show(kind)} is not one of "
                           f"{', '.join(MISSION_TYPES)}")
    country = mission.get("country")
    if type(country) is not str or not _COUNTRY.fullmatch(country):
        raise CaseRejected(f"field mission.country: {bounds.show(country)} is not an ISO "
                           f"3166-1 alpha-2 code such as CA")
    return {
        "type": "ConsularCaseReceived",
        "recorded_at": _time(case.get("pushedAt"), "pushedAt"),
        "case_id": _id(case.get("caseNo"), "caseNo", "case_id"),
        "retiree_id": _id(case.get("pensionNo"), "pensionNo", "retiree_id"),
        "mission_id": _id(mission.get("code"), "mission.code", "mission_id"),
        "mission_kind": kind,
        "country": country,
        "passport_checked": "PASSPORT" in documents,
        "residence_permit_checked": "RESIDENCE_PERMIT" in documents,
        "face_checked": passed,
        "performed_at": _time(face.get("at"), "faceCheck.at"),
    }


def event_to_case(event: Event) -> dict[str, Any]:
    """The payload of a ConsularCaseReceived in interchange form (the simulator's side)."""
    documents = [d for d, checked in (("PASSPORT", event["passport_checked"]),
                                      ("RESIDENCE_PERMIT", event["residence_permit_checked"]))
                 if checked]
    return {"caseNo": event["case_id"], "pensionNo": event["retiree_id"],
            "mission": {"code": event["mission_id"], "type": event["mission_kind"],
                        "country": event["country"]},
            "documentsChecked": documents,
            "faceCheck": {"passed": event["face_checked"], "at": _iso(event["performed_at"])},
            "pushedAt": _iso(event["recorded_at"])}


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _object(case: dict[str, Any], field: str) -> dict[str, Any]:
    value = case.get(field)
    if not isinstance(value, dict):
        raise CaseRejected(f"field {field}: expected an object, got {bounds.show(value)}")
    return value


def _id(value: Any, field: str, kind: str) -> str:
    if type(value) is not str or not value:
        raise CaseRejected(f"field {field}: required text, got {bounds.show(value)}")
    if problem := bounds.id_problem(kind, value):
        raise CaseRejected(f"field {field}: {problem}")
    return value


def _time(value: Any, field: str) -> str:
    if type(value) is not str or not _TIME.fullmatch(value):
        raise CaseRejected(f"field {field}: {bounds.show(value)} is not a time as "
                           f"YYYY-MM-DDTHH:MM:SS+08:00 (with its UTC offset)")
    try:
        at = datetime.fromisoformat(value)
        problem = bounds.year_problem(at) or bounds.year_problem(at.astimezone(UTC))
    except (ValueError, OverflowError):
        problem = "no such date or time"
    if problem:
        raise CaseRejected(f"field {field}: {bounds.show(value)}: {problem}")
    return value
