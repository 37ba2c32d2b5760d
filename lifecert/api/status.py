"""StatusQuery.GetStatus: a retiree's status for a cycle, from the PostgreSQL projections
(retiree_status, open_holds) and the API's directory, after the second factor."""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from lifecert.api import authz, db
from lifecert.api.gate import Gate
from lifecert.api.nextstep import next_step
from lifecert.api.protos import common_pb2, status_query_pb2, status_query_pb2_grpc
from lifecert.api.secondfactor import SecondFactorError, matches, normalize_factor
from lifecert.domain.time import local_date

pb = status_query_pb2

NOT_FOUND = "no retiree matches this retiree id and second factor"


def _set_ts(ts: Timestamp, epoch: float) -> None:
    """``ts`` = ``epoch`` seconds, to the microsecond (as PostgreSQL stores it); without
    the datetime round trip of ``FromDatetime``."""
    seconds, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    ts.seconds = seconds
    ts.nanos = micros * 1000


class Lockout:
    """Wrong second factors per retiree id: ``attempts`` within ``seconds`` lock the id
    for ``seconds`` (whether or not the id exists, so that the lock tells nothing)."""

    def __init__(self, attempts: int, seconds: float, capacity: int = 100_000) -> None:
        self.attempts = attempts
        self.seconds = seconds
        self.capacity = capacity
        self._failures: OrderedDict[str, list[float]] = OrderedDict()

    def locked(self, key: str, now: float) -> float:
        """Seconds left of a lock on ``key`` (0 when not locked)."""
        recent = [t for t in self._failures.get(key, []) if now - t < self.seconds]
        if len(recent) >= self.attempts:
            return self.seconds - (now - recent[-self.attempts])
        return 0.0

    def failed(self, key: str, now: float) -> None:
        recent = [t for t in self._failures.pop(key, []) if now - t < self.seconds]
        recent.append(now)
        self._failures[key] = recent[-self.attempts:]
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class StatusQuery(status_query_pb2_grpc.StatusQueryServicer):
    def __init__(
        self, gate: Gate, reader: db.AsyncReader, second_factor_key: bytes, lockout: Lockout
    ) -> None:
        self.gate = gate
        self.reader = reader
        self.key = second_factor_key
        self.lockout = lockout

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStatusResponse:
        call = await self.gate.enter(context, authz.STATUS)
        assert call.rules is not None
        retiree_id = request.retiree_id.strip()
        if not retiree_id or len(retiree_id) > 64 or not retiree_id.isprintable():
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              "retiree_id must be 1-64 printable characters")
        try:
            factor = normalize_factor(request.second_factor)
        except SecondFactorError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(exc), subject=retiree_id)
        now = time.monotonic()
        left = self.lockout.locked(retiree_id, now)
        if left > 0:
            await call.refuse(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many wrong second factors for this retiree id; try again in "
                f"{int(left // 60) + 1} minutes",
                detail="LOCKED", subject=retiree_id,
            )
        try:
            found = await db.status_lookup(self.reader, retiree_id)
        except Exception as exc:
            await call.refuse(
                grpc.StatusCode.UNAVAILABLE, "the hub's database is unavailable; try again",
                detail=f"DB_UNAVAILABLE {type(exc).__name__}", subject=retiree_id,
            )
        if found.salt is None or found.digest is None or not matches(
            self.key, found.salt, found.digest, retiree_id, factor
        ):
            self.lockout.failed(retiree_id, now)
            await call.refuse(grpc.StatusCode.NOT_FOUND, NOT_FOUND, detail="NO_MATCH",
                              subject=retiree_id)
        self.lockout.succeeded(retiree_id)
        if found.retiree is not None:
            try:
                call.rules.scope.check(call.role, call.agency, found.retiree)
            except authz.Refusal as exc:
                await call.refuse(grpc.StatusCode.PERMISSION_DENIED, str(exc),
                                  detail="OUT_OF_SCOPE", subject=retiree_id)
        elif not call.rules.scope.everyone:
            await call.refuse(
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {call.role} may only query retirees in its scope, and this retiree's "
                "residence is not known yet",
                detail="OUT_OF_SCOPE", subject=retiree_id,
            )
        statuses = found.statuses
        if request.cycle:
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
        reply = pb.GetStatusResponse(
            retiree_id=retiree_id,
            cycle=cycle,
            status=(pb.CertificationStatus.Value(row.status) if row
                    else pb.CERTIFICATION_STATUS_UNSPECIFIED),
            next_step=pb.NextStep(code=step.code, zh=step.zh, en=step.en),
        )
        if row is not None:
            _set_ts(reply.as_of, row.as_of)
            if row.completed_by:
                reply.channel = common_pb2.Channel.Value(row.completed_by)
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
