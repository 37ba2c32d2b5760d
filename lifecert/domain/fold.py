"""The rules of a campaign as a pure fold over one retiree's events.

``decide`` takes a retiree's state (or ``None`` before enrollment), one input event and
the policy, and returns the state, the output events and the rejection reason (or
``None``). ``apply_moment`` does the same for a clock moment. Nothing here reads a clock,
a file or the network: replay, the faust workers and the tests call these functions and
get the same decisions. For speed the state passed in is updated in place and returned;
callers treat the argument as consumed.

docs/rules.md explains every choice the rules in DESIGN.md leave open.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from hashlib import sha1
from typing import Any

from lifecert.domain import reasons
from lifecert.domain.policy import DEADLINE, HOME_VISIT_SWEEP, Moment, Policy
from lifecert.domain.state import Certification, RetireeState
from lifecert.events.catalogue import Event
from lifecert.events.time import (
    Month,
    age_on,
    format_month,
    local_date,
    month_of,
    month_of_date,
    parse_month,
)

Decision = tuple[RetireeState | None, list[Event], str | None]

# Namespace of the deterministic ids of output events (UUIDv5).
OUTPUT_ID_NAMESPACE = uuid.UUID("5b1c8f1e-3d8a-5c43-9a61-6c1f0e4f2b17")


_NAMESPACE_BYTES = OUTPUT_ID_NAMESPACE.bytes
_VARIANT = "89ab89ab89ab89ab"  # RFC 4122 variant: the top two bits of byte 8 are 10


def uuid5(name: str) -> str:
    """``str(uuid.uuid5(OUTPUT_ID_NAMESPACE, name))``, about twice as fast."""
    h = sha1(_NAMESPACE_BYTES + name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[int(h[16], 16)]}{h[17:20]}-{h[20:32]}"


def output_event(
    policy: Policy, type_name: str, retiree_id: str, at: datetime, key: str, **fields: Any
) -> Event:
    """An output event with its deterministic id: one id per (policy, type, retiree, key)."""
    event_id = uuid5(f"{policy.name}|{type_name}|{retiree_id}|{key}")
    return {
        "type": type_name,
        "event_id": event_id,
        "recorded_at": at,
        "source_agency": "lifecert",
        "retiree_id": retiree_id,
        **fields,
    }


def decide(state: RetireeState | None, event: Event, policy: Policy) -> Decision:
    """Decide one input event for one retiree."""
    type_name = event["type"]
    if type_name == "RetireeEnrolled":
        return _enroll(state, event, policy)
    if state is None:
        return None, [], reasons.UNKNOWN_RETIREE
    at = _judged_at(state, event["recorded_at"], policy)
    if _seen_before(state, event.get("event_id")):
        return state, [], reasons.DUPLICATE_EVENT
    handler = _HANDLERS[type_name]
    outputs, rejection = handler(state, event, policy, at)
    return state, outputs, rejection


def _judged_at(state: RetireeState, recorded_at: datetime, policy: Policy) -> datetime:
    """The moment an event recorded at ``recorded_at`` is judged as of (docs/rules.md,
    "Late-logged events"): the retiree's knowledge moment K, now including this event, is
    the latest recorded_at of its events read so far (whatever their verdict) and the
    deadline moment once decided; the event is judged as of max(recorded_at, K). For a log
    in recorded_at order that is the event's own ``recorded_at`` (the same object: an
    equal instant keeps the event's own offset)."""
    known = state.known_at
    if known is None or recorded_at >= known:
        state.known_at = known = recorded_at
    if state.deadline_passed and known < policy.deadline_moment:
        return policy.deadline_moment
    return known


def _seen_before(state: RetireeState, event_id: str | None) -> bool:
    """Whether ``event_id`` was decided for this retiree already; remembers it if not."""
    if event_id is None:
        return False
    if state.event_ids is None:
        state.event_ids = [event_id]
        return False
    if event_id in state.event_ids:
        return True
    state.event_ids.append(event_id)
    return False


