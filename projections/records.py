"""From Kafka records to read-model rows (pure: no I/O).

A :class:`BatchBuilder` takes consumed records in poll order and sorts each into a ledger
row (output topics), a status row (status topic), a contact row (the input log's
ContactDetailsUpdated; every other input is read past by its header alone) or a rejection
(undecodable, empty, or not a type its topic carries), or a consular case or review
(the consular-cases topic, issue 13), and tracks the next offset of every partition it saw.
The API's security alerts (``SecurityAlert``, on the alerts topic beside the worker's
``FraudSuspected``) concern an agency, not a retiree: they are read past, not projected
(the topic keeps them; the bureau's security staff read them there).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from lifecert.domain.policy import available_policies, load_policy
from lifecert.events.catalogue import SECURITY_TYPES, personal_field_names
from lifecert.events.codec import HEADER_SIZE, CodecError, decode, default_store
from lifecert.events.interchange import MalformedEvent, parse_event, to_json
from lifecert.events.personal import is_sealed
from lifecert.pipeline.topics import (
    ASSISTANCE_RESULTS,
    CONNECTOR_STATUS,
    CONSULAR_CASES,
    DEAD_LETTERS,
    EVENTS,
    HOME_VISIT_REPORTS,
    STATUS,
    TopicLayout,
)
from projections.health import (
    ConnectorHeartbeat,
    DeadLetterEntry,
    HeartbeatError,
    dead_letter_entry,
    parse_heartbeat,
)

TopicPartitionKey = tuple[str, int]

HOLD_PLACED = "PaymentHoldPlaced"
HOLD_ENDED = frozenset({"PaymentHoldReleased", "PaymentTerminated"})
VERDICT = "EventRejected"
CONTACT = "ContactDetailsUpdated"
CERTIFICATION = "CertificationRecorded"
DOCUMENTS = "CertificationDocumentsReceived"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def form_channels() -> frozenset[str]:
    """The channels whose certifications need the paper form back, in any policy."""
    channels: set[str] = set()
    for name in available_policies():
        channels |= load_policy(name).document_channels
    return frozenset(channels)


class Record(Protocol):
    """What the builder reads of a kafka-python ``ConsumerRecord``."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(slots=True)
class LedgerRow:
    event_id: str
    type: str
    retiree_id: str
    recorded_at: datetime
    effective_month: str | None
    amount_fen: int | None
    payload: dict[str, Any]  # the interchange JSON form (interchange.to_json)
    payload_text: str  # and as JSON text
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class StatusRow:
    retiree_id: str
    policy: str
    status: str
    district: str | None
    residence: str
    completed_by: str | None
    completed_at: datetime | None
    revocations: int
    retractions: int
    event_id: str
    recorded_at: datetime
    topic: str
    partition: int
    offset: int
    performed_on: date | None = None
    death_source: str | None = None  # who reported the standing death (DeathRecorded.source)
    death_recorded_at: datetime | None = None


