"""A retiree's status answer, whatever the door it is asked at: the gRPC StatusQuery
(lifecert/api/status.py) and the people's web pages (lifecert/web/) call the same code,
so that both answer alike, count wrong second factors in the same PostgreSQL tables
(lifecert/api/lockouts.py) and explain the same next step (lifecert/api/nextstep.py).

Order of the checks: the caller's agency budget and its lockout for this retiree id
(read by the same statement as the status), then scope, then the second factor. An
unknown retiree id, a retiree outside the caller's scope and a wrong second factor get
one identical NOT_FOUND, and each costs the same work (the HMAC is computed in every
case, against a decoy when there is nothing to compare with) and counts as a wrong guess
of the caller.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from lifecert.api import db, lockouts
from lifecert.api.authz import RoleRules
from lifecert.api.nextstep import (
    EXPLAINED_REASONS,
    EXPLAINED_TYPES,
    Step,
    next_step,
    not_counted,
)
from lifecert.api.secondfactor import SecondFactorError, matches, normalize_factor
from lifecert.domain.policy import available_policies
from lifecert.events import bounds
from lifecert.events.time import local_date

log = logging.getLogger("lifecert.api")

NOT_FOUND = "no retiree matches this retiree id and second factor"

# Statuses whose answer tells why a certification did not count (a certified, exempt or
# deceased retiree has nothing to do about it).
_EXPLAIN_VERDICTS = frozenset({"NOT_CERTIFIED", "SUSPENDED", "PENDING_DOCUMENTS"})

# Compared against when the retiree has no second factor registered (or is not known):
# the same HMAC work as a real comparison, never a match.
_DECOY_SALT = secrets.token_bytes(16)
_DECOY_DIGEST = secrets.token_bytes(32)

# Kinds of refusal (each door maps them to its own codes: gRPC status, HTTP status).
INVALID = "INVALID"
BUDGET_SPENT = "BUDGET_SPENT"
LOCKED = "LOCKED"
NO_MATCH = "NOT_FOUND"
UNAVAILABLE = "UNAVAILABLE"


class StatusRefused(Exception):
    """The status is not given: ``kind`` (one of the constants above), ``message`` for
    the caller, ``detail`` for the audit trail."""

    def __init__(self, kind: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class StatusAnswer:
    retiree_id: str
    cycle: str
    status: str | None  # None: no status for the cycle yet
    channel: str | None  # how the certification was completed
    step: Step
    as_of: float | None = None  # epoch seconds of the status
    completed_at: float | None = None  # epoch seconds: when lifecert recorded it
    # the local (Asia/Shanghai) date, ISO, the person was seen: the completing
    # certification's performed day (completed_at's day for statuses from before it was kept)
    completed_on: str | None = None
    hold_month: str | None = None  # the open hold's first month (YYYY-MM)
    hold_placed_at: float | None = None


@dataclass(frozen=True)
class Asker:
    """Who asks: the agency and its role's rules, the address of the person behind a
    public front (None: none), and the shared lockout policy."""

    agency: str
    rules: RoleRules
    policy: lockouts.Policy
    key: bytes  # the second-factor key
    alerts: lockouts.PendingAlerts | None = None


def parse(retiree_id: str, second_factor: str) -> tuple[str, str]:
    """The retiree id (trimmed) and the second factor (normalized); refused as INVALID
    with what is wrong."""
    rid = retiree_id.strip()
    problem = bounds.id_problem("retiree_id", rid)
    if problem is not None:
        raise StatusRefused(INVALID, problem)
    try:
        return rid, normalize_factor(second_factor)
    except SecondFactorError as exc:
        raise StatusRefused(INVALID, str(exc)) from None


def _unavailable(exc: BaseException) -> StatusRefused:
    return StatusRefused(UNAVAILABLE, "the hub's database is unavailable; try again",
                         f"DB_UNAVAILABLE {type(exc).__name__}")


async def answer(reader: db.AsyncReader, asker: Asker, retiree_id: str, factor: str,
                 address: str | None, cycle: str = "") -> StatusAnswer:
    """The status of ``retiree_id`` (parsed) for ``cycle`` (empty: the latest) when
    ``factor`` (normalized) is right; else :class:`StatusRefused`."""
    rules = asker.rules
    who = lockouts.caller(asker.key, retiree_id, asker.agency, address)
    try:
        found = await db.status_lookup(reader, retiree_id, who.subject, who.agency, who.client)
    except Exception as exc:
        raise _unavailable(exc) from exc
    _check_locks(asker, found, address)
    retiree = found.retiree
    in_scope = (rules.scope.allows(asker.agency, retiree) if retiree is not None
                else rules.scope.everyone)
    if found.salt is not None and found.digest is not None:
        registered, salt, stored = True, found.salt, found.digest
    else:  # compared all the same, so that the answer takes as long
        registered, salt, stored = False, _DECOY_SALT, _DECOY_DIGEST
    right = matches(asker.key, salt, stored, retiree_id, factor)
    if not (in_scope and registered and right):
        why = ("OUT_OF_SCOPE" if not in_scope else "NO_MATCH" if registered
               else "NO_SECOND_FACTOR")
        await _wrong(reader, asker, who, why)
    if found.key_failures is not None:
        try:
            await lockouts.clear(reader, who)
        except Exception as exc:
            raise _unavailable(exc) from exc
    return await _answer_of(reader, found, retiree_id, cycle)


def _check_locks(asker: Asker, found: db.StatusLookup, address: str | None) -> None:
    if found.refused_for > 0:
        by = (f"this client address of agency {asker.agency}" if address
              else f"agency {asker.agency}")
        raise StatusRefused(
            BUDGET_SPENT,
            f"{by} gave {found.budget_failures} wrong second factors within "
            f"{lockouts.minutes(asker.policy.window_seconds)} minutes, its whole budget of "
            f"{asker.policy.budget}: its status queries are refused for "
            f"{lockouts.minutes(found.refused_for)} more minutes"
            + ("" if address else ", and the bureau's security staff are alerted"),
            "BUDGET_SPENT",
        )
    if found.locked_for > 0:
        by = "your agency" + (" from this client address" if address else "")
        raise StatusRefused(
            LOCKED,
            f"too many wrong second factors for this retiree id by {by}; try again in "
            f"{lockouts.minutes(found.locked_for)} minutes",
            "LOCKED",
        )


async def _answer_of(reader: db.AsyncReader, found: db.StatusLookup, retiree_id: str,
                     cycle: str) -> StatusAnswer:
    statuses = found.statuses
    if cycle:
        known = {*available_policies(), *(s.policy for s in statuses)}
        if cycle not in known:  # not "no decision yet" (with a 1970 as_of)
            raise StatusRefused(
                INVALID, f"unknown cycle {bounds.show(cycle)}: the cycles are "
                f"{', '.join(sorted(known))}; leave cycle empty for the latest",
                "UNKNOWN_CYCLE")
        statuses = [s for s in statuses if s.policy == cycle]
    row = max(statuses, key=lambda s: s.policy) if statuses else None
    cycle = row.policy if row else cycle
    residence = row.residence if row else (found.retiree.residence if found.retiree else None)
    unit_certifies = found.retiree is not None and (
        found.retiree.scheme == "GOV_INSTITUTION" or found.retiree.category == "CADRE_RETIREE"
    )
    hold = found.holds[-1] if found.holds and row and row.status == "SUSPENDED" else None
    step = next_step(row.status if row else None, cycle, residence, unit_certifies,
                     hold[0] if hold else None)
    if row is not None and row.status in _EXPLAIN_VERDICTS:
        try:
            step = await _with_verdict(reader, step, retiree_id, row.policy, unit_certifies)
        except Exception as exc:
            raise _unavailable(exc) from exc
    completed_on = None
    if row is not None and row.performed_on is not None:
        completed_on = row.performed_on
    elif row is not None and row.completed_at is not None:
        completed_on = local_date(datetime.fromtimestamp(row.completed_at, UTC)).isoformat()
    last_hold = found.holds[-1] if found.holds else None
    return StatusAnswer(
        retiree_id=retiree_id,
        cycle=cycle,
        status=row.status if row else None,
        channel=row.completed_by if row and row.completed_by else None,
        step=step,
        as_of=row.as_of if row else None,
        completed_at=row.completed_at if row else None,
        completed_on=completed_on,
        hold_month=last_hold[0] if last_hold else None,
        hold_placed_at=last_hold[1] if last_hold else None,
    )


async def _with_verdict(reader: db.AsyncReader, step: Step, retiree_id: str, policy: str,
                        unit_certifies: bool) -> Step:
    """``step`` with a sentence on the retiree's latest certification that did not count,
    when there is one (the verdicts' read model)."""
    found = await db.latest_verdict(reader, retiree_id, policy, EXPLAINED_TYPES,
                                    EXPLAINED_REASONS)
    if found is None:
        return step
    reason, judged_type, epoch = found
    on = local_date(datetime.fromtimestamp(epoch, UTC))
    zh, en = not_counted(reason, judged_type, on, unit_certifies)
    return Step(step.code, f"{zh}{step.zh}", f"{en} {step.en}")


async def _wrong(reader: db.AsyncReader, asker: Asker, who: lockouts.Caller,
                 why: str) -> None:
    """Count the wrong guess (the caller's key, the budget), publish the alert when it
    spent the budget, refuse with the one NOT_FOUND."""
    alert_at = asker.policy.alert_at(asker.rules)
    try:
        failure = await lockouts.record_failure(reader, who, asker.policy, alert_at)
    except Exception as exc:
        # Not counted, so not answered: an uncounted NOT_FOUND would be a free guess.
        raise _unavailable(exc) from exc
    if failure.budget_spent:
        log.warning("agency %s gave %d wrong second factors within the window: "
                    "SecurityAlert raised", asker.agency, alert_at)
        if asker.alerts is not None:
            try:
                await asker.alerts.flush()  # pending in PostgreSQL: retried if this fails
            except Exception as exc:
                log.error("publishing the SecurityAlert failed (retried): %s",
                          type(exc).__name__)
    raise StatusRefused(NO_MATCH, NOT_FOUND, why)