def apply_moment(state: RetireeState, moment: Moment, policy: Policy) -> list[Event]:
    """Decide a clock moment for one retiree."""
    if moment.kind == DEADLINE:
        state.deadline_passed = True
    if state.date_of_death is not None or not state.in_scope or state.complete:
        return []
    if moment.kind == DEADLINE:
        if state.hold_month is not None:
            return []
        return [_hold(state, moment.at, policy.hold_effective_month, "NOT_CERTIFIED", policy)]
    if moment.kind == HOME_VISIT_SWEEP:
        if not state.home_visit_candidate:
            return []
        due = policy.deadline
        return [
            output_event(
                policy, "HomeVisitDue", state.retiree_id, moment.at, due.isoformat(),
                due_date=due,
            )
        ]
    raise ValueError(f"unknown clock moment kind {moment.kind!r}")


def _enroll(state: RetireeState | None, event: Event, policy: Policy) -> Decision:
    if state is not None:
        _judged_at(state, event["recorded_at"], policy)
        if _seen_before(state, event.get("event_id")):
            return state, [], reasons.DUPLICATE_EVENT
        return state, [], reasons.ALREADY_ENROLLED
    pension_start = event["pension_start"]
    home_visit = policy.home_visits and event["residence"] in policy.home_visit_residences and (
        (policy.home_visit_if_disabled and event["disabled"])
        or age_on(event["birth_date"], policy.deadline)
        >= policy.home_visit_age(event["district"])
    )
    state = RetireeState(
        event["retiree_id"],
        pension_start < policy.scope_pension_start_before,  # in scope
        event["scheme"] in policy.employer_only_schemes  # certified only by the employer
        or event["category"] in policy.employer_only_categories,
        bool(home_visit),
        month_of_date(pension_start),
        event["monthly_amount_fen"],
        event["residence"],
        event["district"],
        event["birth_date"],
    )
    state.known_at = event["recorded_at"]
    event_id = event.get("event_id")
    if event_id is not None:
        state.event_ids = [event_id]
    return state, [], None


Handled = tuple[list[Event], str | None]


def _amount_changed(
    state: RetireeState, event: Event, policy: Policy, at: datetime
) -> Handled:
    if state.date_of_death is not None:
        return [], reasons.RETIREE_DECEASED
    change = (parse_month(event["effective_month"]), event["monthly_amount_fen"])
    if state.amount_changes is None:
        state.amount_changes = [change]
    else:
        state.amount_changes.append(change)
    return [], None


def _key(state: RetireeState, key: str) -> str:
    """The id key of an output: after the n-th correction it carries n, so that a second
    hold, release or termination of a retiree gets an id of its own."""
    return key if not state.corrections else f"{key}|c{state.corrections}"


def _certification(
    state: RetireeState, event: Event, policy: Policy, at: datetime
) -> Handled:
    cert_id = event["certification_id"]
    agency_id = event["agency_id"]
    if state.certifications is None:
        state.certifications = []
        first_with_id = True
    else:
        if state.certification(cert_id, agency_id) is not None:
            return [], reasons.DUPLICATE_CERTIFICATION
        first_with_id = state.certification(cert_id) is None
    keep = state.certifications.append
    channel = event["channel"]
    performed_on = local_date(event["performed_at"])
    counting = state.employer_only == (channel in policy.employer_channels) and (
        performed_on >= policy.window_opens
    )
    early = state.early_documents
    complete = counting and (
        channel not in policy.document_channels
        or (
            early is not None
            and ((agency_id, cert_id) in early or (first_with_id and (None, cert_id) in early))
        )
    )
    if state.date_of_death is not None:
        # Kept as rules 2-4 judge it: it counts if the death is retracted (rule 13).
        cert = Certification(cert_id, channel, performed_on, counting, complete, agency_id)
        keep(cert)
        state.recount()
        return _fraud_check(state, cert, at, policy), reasons.RETIREE_DECEASED
    if state.employer_only != (channel in policy.employer_channels):
        keep(Certification(cert_id, channel, performed_on, False, False, agency_id))
        return [], reasons.CHANNEL_NOT_ALLOWED
    if performed_on < policy.window_opens:
        keep(Certification(cert_id, channel, performed_on, False, False, agency_id))
        return [], reasons.OUTSIDE_WINDOW
    if not complete:
        keep(Certification(cert_id, channel, performed_on, True, False, agency_id))
        state.pending_documents += 1
        return [], None
    keep(Certification(cert_id, channel, performed_on, True, True, agency_id))
    return _complete(state, channel, event["recorded_at"], at, performed_on, policy), None


