"""StatusQuery.GetStatus: a retiree's status for a cycle, from the PostgreSQL projections
(retiree_status, open_holds) and the API's directory, for a caller that may act for the
retiree and gives the right second factor. The answer and its checks are
lifecert/api/statusanswer.py's, shared with the web pages (lifecert/web/); this module
maps them to gRPC.
"""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from lifecert.api import authz, db, lockouts
from lifecert.api.gate import Gate
from lifecert.api.protos import status_query_pb2, status_query_pb2_grpc
from lifecert.api.statusanswer import (
    BUDGET_SPENT,
    INVALID,
    LOCKED,
    NO_MATCH,
    NOT_FOUND,
    UNAVAILABLE,
    Asker,
    StatusRefused,
    answer,
    parse,
)
from lifecert.events import bounds

__all__ = ["NOT_FOUND", "StatusQuery"]

pb = status_query_pb2

_CODES = {
    INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    BUDGET_SPENT: grpc.StatusCode.RESOURCE_EXHAUSTED,
    LOCKED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NO_MATCH: grpc.StatusCode.NOT_FOUND,
    UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def _set_ts(ts: Timestamp, epoch: float) -> None:
    """``ts`` = ``epoch`` seconds, to the microsecond (as PostgreSQL stores it); without
    the datetime round trip of ``FromDatetime``."""
    seconds, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    ts.seconds = seconds
    ts.nanos = micros * 1000


class _BadId(ValueError):
    """A retiree id that cannot be one (audited without it)."""


def _parse(retiree_id: str, second_factor: str) -> tuple[str, str]:
    rid = retiree_id.strip()
    problem = bounds.id_problem("retiree_id", rid)
    if problem is not None:
        raise _BadId(problem)
    return parse(rid, second_factor)


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
        retiree_id: str | None = None
        try:
            retiree_id, factor = _parse(request.retiree_id, request.second_factor)
            try:
                address = lockouts.client_of(context.invocation_metadata(), call.role,
                                             call.rules)
            except lockouts.ClientAddressError as exc:
                raise StatusRefused(INVALID, str(exc)) from None
            asker = Asker(call.agency, call.rules, self.policy, self.key, self.alerts)
            found = await answer(self.reader, asker, retiree_id, factor, address,
                                 request.cycle)
        except _BadId as bad:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, str(bad))
        except StatusRefused as refused:
            await call.refuse(_CODES[refused.kind], refused.message, detail=refused.detail,
                              subject=retiree_id)
        reply = pb.GetStatusResponse(
            retiree_id=found.retiree_id,
            cycle=found.cycle,
            status=found.status or pb.CERTIFICATION_STATUS_UNSPECIFIED,
            channel=found.channel,
            next_step=pb.NextStep(code=found.step.code, zh=found.step.zh, en=found.step.en),
        )
        if found.as_of is not None:
            _set_ts(reply.as_of, found.as_of)
        if found.completed_at is not None:
            _set_ts(reply.completed_at, found.completed_at)
            reply.completed_on = found.completed_on or ""
        if found.hold_month is not None and found.hold_placed_at is not None:
            reply.open_hold.effective_month = found.hold_month
            _set_ts(reply.open_hold.placed_at, found.hold_placed_at)
        call.done("OK", found.status or "NO_STATUS", subject=retiree_id)
        return reply
