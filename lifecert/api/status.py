"""StatusQuery.GetStatus: a retiree's status for a cycle, from the PostgreSQL projections
(retiree_status, open_holds) and the API's directory, for a caller that may act for the
retiree and gives the right second factor.

Order of the checks: the caller's agency budget and its lockout for this retiree id
(lifecert/api/lockouts.py, read by the same statement as the status), then scope, then
the second factor. An unknown retiree id, a retiree outside the caller's scope and a
wrong second factor get one identical NOT_FOUND, and each costs the same work (the HMAC
is computed in every case, against a decoy when there is nothing to compare with) and
counts as a wrong guess of the caller.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import NoReturn

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from lifecert.api import authz, db, lockouts
from lifecert.api.gate import Call, Gate
from lifecert.api.nextstep import (
    EXPLAINED_REASONS,
    EXPLAINED_TYPES,
    Step,
    next_step,
    not_counted,
)
from lifecert.api.protos import status_query_pb2, status_query_pb2_grpc
from lifecert.api.secondfactor import SecondFactorError, matches, normalize_factor
from lifecert.domain.policy import available_policies
from lifecert.events import bounds
from lifecert.events.time import local_date

log = logging.getLogger("lifecert.api")

pb = status_query_pb2

NOT_FOUND = "no retiree matches this retiree id and second factor"

# Statuses whose answer tells why a certification did not count (a certified, exempt or
# deceased retiree has nothing to do about it).
_EXPLAIN_VERDICTS = frozenset({"NOT_CERTIFIED", "SUSPENDED", "PENDING_DOCUMENTS"})

# Compared against when the retiree has no second factor registered (or is not known):
# the same HMAC work as a real comparison, never a match.
_DECOY_SALT = secrets.token_bytes(16)
_DECOY_DIGEST = secrets.token_bytes(32)


def _set_ts(ts: Timestamp, epoch: float) -> None:
    """``ts`` = ``epoch`` seconds, to the microsecond (as PostgreSQL stores it); without
    the datetime round trip of ``FromDatetime``."""
    seconds, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    ts.seconds = seconds
    ts.nanos = micros * 1000


class StatusQuery(status_query_pb2_grpc.StatusQueryServicer):
    def __init__(
        self, gate: Gate, reader: db.AsyncReader, second_factor_key: bytes,
        policy: lockouts.Policy, alerts: lockouts.PendingAlerts | None = None,
    ) -> None:
        self.gate = gate
        self.reader = reader
        self.key = second_factor_key
        self.policy = policy
        self.alerts = alerts  # publishes a spent budget's SecurityAlert

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatusResponse:
        call = await self.gate.enter(context, authz.STATUS)
        assert call.rules is not None
        rules = call.rules
        retiree_id = request.retiree_id.strip()
        problem = bounds.id_problem("retiree_id", retiree_id)
        if problem is not None:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, problem)
        try:
            factor = normalize_factor(request.second_factor)
        except SecondFactorError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(exc), subject=retiree_id)
        try:
            address = lockouts.client_of(context.invocation_metadata(), call.role, rules)
        except lockouts.ClientAddressError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(exc), subject=retiree_id)
        who = lockouts.caller(self.key, retiree_id, call.agency, address)
        try:
            found = await db.status_lookup(self.reader, retiree_id, who.subject, who.agency,
                                           who.client)
        except Exception as exc:
            await self._unavailable(call, exc, retiree_id)
        await self._refuse_when_locked(call, found, address, retiree_id)
        retiree = found.retiree
        in_scope = (rules.scope.allows(call.agency, retiree) if retiree is not None
                    else rules.scope.everyone)
        if found.salt is not None and found.digest is not None:
            registered, salt, stored = True, found.salt, found.digest
        else:  # compared all the same, so that the answer takes as long
            registered, salt, stored = False, _DECOY_SALT, _DECOY_DIGEST
        right = matches(self.key, salt, stored, retiree_id, factor)
        if not (in_scope and registered and right):
            why = ("OUT_OF_SCOPE" if not in_scope else "NO_MATCH" if registered
                   else "NO_SECOND_FACTOR")
            await self._wrong(call, who, why, retiree_id)
        if found.key_failures is not None:
            try:
                await lockouts.clear(self.reader, who)
            except Exception as exc:
                await self._unavailable(call, exc, retiree_id)
        statuses = found.statuses
        if request.cycle:
            known = {*available_policies(), *(s.policy for s in statuses)}
            if request.cycle not in known:  # not "no decision yet" (with a 1970 as_of)
                await call.refuse(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unknown cycle {bounds.show(request.cycle)}: the cycles are "
                    f"{', '.join(sorted(known))}; leave cycle empty for the latest",
                    subject=retiree_id)
            statuses = [s for s in statuses if s.policy == request.cycle]
        row = max(statuses, key=lambda s: s.policy) if statuses else None
        cycle = row.policy if row else request.cycle
        residence = row.residence if row else (found.retiree.residence if found.retiree else None)
        unit_certifies = found.retiree is not None and (
            found.retiree.scheme == "GOV_INSTITUTION" or found.retiree.category == "CADRE_RETIREE"
        )
        hold = found.holds[-1] if found.holds and row and row.status == "SUSPENDED" else None
        step = next_step(row.status if row else None, cycle, residence, unit_certifies,
                         hold[0] if hold else None)
        if row is not None and row.status in _EXPLAIN_VERDICTS:
            try:
                step = await self._with_verdict(step, retiree_id, row.policy, unit_certifies)
            except Exception as exc:
                await self._unavailable(call, exc, retiree_id)
        reply = pb.GetStatusResponse(
            retiree_id=retiree_id,
            cycle=cycle,
            status=row.status if row else pb.CERTIFICATION_STATUS_UNSPECIFIED,
            channel=row.completed_by if row and row.completed_by else None,
            next_step=pb.NextStep(code=step.code, zh=step.zh, en=step.en),
        )
        if row is not None:
            _set_ts(reply.as_of, row.as_of)
            if row.completed_at is not None:
                _set_ts(reply.completed_at, row.completed_at)
                at = datetime.fromtimestamp(row.completed_at, UTC)
                reply.completed_on = local_date(at).isoformat()
        if found.holds:
            month, placed = found.holds[-1]
            reply.open_hold.effective_month = month
            _set_ts(reply.open_hold.placed_at, placed)
        call.done("OK", row.status if row else "NO_STATUS", subject=retiree_id)
        return reply

    async def _refuse_when_locked(
        self, call: Call, found: db.StatusLookup, address: str | None, retiree_id: str
    ) -> None:
        """Refuse when the caller's budget of wrong second factors is spent, or this
        retiree id is locked for it (lifecert/api/lockouts.py)."""
        if found.refused_for > 0:
            by = (f"this client address of agency {call.agency}" if address
                  else f"agency {call.agency}")
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{by} gave {found.budget_failures} wrong second factors within "
                f"{lockouts.minutes(self.policy.window_seconds)} minutes, its whole budget of "
                f"{self.policy.budget}: its status queries are refused for "
                f"{lockouts.minutes(found.refused_for)} more minutes"
                + ("" if address else ", and the bureau's security staff are alerted"),
                detail="BUDGET_SPENT", subject=retiree_id,
            )
        if found.locked_for > 0:
            by = "your agency" + (" from this client address" if address else "")
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many wrong second factors for this retiree id by {by}; try again in "
                f"{lockouts.minutes(found.locked_for)} minutes",
                detail="LOCKED", subject=retiree_id,
            )

    async def _with_verdict(
        self, step: Step, retiree_id: str, policy: str, unit_certifies: bool
    ) -> Step:
        """``step`` with a sentence on the retiree's latest certification that did not
        count, when there is one (the verdicts' read model)."""
        found = await db.latest_verdict(self.reader, retiree_id, policy, EXPLAINED_TYPES,
                                        EXPLAINED_REASONS)
        if found is None:
            return step
        reason, judged_type, epoch = found
        on = local_date(datetime.fromtimestamp(epoch, UTC))
        zh, en = not_counted(reason, judged_type, on, unit_certifies)
        return Step(step.code, f"{zh}{step.zh}", f"{en} {step.en}")

    async def _wrong(self, call: Call, who: lockouts.Caller, why: str,
                     retiree_id: str) -> NoReturn:
        """Count the wrong guess (the caller's key, the budget), publish the alert when it
        spent the budget, answer the one NOT_FOUND."""
        assert call.rules is not None
        alert_at = self.policy.alert_at(call.rules)
        try:
            failure = await lockouts.record_failure(self.reader, who, self.policy, alert_at)
        except Exception as exc:
            # Not counted, so not answered: an uncounted NOT_FOUND would be a free guess.
            await self._unavailable(call, exc, retiree_id)
        if failure.budget_spent:
            log.warning("agency %s gave %d wrong second factors within the window: "
                        "SecurityAlert raised", call.agency, alert_at)
            if self.alerts is not None:
                try:
                    await self.alerts.flush()  # pending in PostgreSQL: retried if this fails
                except Exception as exc:
                    log.error("publishing the SecurityAlert failed (retried): %s",
                              type(exc).__name__)
        await call.refuse(grpc.StatusCode.NOT_FOUND, NOT_FOUND, detail=why, subject=retiree_id)
        raise AssertionError("refuse returns only by raising")  # pragma: no cover

    @staticmethod
    async def _unavailable(call: Call, exc: BaseException, retiree_id: str) -> NoReturn:
        await call.refuse(
            grpc.StatusCode.UNAVAILABLE, "the hub's database is unavailable; try again",
            detail=f"DB_UNAVAILABLE {type(exc).__name__}", subject=retiree_id,
        )
        raise AssertionError("refuse returns only by raising")  # pragma: no cover
