"""Verdicts: an input the rules did not apply, as an output event for whoever reported it.

``verdict`` turns a rejection of :func:`lifecert.domain.fold.decide` into an
``EventRejected``. The live worker (streams/partition_state.py) and ``lifecert replay``
call it on the same (event, reason) pairs, so the verdicts they give are the same. Its id
is derived from the judged event's id and the reason: deciding the event again (a worker
restarted before its state was stored) gives the same verdict, which readers take once.
"""

from __future__ import annotations

from lifecert.domain import reasons
from lifecert.domain.fold import output_event
from lifecert.domain.policy import Policy
from lifecert.events.catalogue import Event

EVENT_REJECTED = "EventRejected"

# A redelivery of an event already decided (the same event id): idempotent, and a worker
# that re-reads records it decided before its offsets were committed meets it too, so it
# is no news to the agency and not reported.
NOT_REPORTED = frozenset({reasons.DUPLICATE_EVENT})


def verdict(event: Event, reason: str, policy: Policy) -> Event | None:
    """The ``EventRejected`` for ``event`` rejected with ``reason``; ``None`` for a reason
    not reported (:data:`NOT_REPORTED`)."""
    if reason in NOT_REPORTED:
        return None
    if reason not in reasons.REJECTION_REASONS:
        raise ValueError(f"unknown rejection reason {reason!r} (lifecert/domain/reasons.py)")
    judged_id = event.get("event_id")
    at = event["recorded_at"]
    certification_id = event.get("certification_id")
    agency_id = event.get("agency_id")
    if judged_id is not None:
        key = f"{judged_id}|{reason}"
    else:  # a replayed line without an id: what identifies the event on its own
        key = f"{event['type']}|{at.isoformat()}|{certification_id or ''}|{reason}"
    judged = output_event(
        policy, EVENT_REJECTED, event["retiree_id"], at, key,
        reason=reason,
        judged_type=event["type"],
        judged_event_id=judged_id,
        reported_by=event.get("source_agency") or agency_id,
        certification_id=certification_id,
        agency_id=agency_id,
        performed_at=event.get("performed_at"),
    )
    judged["policy"] = policy.name  # a payload field: output_event's own policy is the Policy
    return judged