@dataclass(slots=True)
class ContactRow:
    retiree_id: str
    phone_sealed: str | None
    address_sealed: str | None
    channel: str
    agency_id: str
    event_id: str
    recorded_at: datetime
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class ConsularRow:
    """A ConsularCaseReceived or ConsularCaseReviewed, as its event's fields."""

    type: str
    event: dict[str, Any]
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class FormCertificationRow:
    """A certification whose paper form must come back (the paper-forms read model)."""

    agency_id: str
    certification_id: str
    retiree_id: str
    channel: str
    performed_at: datetime
    recorded_at: datetime
    event_id: str
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class PaperFormRow:
    """A returned paper form (CertificationDocumentsReceived)."""

    event_id: str
    retiree_id: str
    certification_id: str
    agency_id: str | None
    form_number: int | None
    postmarked_on: Any
    received_at: datetime
    scan_sha256: str | None
    recorded_at: datetime
    source_agency: str
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class VerdictRow:
    event_id: str
    retiree_id: str
    policy: str
    reason: str
    judged_type: str
    judged_event_id: str | None
    reported_by: str | None
    certification_id: str | None
    agency_id: str | None
    performed_at: datetime | None
    recorded_at: datetime
    payload_text: str  # the interchange JSON form (interchange.to_json)
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Rejected:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass
class Batch:
    """Records of one transaction, sorted. ``ledger`` keeps poll order (so one retiree's
    instructions keep their log order) and the first record of each event id; ``statuses``
    keeps the latest record per (retiree, policy)."""

    ledger: list[LedgerRow] = field(default_factory=list)
    statuses: dict[tuple[str, str], StatusRow] = field(default_factory=dict)
    contacts: dict[str, ContactRow] = field(default_factory=dict)  # latest per retiree
    consular: list[ConsularRow] = field(default_factory=list)  # poll order
    # what the home-visit teams reported (HomeVisitReported; ConsularRow's shape), poll order
    home_visits: list[ConsularRow] = field(default_factory=list)
    # the paper-forms read model: the first recording of each (agency, certification), and
    # each form once by event id
    form_certifications: dict[tuple[str, str], FormCertificationRow] = field(
        default_factory=dict)
    paper_forms: dict[str, PaperFormRow] = field(default_factory=dict)
    # assistance case events (lifecert.domain.assistance), in poll order: the store folds
    # them onto the stored cases in the batch's transaction
    cases: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    verdicts: list[VerdictRow] = field(default_factory=list)  # poll order, first per id
    # the connectors' heartbeats, the latest per instance (None: a tombstone, forget it)
    heartbeats: dict[str, ConnectorHeartbeat | None] = field(default_factory=dict)
    # the dead letters' index (no payload, no reason): once per dead letter id
    dead_letters: dict[str, DeadLetterEntry] = field(default_factory=dict)
    next_offsets: dict[TopicPartitionKey, int] = field(default_factory=dict)
    records: int = 0


