"""PartnerExchange: SubmitBatch, Subscribe, Acknowledge (proto/lifecert/v1/
partner_exchange.proto).

SubmitBatch, item by item: build the interchange event (the agency comes from the
certificate, ``recorded_at`` is now) and parse it once with ``parse_typed``; find the retiree
in the directory; ask the authorization matrix (an item of a kind or channel the role
may not report refuses the batch with PERMISSION_DENIED, nothing recorded; a retiree the
agency may not act for is rejected exactly as one not enrolled, UNKNOWN_RETIREE with the
same text, so that the answer tells nothing of where a retiree lives, which unit manages
them or whether they are enrolled); answer DUPLICATE for an event id the API accepted
before; publish the rest, wait for the broker's acknowledgements, remember them in
``api_accepted_events``, answer ACCEPTED. Event ids are uuid5 of agency, kind and the
idempotency key, so a resubmission that slips past the table (a crash between the
broker's ack and the insert) republishes the same event id, which the fold ignores.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import grpc
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.structs import TopicPartition
from google.protobuf.timestamp_pb2 import Timestamp

from lifecert.api import authz, db
from lifecert.api.feedorder import LogOrder
from lifecert.api.gate import Aborted, Call, Gate
from lifecert.api.protos import common_pb2, partner_exchange_pb2, partner_exchange_pb2_grpc
from lifecert.api.publisher import Publisher, Written
from lifecert.datakeys import KeyStore
from lifecert.domain.assistance import ANSWERED, INBOUND_PARTNERS, MACAU_SSF, RECEIVED
from lifecert.domain.fold import uuid5
from lifecert.events import bounds, codec
from lifecert.events.catalogue import EVENT_TYPES, INPUT_TYPES
from lifecert.events.interchange import MalformedEvent, loads, plain, to_json
from lifecert.events.personal import seal_personal
from lifecert.events.time import isoformat_local, local_date
from lifecert.events.typed import parse_typed
from lifecert.events.types import TypedEvent
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline.broker_clients import client_security
from lifecert.pipeline.campaign_clock import Clock, wall_clock
from lifecert.pipeline.topics import STATUS, VERDICTS, TopicLayout

log = logging.getLogger("lifecert.api")

pb = partner_exchange_pb2
ItemResult = pb.ItemResult

MAX_ID_LENGTH = 128
FUTURE_TOLERANCE = timedelta(minutes=10)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def event_id_for(agency: str, kind: str, key: str) -> str:
    """The deterministic id of an event submitted through the API."""
    return uuid5(f"lifecert-api|{agency}|{kind}|{key}")


def timestamp(at: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at.astimezone(UTC))
    return ts


@dataclass
class Prepared:
    index: int
    kind: str
    key: str
    channel: str | None
    retiree_id: str
    event: TypedEvent  # an input type: authz admits only those
    digest: str
    # a certification's ContactDetailsUpdated (issue 14), its phone and address still in
    # the clear: sealed just before it is published (PartnerExchange._sealed), never logged
    contact: TypedEvent | None = None
    # one digest per field (field_digests), kept with the accepted row so that a later
    # CONFLICT can name the fields that differ without keeping their values
    field_digests: dict[str, str] = field(default_factory=dict)
    # a death report's source as the item names it (DeathReport.source; STAFF only)
    named_source: str | None = None

    @property
    def event_id(self) -> str:
        return str(self.event["event_id"])


class ItemError(ValueError):
    """An item that is not valid; ``str()`` says why (no personal data)."""


def _text_field(value: str, name: str) -> str:
    """An id field of an item, checked against its pattern (lifecert.events.bounds)."""
    if not value or not value.strip():
        raise ItemError(f"{name} is missing")
    if len(value) > MAX_ID_LENGTH or not value.isprintable():
        raise ItemError(f"{name} must be at most {MAX_ID_LENGTH} printable characters")
    problem = bounds.id_problem(name, value)
    if problem is not None:
        raise ItemError(problem)
    return value


# A certification's contact details (ContactDetailsUpdated): limits, and what a phone holds.
MAX_PHONE, MAX_ADDRESS = 32, 200
_PHONE_CHARS = frozenset("0123456789+- ()")


def _contact_text(value: str, name: str, limit: int) -> str | None:
    """A phone or address of an item, or None when empty; the reason never holds it."""
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise ItemError(f"contact.{name} must be at most {limit} characters")
    if not value.isprintable() or bounds.text_problem(value) is not None:
        raise ItemError(f"contact.{name} holds control characters or invalid text")
    if name == "phone" and (not set(value) <= _PHONE_CHARS
                            or sum(ch.isdigit() for ch in value) < 5):
        raise ItemError("contact.phone must be digits (with + - ( ) and spaces), at least 5")
    return value


def _contact_row(agency: str, contact: TypedEvent, written: Written) -> db.NewAccepted:
    """What the API remembers of a contact update it published: its id (the details only
    as their keyed digest, in the key), never the phone or address."""
    key = event_key = str(contact["event_id"])
    return db.NewAccepted(event_key, agency, "ContactDetailsUpdated", key, event_key,
                          written.topic, written.partition, written.offset,
                          contact["recorded_at"])


def _contact(c: pb.Certification, fields: dict[str, Any], agency: str,
             recorded_at: str, contact_key: bytes) -> TypedEvent | None:
    """The ContactDetailsUpdated of a certification item that carries contact details."""
    if not c.HasField("contact"):
        return None
    phone = _contact_text(c.contact.phone, "phone", MAX_PHONE)
    address = _contact_text(c.contact.address, "address", MAX_ADDRESS)
    if phone is None and address is None:
        return None
    key = f"{fields['certification_id']}|{contact_digest(contact_key, phone, address)}"
    try:
        return parse_typed({
            "type": "ContactDetailsUpdated",
            "event_id": event_id_for(agency, "ContactDetailsUpdated", key),
            "recorded_at": recorded_at, "source_agency": agency,
            "retiree_id": fields["retiree_id"], "phone": phone, "address": address,
            "channel": fields["channel"], "agency_id": agency,
        })
    except MalformedEvent:  # its description could quote the values: say where only
        raise ItemError("contact: the phone or address is not valid text") from None


def contact_digest(contact_key: bytes, phone: str | None, address: str | None) -> str:
    """What identifies a certification's contact details in its event id: the same details
    sent again are the same event, new details sent with the certification resubmitted a
    new one. Keyed (the server's secret), so that an event id cannot be checked against
    guessed phone numbers."""
    return hmac.new(contact_key, json.dumps([phone, address]).encode(),
                    hashlib.sha256).hexdigest()[:16]


# The longest free text an item may carry (a retraction's reason).
MAX_FREE_TEXT = 1000


def _free_text(value: str, name: str) -> str:
    """A free-text field of an item (any characters the event log takes: the interchange
    bounds check it; it is escaped wherever it is audited or logged)."""
    if not value or not value.strip():
        raise ItemError(f"{name} is missing")
    if len(value) > MAX_FREE_TEXT:
        raise ItemError(f"{name} must be at most {MAX_FREE_TEXT} characters")
    return value


def _instant(message: Any, name: str, now: datetime) -> str:
    if not message.HasField(name):
        raise ItemError(f"{name} is missing")
    ts = getattr(message, name)
    try:
        at = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise ItemError(f"{name} is not a valid time (seconds {ts.seconds}, nanos {ts.nanos})") \
            from None
    if at > now + FUTURE_TOLERANCE:
        raise ItemError(f"{name} is in the future")
    problem = bounds.year_problem(at)
    if problem is not None:
        raise ItemError(f"{name}: {problem}")
    return isoformat_local(at)


def _channel(value: int) -> str:
    if value == common_pb2.CHANNEL_UNSPECIFIED:
        raise ItemError("channel is missing")
    if value not in common_pb2.Channel.values():
        raise ItemError(f"channel {value} is not a channel of lifecert.v1.Channel (update the "
                        "client's copy of common.proto?)")
    return str(common_pb2.Channel.Name(value))


def _documents(d: pb.DocumentsReceived, now: datetime) -> tuple[dict[str, Any], str]:
    """The fields of a returned form and its idempotency key; the mailroom's optional
    fields only when given, so that an item without them keeps its earlier digest."""
    fields: dict[str, Any] = {
        "certification_id": _text_field(d.certification_id, "certification_id"),
        "retiree_id": _text_field(d.retiree_id, "retiree_id"),
        "received_at": _instant(d, "received_at", now),
    }
    key = fields["certification_id"]
    if d.agency_id:
        fields["agency_id"] = _text_field(d.agency_id, "agency_id")
        key = f"{fields['agency_id']}|{key}"
    if d.form_number:
        if not 1 <= d.form_number <= 4:
            raise ItemError(f"form_number {d.form_number} is not a form of the notice (1-4)")
        fields["form_number"] = d.form_number
    if d.postmarked_on:
        try:
            if len(d.postmarked_on) != 10:
                raise ValueError
            postmarked = date.fromisoformat(d.postmarked_on)
        except ValueError:
            raise ItemError("postmarked_on must be a date written YYYY-MM-DD") from None
        if postmarked > local_date(datetime.fromisoformat(fields["received_at"])):
            raise ItemError("postmarked_on is after the day the form was received")
        fields["postmarked_on"] = postmarked.isoformat()
    if d.scan_sha256:
        if not _SHA256.fullmatch(d.scan_sha256):
            raise ItemError("scan_sha256 must be 64 lower-case hex digits (the scan's SHA-256)")
        fields["scan_sha256"] = d.scan_sha256
    return fields, key


def _digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def field_digests(event_id: str, fields: dict[str, Any]) -> dict[str, str]:
    """A short digest of each field's value, salted with the event id: enough to tell
    which fields of a later item with the same key differ, without keeping the values."""
    return {
        name: hashlib.sha256(json.dumps([event_id, name, value], sort_keys=True,
                                        separators=(",", ":")).encode()).hexdigest()[:16]
        for name, value in fields.items()
    }


def prepare(index: int, item: pb.SubmitItem, agency: str, now: datetime,
            contact_key: bytes = b"contact") -> Prepared:
    """The event an item stands for; raises ItemError or MalformedEvent. ``contact_key``:
    the server's secret of :func:`contact_digest`."""
    which = item.WhichOneof("item")
    recorded_at = isoformat_local(now)
    contact: TypedEvent | None = None
    if which == "certification":
        c = item.certification
        channel = _channel(c.channel)
        fields = {
            "certification_id": _text_field(c.certification_id, "certification_id"),
            "retiree_id": _text_field(c.retiree_id, "retiree_id"),
            "channel": channel,
            "agency_id": agency,
            "performed_at": _instant(c, "performed_at", now),
        }
        kind, key = authz.CERTIFICATION, fields["certification_id"]
        contact = _contact(c, fields, agency, recorded_at, contact_key)
    elif which == "documents_received":
        fields, key = _documents(item.documents_received, now)
        kind, channel = authz.DOCUMENTS, None
    elif which == "death":
        r = item.death
        died = _date_of_death(r.date_of_death, now)
        named_source = _text_field(r.source, "source") if r.source else None
        fields = {
            "retiree_id": _text_field(r.retiree_id, "retiree_id"),
            "date_of_death": died.isoformat(),
            "source": named_source or agency,
        }
        kind, key, channel = authz.DEATH, f"{fields['retiree_id']}|{died.isoformat()}", None
        if named_source is not None:  # one death told by the family and by a letter: two
            key = f"{key}|{named_source}"
    elif which == "revocation":
        v = item.revocation
        if v.reason == pb.CertificationRevocation.REASON_UNSPECIFIED:
            raise ItemError("reason is missing")
        if v.reason not in pb.CertificationRevocation.Reason.values():
            raise ItemError(f"reason {v.reason} is not a revocation reason (update the "
                            "client's copy of partner_exchange.proto?)")
        fields = {
            "retiree_id": _text_field(v.retiree_id, "retiree_id"),
            "certification_id": _text_field(v.certification_id, "certification_id"),
            "agency_id": _text_field(v.agency_id, "agency_id") if v.agency_id else agency,
            "reason": str(pb.CertificationRevocation.Reason.Name(v.reason)),
        }
        kind, channel = authz.REVOCATION, None
        key = f"{fields['agency_id']}|{fields['certification_id']}"
    elif which == "form3_result":
        fields, key = _form3(item.form3_result, agency, now)
        kind, channel = authz.FORM3_RESULT, None
    elif which == "retraction":
        t = item.retraction
        fields = {
            "retiree_id": _text_field(t.retiree_id, "retiree_id"),
            "source": _text_field(t.source, "source"),
            "reason": _free_text(t.reason, "reason"),
        }
        kind, channel = authz.RETRACTION, None
        reason_digest = hashlib.sha256(fields["reason"].encode("utf-8", "replace")).hexdigest()
        key = f"{fields['retiree_id']}|{fields['source']}|{reason_digest[:16]}"
    else:
        raise ItemError("the item is empty (set certification, documents_received, death, "
                        "revocation, retraction or form3_result)")
    digest = _digest({"kind": kind, **fields})
    event_id = event_id_for(agency, kind, key)
    event = parse_typed({
        "type": kind,
        "event_id": event_id,
        "recorded_at": recorded_at,
        "source_agency": agency,
        **fields,
    }, allowed=(kind,) if kind == authz.FORM3_RESULT else INPUT_TYPES)
    prepared = Prepared(index, kind, key, channel, fields["retiree_id"], event, digest,
                        contact, field_digests(event_id, fields))
    if which == "death" and item.death.source:
        prepared.named_source = fields["source"]
    return prepared


def _date_of_death(value: str, now: datetime) -> date:
    """A date of death of an item, YYYY-MM-DD, in range and not in the future."""
    try:
        if len(value) != 10:  # fromisoformat also takes 20170401
            raise ValueError
        died = date.fromisoformat(value)
    except ValueError:
        raise ItemError("date_of_death must be a date written YYYY-MM-DD") from None
    problem = bounds.year_problem(died)
    if problem is not None:
        raise ItemError(f"date_of_death: {problem}")
    if died > (now + FUTURE_TOLERANCE).date():
        raise ItemError("date_of_death is in the future")
    return died


def _form3(r: pb.Form3Result, agency: str, now: datetime) -> tuple[dict[str, Any], str]:
    """The AssistanceResult fields of a counter's answer to a partner's INBOUND case (SSF's
    form 3, a Guangdong city's case), and its idempotency key: the case id (SSF's, as
    before partners were named), the partner and the case id (any other partner). Whether
    the case is the partner's, open and for that person is checked against the assistance
    cases (PartnerExchange._authorised)."""
    partner_id = r.partner or MACAU_SSF
    partner = INBOUND_PARTNERS.get(partner_id)
    if partner is None:
        raise ItemError(f"partner {bounds.show(partner_id)} has no cases the counters answer "
                        f"(one of {', '.join(sorted(INBOUND_PARTNERS))})")
    if r.outcome == pb.Form3Result.OUTCOME_UNSPECIFIED:
        raise ItemError("outcome is missing")
    if r.outcome not in pb.Form3Result.Outcome.values():
        raise ItemError(f"outcome {r.outcome} is not a form-3 outcome (update the client's "
                        "copy of partner_exchange.proto?)")
    if r.method == pb.Form3Result.METHOD_UNSPECIFIED:
        raise ItemError("method is missing")
    if r.method not in pb.Form3Result.Method.values():
        raise ItemError(f"method {r.method} is not a form-3 method (update the client's "
                        "copy of partner_exchange.proto?)")
    outcome = str(pb.Form3Result.Outcome.Name(r.outcome))
    beneficiary = _text_field(r.beneficiary_id, "beneficiary_id")
    if not bounds.RETIREE_ID.fullmatch(beneficiary):
        raise ItemError(f"beneficiary_id {bounds.show(beneficiary)} is not an id of the hub "
                        "(as the partner's case gave it, e.g. MO-SSF-12345678)")
    if outcome == "DECEASED" and not r.date_of_death:
        raise ItemError("date_of_death is missing: it is required when outcome is DECEASED")
    if outcome != "DECEASED" and r.date_of_death:
        raise ItemError(f"date_of_death is given but outcome is {outcome}: it goes only with "
                        "DECEASED")
    died = _date_of_death(r.date_of_death, now) if r.date_of_death else None
    fields: dict[str, Any] = {
        "certification_id": _text_field(r.certification_id, "certification_id"),
        "retiree_id": beneficiary,
        "home_region": partner.home_region,
        "method": str(pb.Form3Result.Method.Name(r.method)),
        "agency_id": agency,
        "performed_at": _instant(r, "performed_at", now),
        "partner": partner_id,
        "case_id": _text_field(r.case_id, "case_id"),
        "outcome": outcome,
        "date_of_death": None if died is None else died.isoformat(),
        "direction": "INBOUND",
    }
    key = fields["case_id"] if partner_id == MACAU_SSF else f"{partner_id}|{fields['case_id']}"
    return fields, key


def _result(index: int, outcome: pb.ItemResult.Outcome, **kwargs: Any) -> pb.ItemResult:
    return ItemResult(index=index, outcome=outcome, **kwargs)


def _prepare_items(
    items: Sequence[pb.SubmitItem], agency: str, now: datetime,
    results: list[pb.ItemResult | None], contact_key: bytes,
) -> list[Prepared]:
    """The events the items stand for; a malformed item is answered REJECTED MALFORMED
    in ``results`` (the rest of the batch goes on)."""
    prepared: list[Prepared] = []
    for index, item in enumerate(items):
        try:
            prepared.append(prepare(index, item, agency, now, contact_key))
        except (ItemError, MalformedEvent) as exc:
            reason = exc.describe() if isinstance(exc, MalformedEvent) else str(exc)
            results[index] = _result(index, ItemResult.REJECTED, reason_code="MALFORMED",
                                     reason=reason)
    return prepared


def _answer(
    call: Call, results: list[pb.ItemResult | None], out_of_scope: int, n: int
) -> pb.SubmitBatchResponse:
    """The response, every item answered; the call audited with its counts."""
    final = [r for r in results if r is not None]
    assert len(final) == n
    counts = {
        "accepted": sum(r.outcome == ItemResult.ACCEPTED for r in final),
        "duplicates": sum(r.outcome == ItemResult.DUPLICATE for r in final),
        "rejected": sum(r.outcome == ItemResult.REJECTED for r in final),
    }
    reasons = sorted({r.reason_code for r in final if r.reason_code})
    if out_of_scope:
        reasons.append(f"OUT_OF_SCOPE x{out_of_scope}")
    call.done("OK", ",".join(reasons) or None, items=n, **counts)
    return pb.SubmitBatchResponse(results=final)


# ------------------------------------------------------------------------ cursors


class CursorError(ValueError):
    pass


class TopicMissing(RuntimeError):
    pass


CURSOR_PREFIX = "c1."


def encode_cursor(positions: dict[str, dict[int, int]]) -> str:
    body = {t: {str(p): o for p, o in sorted(parts.items())} for t, parts in
            sorted(positions.items())}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, topics: set[str]) -> dict[str, dict[int, int]]:
    """The positions a cursor of :func:`encode_cursor` holds; CursorError for anything
    else: each partition a decimal number, each offset an integer from 0 to 2**63 - 1."""
    if not cursor.startswith(CURSOR_PREFIX) or len(cursor) > 10_000:
        raise CursorError("not a lifecert cursor")
    text = cursor[len(CURSOR_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = loads(raw)
    except (binascii.Error, ValueError):
        raise CursorError("not a lifecert cursor") from None
    if type(body) is not dict:
        raise CursorError("not a lifecert cursor")
    positions: dict[str, dict[int, int]] = {}
    for topic, parts in body.items():
        if type(parts) is not dict:
            raise CursorError("not a lifecert cursor")
        offsets = positions[topic] = {}
        for partition, offset in parts.items():
            if not (partition.isascii() and partition.isdigit() and len(partition) <= 9) \
                    or type(offset) is not int or not 0 <= offset <= bounds.LONG_MAX:
                raise CursorError("not a lifecert cursor")
            offsets[int(partition)] = offset
    if set(positions) - topics:
        raise CursorError("the cursor is for other topics than this server's")
    return positions


VERDICT = "EventRejected"


def interchange(event: dict[str, Any]) -> dict[str, Any]:
    if event["type"] in EVENT_TYPES:
        return to_json(event)
    return {k: plain(v) for k, v in event.items()}


# ------------------------------------------------------------------------ servicer


def conflict_reason(p: Prepared, earlier: Prepared | None,
                    recorded_at: datetime | None,
                    earlier_digests: dict[str, str] | None = None) -> str:
    """Why an item is a CONFLICT: its idempotency key (kind and key, e.g. the
    certification id), where the other content was, and the names of the fields that
    differ (never their values): compared with the other item when it is earlier in the
    same batch, else with the field digests kept with the accepted row."""
    where = (f"by item {earlier.index} of this batch" if earlier is not None else
             "before" + (f" (recorded {recorded_at.isoformat()})" if recorded_at else ""))
    text = (f"idempotency key {p.kind} {bounds.show(p.key)} was accepted {where} with other "
            "content")
    if earlier is not None:
        earlier_digests = earlier.field_digests
    if earlier_digests is not None:
        fields = sorted(k for k in set(p.field_digests) | set(earlier_digests)
                        if p.field_digests.get(k) != earlier_digests.get(k))
        if fields:
            text += f": {', '.join(fields)} differ{'s' if len(fields) == 1 else ''}"
    return text + ("; send the same content again to be answered DUPLICATE, or use a new "
                   "key for a new report")


def form3_refusal(p: Prepared, case: db.AssistanceCase | None) -> tuple[str, str] | None:
    """Why a counter's answer cannot answer ``case`` (reason code, text), or None. A case
    that is not the partner's, not INBOUND or not for that person is answered as a missing
    one (the text tells nothing of whose case it is)."""
    beneficiary, case_id = p.retiree_id, str(p.event["case_id"])
    name = INBOUND_PARTNERS[str(p.event["partner"])].name
    if case is None or case.direction != "INBOUND" or case.retiree_id != beneficiary:
        return ("UNKNOWN_CASE",
                f"{name} has no case {bounds.show(case_id)} for beneficiary "
                f"{bounds.show(beneficiary)} (or its list has not reached the hub yet): "
                f"answer only the cases {name} sent, with the case id and beneficiary id "
                "it gave")
    if case.status in (ANSWERED, RECEIVED) and case.result_id != p.event["certification_id"]:
        return ("ALREADY_ANSWERED",
                f"case {bounds.show(case_id)} was answered by certification "
                f"{bounds.show(case.result_id)}; a second answer is not sent to {name}: ask "
                f"the bureau's staff to correct it with {name}")
    return None


class PartnerExchange(partner_exchange_pb2_grpc.PartnerExchangeServicer):
    def __init__(
        self,
        gate: Gate,
        database: db.Database,
        publisher: Publisher,
        topics: TopicLayout,
        bootstrap: str,
        partitions: dict[str, list[int]],
        *,
        max_batch_items: int = 1000,
        max_streams_per_agency: int = 4,
        idle_checkpoint_seconds: float = 30.0,
        clock: Clock = wall_clock,
        keys_factory: Callable[[], KeyStore] = open_keystore,
        secret: bytes = b"",
    ) -> None:
        # keys the contact details' part of a contact update's event id (contact_digest)
        self.contact_key = hmac.new(secret, b"contact event ids", hashlib.sha256).digest()
        # the key store that seals contact details (ContactDetailsUpdated), opened when
        # the first certification with contact details comes
        self.keys_factory = keys_factory
        self._keys: KeyStore | None = None
        self.gate = gate
        self.db = database
        self.publisher = publisher
        self.topics = topics
        self.bootstrap = bootstrap
        self.partitions = partitions  # of the feed topics, read when the server started
        self.max_batch_items = max_batch_items
        self.max_streams_per_agency = max_streams_per_agency
        self.idle_checkpoint_seconds = idle_checkpoint_seconds
        self.clock = clock  # recorded_at of submissions (a sandbox's campaign clock)
        self._streams: dict[str, int] = {}
        feed_topics: set[str] = set()
        for rules in authz.MATRIX.values():
            feed_topics |= {topics.for_type(t).name for t in rules.feed}
        self.feed_topics = feed_topics

    # ---------------------------------------------------------------- SubmitBatch

    async def SubmitBatch(
        self, request: pb.SubmitBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitBatchResponse:
        n = len(request.items)
        # A batch refused for its size costs one call, not its items (it records nothing).
        call = await self.gate.enter(context, authz.SUBMIT,
                                     cost=n if n <= self.max_batch_items else 1)
        if n > self.max_batch_items:
            await call.refuse(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a batch holds at most {self.max_batch_items} items, this one {n}",
                items=n,
            )
        now = self.clock()
        results: list[pb.ItemResult | None] = [None] * n
        prepared = _prepare_items(request.items, call.agency, now, results, self.contact_key)
        try:
            directory = await self.db.run(
                lambda conn: db.directory(conn, [p.retiree_id for p in prepared])
            )
            wanted = [(str(p.event["partner"]), str(p.event["case_id"])) for p in prepared
                      if p.kind == authz.FORM3_RESULT]
            cases = await self.db.run(
                lambda conn: db.assistance_cases(conn, wanted)
            ) if wanted else {}
        except Exception as exc:  # database trouble: nothing recorded, try again
            await self._unavailable(call, exc, n)
        checked, out_of_scope = await self._authorised(call, prepared, directory, results, n,
                                                       cases)
        try:
            known = await self.db.run(
                lambda conn: db.accepted(conn, [p.event_id for p in checked])
            )
        except Exception as exc:
            await self._unavailable(call, exc, n)
        to_publish = self._first_submissions(checked, known, results)
        rows = await self._publish(call, to_publish, results)
        await self._renewed_contacts(call, checked, to_publish, results)
        try:
            inserted = await self.db.run(lambda conn: db.record_accepted(conn, rows))
        except Exception as exc:
            # Written to the log but not remembered: a resubmission publishes the same
            # event ids again, which the fold ignores.
            await self._unavailable(call, exc, n)
        self._remembered(call, to_publish, rows, inserted, results)
        return _answer(call, results, out_of_scope, n)

    async def _authorised(
        self, call: Call, prepared: list[Prepared], directory: dict[str, authz.Retiree],
        results: list[pb.ItemResult | None], n: int,
        cases: dict[tuple[str, str], db.AssistanceCase] | None = None,
    ) -> tuple[list[Prepared], int]:
        """The items the caller may report, for retirees in its scope; and how many were
        answered UNKNOWN_RETIREE although enrolled (out of scope). An item of a kind or
        channel the role may not report refuses the whole batch (PERMISSION_DENIED). A
        partner's answer answers one of its INBOUND cases (``cases``, by partner and case
        id), not a retiree of the directory."""
        refusals: list[str] = []
        checked: list[Prepared] = []
        scope = authz.rules(call.role).scope
        # A retiree the agency may not act for and one not enrolled get the same answer
        # (nothing of their residence, unit or enrolment to an agency outside its scope);
        # the audit row tells them apart.
        unknown = (
            "no retiree with this id is enrolled" if scope.everyone
            else authz.out_of_scope(call.role, call.agency, scope)
        )
        out_of_scope = 0
        for p in prepared:
            retiree = directory.get(p.retiree_id)
            try:
                authz.check_kind(call.role, p.kind, p.channel)
                if p.kind == authz.REVOCATION:
                    authz.check_revocation(call.role, call.agency, p.event["agency_id"])
                if p.named_source is not None:
                    authz.check_death_source(call.role)
            except authz.Refusal as exc:
                refusals.append(f"item {p.index}: {exc}")
                continue
            if p.named_source is not None and p.named_source not in authz.NAMED_DEATH_SOURCES:
                results[p.index] = _result(
                    p.index, ItemResult.REJECTED, reason_code="MALFORMED",
                    reason=f"source {bounds.show(p.named_source)} is not a source staff may "
                           f"name (one of {', '.join(sorted(authz.NAMED_DEATH_SOURCES))}); "
                           "a register's or a partner's deaths come through its own door")
                continue
            if p.kind == authz.FORM3_RESULT:
                refused = form3_refusal(p, (cases or {}).get(
                    (str(p.event["partner"]), str(p.event["case_id"]))))
                if refused is not None:
                    results[p.index] = _result(p.index, ItemResult.REJECTED,
                                               reason_code=refused[0], reason=refused[1],
                                               event_id=p.event_id)
                else:
                    checked.append(p)
                continue
            if retiree is None or not scope.allows(call.agency, retiree):
                out_of_scope += retiree is not None
                results[p.index] = _result(
                    p.index, ItemResult.REJECTED, reason_code="UNKNOWN_RETIREE",
                    reason=unknown, event_id=p.event_id,
                )
                continue
            checked.append(p)
        if refusals:
            more = f" (and {len(refusals) - 3} more)" if len(refusals) > 3 else ""
            await call.refuse(
                grpc.StatusCode.PERMISSION_DENIED,
                "; ".join(refusals[:3]) + more + "; nothing of this batch was recorded",
                detail=f"ROLE_REFUSED x{len(refusals)}", items=n,
            )
        return checked, out_of_scope

    def _first_submissions(
        self, checked: list[Prepared], known: dict[str, db.AcceptedRow],
        results: list[pb.ItemResult | None],
    ) -> list[Prepared]:
        """The items to publish: not accepted before, nor earlier in this batch (those
        are answered DUPLICATE, or CONFLICT when their content differs)."""
        first_in_batch: dict[str, Prepared] = {}
        to_publish: list[Prepared] = []
        for p in checked:
            before = known.get(p.event_id)
            if before is not None:
                results[p.index] = self._again(p, before.content_digest, before.recorded_at,
                                               earlier_digests=before.field_digests)
            elif p.event_id in first_in_batch:
                first = first_in_batch[p.event_id]
                results[p.index] = self._again(p, first.digest, None, first)
            else:
                first_in_batch[p.event_id] = p
                to_publish.append(p)
        return to_publish

    async def _publish(
        self, call: Call, to_publish: list[Prepared], results: list[pb.ItemResult | None]
    ) -> list[db.NewAccepted]:
        """Publish the events; the rows to remember for those the broker acknowledged
        (the others are answered NOT_RECORDED)."""
        contacts = await self._sealed(call, to_publish)
        events: list[Any] = [p.event for p in to_publish]
        events += [c for c in contacts if c is not None]
        written = await self.publisher.publish(events)
        # an item is written when its certification and its contact update both were
        extra = iter(written[len(to_publish):])
        for i, contact in enumerate(contacts):
            if contact is not None:
                also = next(extra)
                if not isinstance(also, Written) and isinstance(written[i], Written):
                    written[i] = also
        written = written[:len(to_publish)]
        rows: list[db.NewAccepted] = []
        for p, outcome in zip(to_publish, written, strict=True):
            if isinstance(outcome, Written):
                rows.append(db.NewAccepted(
                    p.event_id, call.agency, p.kind, p.key, p.digest,
                    outcome.topic, outcome.partition, outcome.offset, p.event["recorded_at"],
                    p.field_digests,
                ))
                if p.contact is not None:  # remembered: sent again, no second event
                    rows.append(_contact_row(call.agency, p.contact, outcome))
            else:
                log.warning("%s: an event was not written: %s", call.agency, outcome.reason)
                results[p.index] = _result(
                    p.index, ItemResult.REJECTED, reason_code="NOT_RECORDED",
                    reason="the event log could not be reached; submit the item again",
                    event_id=p.event_id,
                )
        return rows

    async def _renewed_contacts(self, call: Call, checked: list[Prepared],
                                to_publish: list[Prepared],
                                results: list[pb.ItemResult | None]) -> None:
        """The contact details of a certification answered DUPLICATE (resubmitted as it
        was, with contact details): the certification has no second effect, its contact
        update is recorded all the same (published once per distinct details: its event
        id derives from them). Not written: the item is answered NOT_RECORDED, to be
        submitted again."""
        published = {str(p.contact["event_id"]) for p in to_publish if p.contact is not None}
        candidates: list[Prepared] = []
        for p in checked:
            result = results[p.index]
            if p.contact is None or result is None or result.outcome != ItemResult.DUPLICATE:
                continue
            if str(p.contact["event_id"]) not in published:
                published.add(str(p.contact["event_id"]))
                candidates.append(p)
        if not candidates:
            return
        ids = [str(p.contact["event_id"]) for p in candidates if p.contact is not None]
        try:
            known = await self.db.run(lambda conn: db.accepted(conn, ids))
            renewed = [p for p in candidates
                       if p.contact is not None and str(p.contact["event_id"]) not in known]
            if not renewed:
                return
            contacts = await self._sealed(call, renewed)
            written = await self.publisher.publish([c for c in contacts if c is not None])
            rows = [_contact_row(call.agency, c, w) for c, w in zip(contacts, written,
                                                                      strict=True)
                    if c is not None and isinstance(w, Written)]
            await self.db.run(lambda conn: db.record_accepted(conn, rows))
        except Exception as exc:
            await self._unavailable(call, exc, len(results))
            raise  # not reached: _unavailable aborts the call
        for p, outcome in zip(renewed, written, strict=True):
            if not isinstance(outcome, Written):
                log.warning("%s: a contact update was not written: %s", call.agency,
                            outcome.reason)
                results[p.index] = _result(
                    p.index, ItemResult.REJECTED, reason_code="NOT_RECORDED",
                    reason="the certification was recorded before, its new contact details "
                           "could not be; submit the item again", event_id=p.event_id)

    async def _sealed(self, call: Call,
                      to_publish: list[Prepared]) -> list[TypedEvent | None]:
        """Each item's contact update with its phone and address sealed (None: it has
        none). When they cannot be sealed (the key store is unreachable), the whole batch
        is answered UNAVAILABLE: nothing is recorded, the client submits it again."""
        if not any(p.contact is not None for p in to_publish):
            return [None] * len(to_publish)
        loop = asyncio.get_running_loop()

        def seal() -> list[Any]:
            if self._keys is None:
                self._keys = self.keys_factory()
            return [None if p.contact is None else seal_personal(p.contact, self._keys)
                    for p in to_publish]

        try:
            return await loop.run_in_executor(None, seal)
        except Exception as exc:  # the key store: nothing was published
            self._keys = None
            await self._unavailable(call, exc, len(to_publish))
            raise  # not reached: _unavailable aborts the call

    @staticmethod
    def _remembered(
        call: Call, to_publish: list[Prepared], rows: list[db.NewAccepted],
        inserted: set[str], results: list[pb.ItemResult | None],
    ) -> None:
        """ACCEPTED for the rows this call inserted, DUPLICATE for those a concurrent
        call inserted first; each accepted retraction audited."""
        by_id = {p.event_id: p for p in to_publish}
        for row in rows:
            if row.event_id not in by_id:
                continue  # a certification's contact update: its item answers for it
            p = by_id[row.event_id]
            outcome_code = ItemResult.ACCEPTED if row.event_id in inserted else \
                ItemResult.DUPLICATE
            if p.kind == authz.RETRACTION and row.event_id in inserted:
                # Who and why, for every retraction (rule 13): the reason is the caller's
                # text (the audit writer escapes it, db.AuditRow); the retiree is kept as
                # the audit's subject reference.
                call.also(
                    "DEATH_REPORT_RETRACTED",
                    f"source {p.event['source']}; reason: {p.event['reason']}",
                    subject=p.retiree_id, items=1, accepted=1,
                )
            results[p.index] = _result(
                p.index, outcome_code, event_id=p.event_id,
                recorded_at=timestamp(row.recorded_at),
            )

    @staticmethod
    def _again(p: Prepared, digest: str, recorded_at: datetime | None,
               earlier: Prepared | None = None,
               earlier_digests: dict[str, str] | None = None) -> pb.ItemResult:
        if digest != p.digest:
            return _result(
                p.index, ItemResult.REJECTED, reason_code="CONFLICT",
                reason=conflict_reason(p, earlier, recorded_at, earlier_digests),
                event_id=p.event_id,
            )
        kwargs: dict[str, Any] = {"event_id": p.event_id}
        if recorded_at is not None:
            kwargs["recorded_at"] = timestamp(recorded_at)
        return _result(p.index, ItemResult.DUPLICATE, **kwargs)

    @staticmethod
    async def _unavailable(call: Call, exc: BaseException, items: int) -> None:
        log.warning("%s: database unavailable: %s", call.method, type(exc).__name__)
        await call.refuse(
            grpc.StatusCode.UNAVAILABLE,
            "the hub's database is unavailable; submit the batch again (no second effect)",
            detail=f"DB_UNAVAILABLE {type(exc).__name__}", items=items,
        )

    # ---------------------------------------------------------------- Subscribe

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscribeResponse]:
        call = await self.gate.enter(context, authz.SUBSCRIBE)
        assert call.rules is not None
        rules = call.rules
        wanted = set(request.types) if request.types else set(rules.feed)
        unknown = {t for t in wanted if t not in EVENT_TYPES and t != "RetireeStatus"}
        if unknown:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              f"unknown event types: {', '.join(sorted(unknown))}")
        outside = wanted - rules.feed
        if outside:
            await call.refuse(
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {call.role} does not receive {', '.join(sorted(outside))}",
            )
        topics = sorted({self.topics.for_type(t).name for t in wanted})
        cursor_text = request.cursor
        if request.from_start and cursor_text:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              "give either a cursor or from_start, not both")
        if not cursor_text and not request.from_start:
            try:
                stored = await self.db.run(partial(db.load_cursor, agency=call.agency))
                cursor_text = stored or ""
            except Exception as exc:
                await self._unavailable(call, exc, 0)
        try:
            start = decode_cursor(cursor_text, self.feed_topics) if cursor_text else {}
        except CursorError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self._streams.get(call.agency, 0) >= self.max_streams_per_agency:
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"agency {call.agency} has {self.max_streams_per_agency} subscriptions open "
                "already",
            )
        self._streams[call.agency] = self._streams.get(call.agency, 0) + 1
        delivered = 0
        outcome = "OK"
        try:
            async for response in self._stream(call, rules, wanted, topics, start):
                if response.HasField("event"):
                    delivered += 1
                yield response
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        except (AioKafkaError, TopicMissing) as exc:
            outcome = "UNAVAILABLE"
            call.done(outcome, f"KAFKA {type(exc).__name__}", items=delivered)
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                "the event log is unavailable; subscribe again from your "
                                "last cursor")
        finally:
            self._streams[call.agency] -= 1
            call.done(outcome, f"delivered {delivered}", items=delivered)

    async def _stream(
        self,
        call: Call,
        rules: authz.RoleRules,
        wanted: set[str],
        topics: list[str],
        start: dict[str, dict[int, int]],
    ) -> AsyncIterator[pb.SubscribeResponse]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id="lifecert-api-subscribe",
            **client_security(bootstrap=self.bootstrap).aiokafka(),
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
        )
        await consumer.start()
        try:
            tps: list[TopicPartition] = []
            for topic in topics:
                parts = self.partitions.get(topic)
                if not parts:
                    raise TopicMissing(topic)
                tps += [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            positions: dict[str, dict[int, int]] = {
                t: dict(parts) for t, parts in start.items()
            }
            for tp in tps:
                offset = start.get(tp.topic, {}).get(tp.partition)
                if offset is None:
                    await consumer.seek_to_beginning(tp)
                    positions.setdefault(tp.topic, {})[tp.partition] = 0
                else:
                    consumer.seek(tp, offset)
            checkpointed: str | None = None
            idle_since = asyncio.get_running_loop().time()
            order = LogOrder(((tp.topic, tp.partition) for tp in tps), rank=self._rank)
            by_key = {(tp.topic, tp.partition): tp for tp in tps}
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                order.add({(tp.topic, tp.partition): rs for tp, rs in batch.items()})
                for key, tp in by_key.items():
                    if not order.waiting(key):
                        order.start_at(key, await consumer.position(tp))
                    elif order.full(key):
                        consumer.pause(tp)
                records = order.release(lambda key: consumer.highwater(by_key[key]))
                consumer.resume(*[tp for key, tp in by_key.items()
                                  if tp in consumer.paused() and not order.full(key)])
                if records:
                    async for response in self._deliver(call, rules, wanted, records,
                                                        positions):
                        yield response
                    continue
                if order.waiting():
                    continue  # held back until the partitions behind are fetched
                cursor = encode_cursor(positions)
                now = asyncio.get_running_loop().time()
                if cursor == checkpointed and now - idle_since < self.idle_checkpoint_seconds:
                    continue
                ends = await consumer.end_offsets(tps)
                caught_up = True
                for tp in tps:
                    pos = await consumer.position(tp)
                    positions.setdefault(tp.topic, {})[tp.partition] = pos
                    caught_up = caught_up and pos >= ends[tp]
                if caught_up:
                    cursor = encode_cursor(positions)
                    checkpointed, idle_since = cursor, now
                    yield pb.SubscribeResponse(
                        checkpoint=pb.Checkpoint(at=timestamp(datetime.now(UTC))),
                        cursor=cursor,
                    )
        finally:
            await consumer.stop()

    async def _deliver(
        self, call: Call, rules: authz.RoleRules, wanted: set[str], records: list[Any],
        positions: dict[str, dict[int, int]],
    ) -> AsyncIterator[pb.SubscribeResponse]:
        """The records, in the order given, that the caller may see; the cursor after
        each moves past every record before it, shown or not."""
        events = [(record, self._decode(record.value, wanted)) for record in records]
        scope = rules.scope
        need = [e["retiree_id"] for _, e in events if e is not None and e["type"] != VERDICT]
        directory: dict[str, authz.Retiree] = {}
        if need and not scope.everyone:
            directory = await self.db.run(partial(db.directory, retiree_ids=need))
        for record, event in events:
            positions.setdefault(record.topic, {})[record.partition] = record.offset + 1
            if event is None or not self._in_scope(call, scope, event, directory):
                continue
            yield pb.SubscribeResponse(
                event=self._partner_event(event), cursor=encode_cursor(positions)
            )

    def _rank(self, topic: str) -> int:
        """Ties in log time follow the worker's write order: outputs, verdicts, statuses
        (streams/processor.py)."""
        if topic == self.topics[STATUS].name:
            return 2
        return 1 if topic == self.topics[VERDICTS].name else 0

    @staticmethod
    def _decode(value: bytes | None, wanted: set[str]) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            event = codec.decode(value)
        except codec.CodecError:
            return None
        if event.get("type") not in wanted or not isinstance(event.get("retiree_id"), str):
            return None
        return event

    @staticmethod
    def _in_scope(
        call: Call, scope: authz.Scope, event: dict[str, Any],
        directory: dict[str, authz.Retiree],
    ) -> bool:
        if event["type"] == VERDICT:
            # Addressed to the agency that reported the judged event, whatever the
            # retiree's scope now (it may be unknown: UNKNOWN_RETIREE); staff see all.
            return (call.rules is not None and call.rules.all_verdicts) or \
                event.get("reported_by") == call.agency
        if scope.everyone:
            return True
        retiree = directory.get(event["retiree_id"])
        return retiree is not None and scope.allows(call.agency, retiree)

    @staticmethod
    def _partner_event(event: dict[str, Any]) -> pb.PartnerEvent:
        return pb.PartnerEvent(
            type=event["type"],
            event_id=event["event_id"],
            retiree_id=event["retiree_id"],
            recorded_at=timestamp(event["recorded_at"]),
            interchange_json=json.dumps(interchange(event), ensure_ascii=False,
                                        separators=(",", ":")),
        )

    # ---------------------------------------------------------------- Acknowledge

    async def Acknowledge(
        self, request: pb.AcknowledgeRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcknowledgeResponse:
        call = await self.gate.enter(context, authz.ACKNOWLEDGE)
        try:
            decode_cursor(request.cursor, self.feed_topics)
        except CursorError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        now = datetime.now(UTC)
        try:
            await self.db.run(lambda c: db.save_cursor(c, call.agency, request.cursor, now))
        except Exception as exc:
            await self._unavailable(call, exc, 0)
        call.done("OK")
        return pb.AcknowledgeResponse(acknowledged_at=timestamp(now))


__all__ = ["Aborted", "PartnerExchange", "decode_cursor", "encode_cursor", "event_id_for"]