def _documents(state: RetireeState, event: Event, policy: Policy, at: datetime) -> Handled:
    if state.date_of_death is not None:
        return [], reasons.RETIREE_DECEASED
    cert_id = event["certification_id"]
    agency_id = event.get("agency_id")
    cert = state.certification(cert_id, agency_id)
    if cert is None:
        if state.early_documents is None:
            state.early_documents = {}
        elif (agency_id, cert_id) in state.early_documents:
            return [], reasons.DUPLICATE_DOCUMENTS
        state.early_documents[(agency_id, cert_id)] = event["recorded_at"]
        return [], None
    if cert.revoked:
        return [], reasons.CERTIFICATION_REVOKED
    if cert.channel not in policy.document_channels:
        return [], reasons.DOCUMENTS_NOT_REQUIRED
    if not cert.counting:
        return [], reasons.CERTIFICATION_NOT_COUNTING
    if cert.complete:
        return [], reasons.DUPLICATE_DOCUMENTS
    cert.complete = True
    state.pending_documents -= 1
    return (
        _complete(state, cert.channel, event["recorded_at"], at, cert.performed_on, policy),
        None,
    )


def _complete(state: RetireeState, channel: str, recorded_at: datetime, at: datetime,
              performed_on: date, policy: Policy) -> list[Event]:
    """A counting certification through ``channel``, performed on ``performed_on`` (the
    day the person was seen), became complete by an event recorded at ``recorded_at`` and
    judged as of ``at``: release an open hold (the completion month is ``at``'s)."""
    if state.complete:
        return []
    state.complete = True
    state.completed_by = channel
    state.completed_at = recorded_at
    state.completed_performed_on = performed_on
    hold = state.hold_month
    if hold is None:
        return []
    state.hold_month = None
    completed_in = month_of(at)
    months = [*(state.hold_extra_months or ()), *range(hold, completed_in + 1)]
    state.hold_extra_months = None
    effective = format_month(max(completed_in + 1, hold))
    return [
        output_event(
            policy, "PaymentHoldReleased", state.retiree_id, at, _key(state, effective),
            effective_month=effective,
            backpay_months=[format_month(m) for m in months],
            backpay_amount_fen=sum(state.amount_in_force(m) for m in months),
        )
    ]


def _hold(state: RetireeState, at: datetime, month: Month, reason: str, policy: Policy) -> Event:
    state.hold_month = month
    text = format_month(month)
    return output_event(
        policy, "PaymentHoldPlaced", state.retiree_id, at, _key(state, text),
        effective_month=text, reason=reason,
    )


def _death(state: RetireeState, event: Event, policy: Policy, at: datetime) -> Handled:
    if state.date_of_death is not None:
        return [], reasons.DEATH_ALREADY_RECORDED
    died_on = event["date_of_death"]
    recorded_at = event["recorded_at"]
    # Nobody dies before being born, nor after the report of the death was recorded (the
    # report's own recorded_at: a late-logged report is no less impossible).
    born = state.birth_date
    if died_on > local_date(recorded_at) or (born is not None and died_on < born):
        return [], reasons.IMPOSSIBLE_DEATH_DATE
    state.date_of_death = died_on
    state.death_report = (event["source"], recorded_at)
    death_month = month_of_date(died_on)
    terminated = format_month(death_month + 1)
    outputs = [
        output_event(
            policy, "PaymentTerminated", state.retiree_id, at, _key(state, ""),
            effective_month=terminated, reason="DECEASED",
        )
    ]
    held_from = state.hold_month
    extra = state.hold_extra_months or []
    first = max(death_month + 1, state.pension_start_month)
    # Months after the death that were paid (not held): recovered when the switch is on.
    paid = [
        m for m in range(first, month_of(at) + 1)
        if (held_from is None or m < held_from) and m not in extra
    ]
    detected = 0  # the amount of the OverpaymentDetected, 0 when none was issued
    if policy.overpayment_checks and paid:
        detected = sum(state.amount_in_force(m) for m in paid)
        outputs.append(
            output_event(
                policy, "OverpaymentDetected", state.retiree_id, at, _key(state, ""),
                months=[format_month(m) for m in paid], amount_fen=detected,
            )
        )
    estate: list[Month] = []
    if held_from is not None:
        # Rule 14: what a release would have back-paid, up to the month of death.
        owed = [*extra, *range(held_from, month_of(at) + 1)]
        estate = [m for m in owed if state.pension_start_month <= m <= death_month]
        if estate:
            outputs.append(
                output_event(
                    policy, "PaymentEstateSettled", state.retiree_id, at, _key(state, ""),
                    months=[format_month(m) for m in estate],
                    amount_fen=sum(state.amount_in_force(m) for m in estate),
                )
            )
        unpaid_from = held_from
    else:
        unpaid_from = death_month + 1
    state.death_memory = (unpaid_from, list(extra), paid, detected, estate)
    state.hold_month = None
    state.hold_extra_months = None
    for cert in state.certifications or ():
        outputs.extend(_fraud_check(state, cert, at, policy))
    return outputs, None


