"""ConsularReview: the consular system's cases for bureau staff (role STAFF only), from the
``consular_cases`` read model; a review is decided by :mod:`lifecert.domain.consular`, as
``lifecert review consular`` decides it, and published with the API's producer. The
reviewer is the caller's agency, from its client certificate."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import NoReturn

import grpc

from lifecert.api import authz
from lifecert.api.db import Database
from lifecert.api.gate import Call, Gate
from lifecert.api.protos import consular_review_pb2, consular_review_pb2_grpc
from lifecert.api.publisher import NotWritten, Publisher
from lifecert.domain import consular
from lifecert.domain.policy import Policy, PolicyError, available_policies, load_policy
from lifecert.domain.working_days import WorkingCalendarError
from lifecert.events import bounds
from lifecert.events.time import local_date
from projections.consular import STATES, CaseView, list_cases, load_case
from projections.queries import current_policy

pb = consular_review_pb2
MAX_LIST = 1000


def _case(view: CaseView) -> consular_review_pb2.ConsularCase:
    c = view.case
    out = pb.ConsularCase(
        case_id=c.case_id, retiree_id=c.retiree_id, mission_id=c.mission_id,
        mission_kind=c.mission_kind, country=view.country,
        passport_checked=c.passport_checked,
        residence_permit_checked=c.residence_permit_checked, face_checked=c.face_checked,
        due_on=view.due_on.isoformat() if view.due_on else "", overdue=view.overdue,
        decision=c.decision or "", reviewer=c.reviewer or "", reason=view.reason or "")
    out.received_at.FromDatetime(c.received_at.astimezone(UTC))
    return out


class ConsularReview(consular_review_pb2_grpc.ConsularReviewServicer):
    def __init__(self, gate: Gate, database: Database, publisher: Publisher) -> None:
        self.gate = gate
        self.database = database
        self.publisher = publisher

    async def _policy(self, call: Call, cycle: str) -> Policy:
        # A shipped policy's name only: load_policy also takes a file path, which a caller
        # must not be able to make the server read.
        known = available_policies()
        name = cycle
        if not name:  # the policy the hub runs (the worker's), never a year written here
            try:
                current = await self.database.run(current_policy)
            except Exception as exc:
                await _unavailable(call, exc)
            if current is None:
                await call.refuse(grpc.StatusCode.FAILED_PRECONDITION,
                                  "the read models hold no campaign yet, so there is no "
                                  "policy to default to: name the cycle "
                                  f"({', '.join(known)})")
            name = current
        if name not in known:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              f"cycle {bounds.show(name, 40)} is not a policy of this hub: "
                              f"the cycles are {', '.join(known)}")
        try:
            return load_policy(name)
        except PolicyError as exc:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT, f"cycle: {exc}")

    async def ListCases(
        self, request: pb.ListConsularCasesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConsularCasesResponse:
        call = await self.gate.enter(context, authz.CONSULAR_LIST)
        state = request.state or "open"
        if state not in STATES:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              f"state must be one of {', '.join(STATES)}, got {state[:40]!r}")
        try:
            today = date.fromisoformat(request.as_of) if request.as_of \
                else local_date(datetime.now(UTC))
        except ValueError:
            await call.refuse(grpc.StatusCode.INVALID_ARGUMENT,
                              f"as_of must be YYYY-MM-DD, got {request.as_of[:40]!r}")
        policy = await self._policy(call, request.cycle)
        limit = min(request.limit or MAX_LIST, MAX_LIST)
        try:
            views = await self.database.run(
                lambda conn: list_cases(conn, policy, today, state, limit))
        except Exception as exc:
            await _unavailable(call, exc)
        call.done("OK", state, items=len(views))
        return pb.ListConsularCasesResponse(cases=[_case(v) for v in views])

    async def Review(
        self, request: pb.ReviewConsularCaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReviewConsularCaseResponse:
        call = await self.gate.enter(context, authz.CONSULAR_REVIEW)
        case_id = request.case_id.strip()
        policy = await self._policy(call, request.cycle)
        try:
            case = await self.database.run(lambda conn: load_case(conn, case_id))
        except Exception as exc:
            await _unavailable(call, exc)
        if case is None:
            await call.refuse(grpc.StatusCode.NOT_FOUND,
                              f"no consular case {case_id[:64]!r} in the read model")
        at = request.reviewed_at.ToDatetime(UTC) if request.HasField("reviewed_at") \
            else datetime.now(UTC)
        decision = consular.APPROVED if request.approve else consular.REJECTED
        try:
            events = consular.review(case, decision, request.reason, call.agency, at, policy)
        except (consular.ReviewRefused, WorkingCalendarError) as exc:
            await call.refuse(grpc.StatusCode.FAILED_PRECONDITION, str(exc),
                              subject=case.retiree_id)
        results = await self.publisher.publish(events)
        failed = [r for r in results if isinstance(r, NotWritten)]
        if failed:
            await call.refuse(grpc.StatusCode.UNAVAILABLE,
                              f"the review was not published ({failed[0].reason}); call "
                              f"again: the same review has the same event ids",
                              subject=case.retiree_id)
        review = events[0]
        call.done("OK", decision, subject=case.retiree_id)
        return pb.ReviewConsularCaseResponse(
            case_id=case.case_id, decision=decision, due_on=review["due_on"].isoformat(),
            overdue=review["overdue"], published=[e["type"] for e in events])


async def _unavailable(call: Call, exc: BaseException) -> NoReturn:
    await call.refuse(grpc.StatusCode.UNAVAILABLE,
                      "the hub's database is unavailable; try again",
                      detail=f"DB_UNAVAILABLE {type(exc).__name__}")
    raise AssertionError("refuse returns only by raising")  # pragma: no cover