class BatchBuilder:
    def __init__(self, topics: TopicLayout) -> None:
        self._status_topic = topics[STATUS].name
        self._carries: dict[str, frozenset[str]] = {
            topics[role].name: frozenset(topics[role].carries) for role in topics.output_roles
        }
        self._carries[self._status_topic] = frozenset(topics[STATUS].carries)
        self._events_topic = topics[EVENTS].name
        self._carries[self._events_topic] = frozenset({CONTACT, CERTIFICATION, DOCUMENTS})
        store = default_store()
        self._contact_header = store.by_type(CONTACT).header
        self._consular_topic = topics[CONSULAR_CASES].name
        self._carries[self._consular_topic] = frozenset(topics[CONSULAR_CASES].carries)
        # every version's header: forms written before the mailroom's schema count too
        self._form_headers = {rs.header: rs.type_name for name in (CERTIFICATION, DOCUMENTS)
                              for rs in store.versions(name)}
        self._form_channels = form_channels()
        self._visits_topic = topics[HOME_VISIT_REPORTS].name
        self._carries[self._visits_topic] = frozenset(topics[HOME_VISIT_REPORTS].carries)
        self._cases_topic = topics[ASSISTANCE_RESULTS].name
        self._carries[self._cases_topic] = frozenset(topics[ASSISTANCE_RESULTS].carries)
        self._dead_topic = topics[DEAD_LETTERS].name
        self._carries[self._dead_topic] = frozenset(topics[DEAD_LETTERS].carries)
        self._heartbeat_topic = topics[CONNECTOR_STATUS].name
        self.batch = Batch()
        self._ledger_ids: set[str] = set()

    @property
    def topic_names(self) -> tuple[str, ...]:
        return tuple(self._carries)

    def add(self, record: Record) -> None:
        batch = self.batch
        batch.records += 1
        batch.next_offsets[(record.topic, record.partition)] = record.offset + 1
        try:
            if record.topic == self._dead_topic:
                # Counted, never set aside again: a dead letter that cannot be read is
                # counted as such (dead-lettering it would feed this topic to itself).
                entry = dead_letter_entry(record.topic, record.partition, record.offset,
                                          record.value)
                batch.dead_letters.setdefault(entry.letter_id, entry)
                return
            if record.topic == self._heartbeat_topic:
                self._add_heartbeat(record)
                return
            if record.topic == self._events_topic:
                # The input log: only contact updates and the paper forms' certifications
                # and returns are projected; the rest (and what the worker dead-letters) is
                # read past by the header, without decoding.
                value = record.value
                header = value[:HEADER_SIZE] if value is not None else b""
                if header == self._contact_header:
                    self._add_contact(record, self._decode(record))
                elif header in self._form_headers:
                    self._add_form(record, self._decode(record))
                return
            event = self._decode(record)
            if event["type"] in SECURITY_TYPES:
                return  # not a retiree's: nothing to project (see the module's doc)
            if record.topic == self._cases_topic:
                batch.cases.append(event)
            elif record.topic == self._status_topic:
                self._add_status(record, event)
            elif record.topic == self._visits_topic:
                if _has_nul(event):
                    raise _nul(event)
                batch.home_visits.append(ConsularRow(event["type"], event, record.topic,
                                                     record.partition, record.offset))
            elif record.topic == self._consular_topic:
                if _has_nul(event):
                    raise _nul(event)
                batch.consular.append(ConsularRow(event["type"], event, record.topic,
                                                  record.partition, record.offset))
            elif event["type"] == VERDICT:
                self._add_verdict(record, event)
            else:
                self._add_ledger(record, event)
        except _Reject as reject:
            # A contact update's value holds personal data: it is not copied into the
            # dead letter (the input log keeps it; the position names it).
            personal = record.topic == self._events_topic
            batch.rejected.append(
                Rejected(
                    record.topic, record.partition, record.offset,
                    record.key, None if personal else record.value, str(reject),
                )
            )

    def _add_heartbeat(self, record: Record) -> None:
        if not record.key:
            raise _Reject("a connector heartbeat without a key (the instance name)")
        try:
            name = record.key.decode("utf-8")
            beat = None if record.value is None else parse_heartbeat(name, record.value)
        except (UnicodeDecodeError, HeartbeatError) as exc:
            raise _Reject(f"connector heartbeat: {exc}") from None
        self.batch.heartbeats[name] = beat  # poll order: the last one is the latest

    def _decode(self, record: Record) -> dict[str, Any]:
        carries = self._carries.get(record.topic)
        if carries is None:
            raise _Reject(f"projections do not read topic {record.topic!r}")
        if record.value is None:
            raise _Reject(
                "record has no value (a tombstone?); projections expect an Avro "
                f"single-object encoded {' or '.join(sorted(carries))}"
            )
        try:
            event = decode(record.value)
        except CodecError as exc:
            raise _Reject(f"undecodable record: {exc}") from None
        if event["type"] not in carries:
            raise _Reject(
                f"{event['type']} does not belong on topic {record.topic} "
                f"(it carries {', '.join(sorted(carries))}); see lifecert/pipeline/topics.toml"
            )
        return event

    def _add_ledger(self, record: Record, event: dict[str, Any]) -> None:
        event_id = event["event_id"]
        if event_id in self._ledger_ids:
            return  # a duplicate delivery within the batch: the first one counts
        payload = to_json(event)
        try:  # what the codec does not check: months are YYYY-MM, the lists' items too
            parse_event(dict(payload), allowed=(event["type"],))
        except MalformedEvent as exc:
            raise _Reject(f"invalid {event['type']} {event_id!r}: {exc.describe()}") from None
        text = _dumps(payload)
        if "\\u0000" in text and _has_nul(payload):  # JSON escapes NUL: a cheap pre-check
            raise _nul(event)
        self._ledger_ids.add(event_id)
        amount = event.get("backpay_amount_fen", event.get("amount_fen"))
        self.batch.ledger.append(
            LedgerRow(
                event_id=event_id,
                type=event["type"],
                retiree_id=event["retiree_id"],
                recorded_at=event["recorded_at"],
                effective_month=event.get("effective_month"),
                amount_fen=amount,
                payload=payload,
                payload_text=text,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        )

    def _add_verdict(self, record: Record, event: dict[str, Any]) -> None:
        event_id = event["event_id"]
        if event_id in self._ledger_ids:
            return
        payload = to_json(event)
        text = _dumps(payload)
        if "\\u0000" in text and _has_nul(payload):
            raise _nul(event)
        self._ledger_ids.add(event_id)
        self.batch.verdicts.append(
            VerdictRow(
                event_id=event_id,
                retiree_id=event["retiree_id"],
                policy=event["policy"],
                reason=event["reason"],
                judged_type=event["judged_type"],
                judged_event_id=event.get("judged_event_id"),
                reported_by=event.get("reported_by"),
                certification_id=event.get("certification_id"),
                agency_id=event.get("agency_id"),
                performed_at=event.get("performed_at"),
                recorded_at=event["recorded_at"],
                payload_text=text,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        )

    def _add_contact(self, record: Record, event: dict[str, Any]) -> None:
        for name in personal_field_names(CONTACT):
            value = event.get(name)
            if value is not None and not is_sealed(value):
                raise _Reject(
                    f"{CONTACT} {event['event_id']!r}: personal field {name} is not sealed "
                    "(every producer seals it: lifecert.events.personal.seal_personal); "
                    "the contact read model keeps no clear value"
                )
        row = ContactRow(
            retiree_id=event["retiree_id"],
            phone_sealed=event.get("phone"),
            address_sealed=event.get("address"),
            channel=event["channel"],
            agency_id=event["agency_id"],
            event_id=event["event_id"],
            recorded_at=event["recorded_at"],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        if "\x00" in row.retiree_id + row.agency_id + row.event_id:
            raise _nul(event)
        self.batch.contacts[row.retiree_id] = row  # poll order: the last one is the latest

    def _add_form(self, record: Record, event: dict[str, Any]) -> None:
        """A certification that needs its form, or a returned form (paper_forms). The
        worker dead-letters what it cannot take; here a record that is not one is passed
        over (the input log is the worker's to judge)."""
        ids = (event["retiree_id"], event["certification_id"], event.get("agency_id") or "",
               event["event_id"])
        if any("\x00" in v for v in ids):
            raise _nul(event)
        where = (record.topic, record.partition, record.offset)
        if event["type"] == CERTIFICATION:
            if event["channel"] not in self._form_channels:
                return
            key = (event["agency_id"], event["certification_id"])
            self.batch.form_certifications.setdefault(key, FormCertificationRow(
                key[0], key[1], event["retiree_id"], event["channel"], event["performed_at"],
                event["recorded_at"], event["event_id"], *where))
            return
        sha = event.get("scan_sha256")
        self.batch.paper_forms.setdefault(event["event_id"], PaperFormRow(
            event["event_id"], event["retiree_id"], event["certification_id"],
            event.get("agency_id"), event.get("form_number"), event.get("postmarked_on"),
            event["received_at"], sha if sha and _SHA256.fullmatch(sha) else None,
            event["recorded_at"], event.get("source_agency") or "", *where))

    def _add_status(self, record: Record, event: dict[str, Any]) -> None:
        # Enum fields cannot hold a NUL; the free strings can.
        death_source = event.get("death_source")
        if "\x00" in event["retiree_id"] + event["policy"] + event["event_id"] + (
                death_source or ""):
            raise _nul(event)
        row = StatusRow(
            retiree_id=event["retiree_id"],
            policy=event["policy"],
            status=event["status"],
            district=event.get("district"),
            residence=event["residence"],
            completed_by=event.get("completed_by"),
            completed_at=event.get("completed_at"),
            revocations=event.get("revocations", 0),
            retractions=event.get("retractions", 0),
            event_id=event["event_id"],
            recorded_at=event["recorded_at"],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            performed_on=event.get("performed_on"),
            death_source=death_source,
            death_recorded_at=event.get("death_recorded_at"),
        )
        # Poll order is offset order within a partition, and a retiree's statuses share one
        # partition: the last one added is the latest.
        self.batch.statuses[(row.retiree_id, row.policy)] = row


class _Reject(Exception):
    pass


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _nul(event: dict[str, Any]) -> _Reject:
    return _Reject(
        f"{event['type']} {event['event_id']!r} has a NUL character in a string; "
        "PostgreSQL text cannot hold it"
    )


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def hold_changes(new_rows: list[LedgerRow]) -> tuple[set[str], list[LedgerRow]]:
    """The net effect on ``open_holds`` of newly ledgered instructions, in log order:
    retirees whose holds end (delete them first), then holds placed after that."""
    ended: set[str] = set()
    placed: dict[str, list[LedgerRow]] = {}
    for row in new_rows:
        if row.type == HOLD_PLACED:
            placed.setdefault(row.retiree_id, []).append(row)
        elif row.type in HOLD_ENDED:
            ended.add(row.retiree_id)
            placed.pop(row.retiree_id, None)
    return ended, [row for rows in placed.values() for row in rows]