def _revocation(state: RetireeState, event: Event, policy: Policy, at: datetime) -> Handled:
    """Rule 12."""
    cert = state.certification(event["certification_id"], event["agency_id"])
    if cert is None:
        return [], reasons.UNKNOWN_CERTIFICATION
    if cert.revoked:
        return [], reasons.ALREADY_REVOKED
    was_complete_counting = cert.counts and cert.complete
    cert.revoked = True
    state.corrections += 1
    state.recount()
    if (
        was_complete_counting
        and state.date_of_death is None
        and state.in_scope
        and policy.holds
        and state.deadline_passed
        and state.hold_month is None
        and not state.complete
    ):
        return [_hold(state, at, month_of(at) + 1, "CERTIFICATION_REVOKED", policy)], None
    return [], None


def _retraction(state: RetireeState, event: Event, policy: Policy, at: datetime) -> Handled:
    """Rule 13."""
    if state.date_of_death is None or state.death_memory is None:
        return [], reasons.NO_DEATH_RECORDED
    unpaid_from, extra, paid, detected, estate = state.death_memory
    retracted_in = month_of(at)
    state.date_of_death = None
    state.death_memory = None
    state.death_report = None
    state.corrections += 1
    state.retractions += 1
    outputs: list[Event] = []
    if detected:
        # The same months and amount as the OverpaymentDetected: amounts as known then.
        outputs.append(
            output_event(
                policy, "OverpaymentCancelled", state.retiree_id, at, _key(state, ""),
                months=[format_month(m) for m in paid], amount_fen=detected,
            )
        )
    settled = set(estate) | set(paid)
    unpaid = [
        m for m in [*extra, *range(unpaid_from, retracted_in + 1)]
        if m not in settled and m >= state.pension_start_month
    ]
    state.recount()
    hold = (
        state.in_scope and policy.holds and state.deadline_passed and not state.complete
    )
    backpay = [m for m in unpaid if m < policy.hold_effective_month] if hold else unpaid
    effective = format_month(retracted_in + 1)
    outputs.append(
        output_event(
            policy, "PaymentReinstated", state.retiree_id, at, _key(state, effective),
            effective_month=effective,
            backpay_months=[format_month(m) for m in backpay],
            backpay_amount_fen=sum(state.amount_in_force(m) for m in backpay),
        )
    )
    if hold:
        outputs.append(_hold(state, at, retracted_in + 1, "NOT_CERTIFIED", policy))
        state.hold_extra_months = [m for m in unpaid if m >= policy.hold_effective_month] or None
    return outputs, None


def _contact_details(
    state: RetireeState, event: Event, policy: Policy, at: datetime
) -> Handled:
    """Changes no status or payment: the read models keep the contact record."""
    return [], None


def _fraud_key(state: RetireeState, cert: Certification) -> str:
    """The certification id; the pair when an earlier certification has the same id."""
    if state.certification(cert.certification_id) is cert:
        return cert.certification_id
    return f"{cert.agency_id}|{cert.certification_id}"


def _fraud_check(
    state: RetireeState, cert: Certification, at: datetime, policy: Policy
) -> list[Event]:
    died_on = state.date_of_death
    if (
        not policy.fraud_checks
        or died_on is None
        or cert.fraud_flagged
        or cert.performed_on <= died_on
    ):
        return []
    cert.fraud_flagged = True
    return [
        output_event(
            policy, "FraudSuspected", state.retiree_id, at, _fraud_key(state, cert),
            certification_id=cert.certification_id, reason="CERTIFIED_AFTER_DEATH",
        )
    ]


_HANDLERS = {
    "PensionAmountChanged": _amount_changed,
    "CertificationRecorded": _certification,
    "CertificationDocumentsReceived": _documents,
    "DeathRecorded": _death,
    "CertificationRevoked": _revocation,
    "DeathReportRetracted": _retraction,
    "ContactDetailsUpdated": _contact_details,
}
