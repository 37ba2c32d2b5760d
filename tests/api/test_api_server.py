"""The partner API end to end: the real server process (``python -m lifecert.api.server``)
over mutual TLS on loopback, against the real Kafka broker and PostgreSQL of the stack
fixture, in a sandbox of its own (PKI, database, topic prefix).

The status and the subscription are fed as in production: the certifications submitted
through the API are read back from the events topic, decided by the production fold (as
the worker does) into outputs and statuses on their topics, and projected into
PostgreSQL by the real projection writer.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from lifecert.api.client import secure_channel
from lifecert.api.lockouts import CLIENT_ADDRESS_HEADER
from lifecert.api.partner import event_id_for
from lifecert.api.protos import common_pb2
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.protos import partner_exchange_pb2_grpc as px_grpc
from lifecert.api.protos import status_query_pb2 as sq
from lifecert.api.protos import status_query_pb2_grpc as sq_grpc
from lifecert.dbroles import API
from lifecert.domain.campaign import Campaign
from lifecert.domain.fold import output_event
from lifecert.domain.policy import load_policy
from lifecert.domain.verdicts import verdict
from lifecert.events.interchange import parse_event
from lifecert.events.time import SHANGHAI
from lifecert.pipeline.credentials import acting_as
from lifecert.pipeline.topics import ASSISTANCE_RESULTS, EVENTS, STATUS
from lifecert.pki import PkiPaths, init, issue
from lifecert_dev.api_sandbox import Sandbox, ServerProcess
from lifecert_dev.testkit.reading import read_events
from projections.writer import run_until_idle
from streams.records import retiree_status
from tests.api.api_world import ID_NUMBERS, POLICY

pytestmark = pytest.mark.stack

OK = px.ItemResult
PERFORMED = dt.datetime(2017, 5, 2, 1, 30, tzinfo=dt.UTC)


def certification(
    cid: str, rid: str, channel: common_pb2.Channel, at: dt.datetime = PERFORMED
) -> px.SubmitItem:
    return px.SubmitItem(certification=px.Certification(
        certification_id=cid, retiree_id=rid, channel=channel, performed_at=at))


def batch(*items: px.SubmitItem) -> px.SubmitBatchRequest:
    return px.SubmitBatchRequest(items=items)


def events_on(box: Sandbox, role: str = EVENTS) -> list[dict[str, Any]]:
    return read_events(box.bootstrap, box.topics[role].name)


def decide_and_project(box: Sandbox) -> None:
    """Do what the worker and the projections do for the sandbox's events topic: decide
    every input with the production fold (in log order per retiree: the topic is keyed
    by retiree id), publish outputs and statuses, project them into PostgreSQL."""
    campaign = Campaign(load_policy(POLICY))
    inputs = sorted(
        (e for e in events_on(box) if e["type"] != "ClockTick"),
        key=lambda e: (e["recorded_at"], e["type"] != "RetireeEnrolled"),
    )
    records: list[tuple[str, dict[str, Any]]] = []
    for event in inputs:
        outputs, rejection = campaign.decide(event)
        judged = verdict(event, rejection, campaign.policy) if rejection is not None else None
        if judged is not None:
            outputs = [*outputs, judged]
        for output in outputs:
            records.append((box.topics.for_type(output["type"]).role, output))
        touched = dict.fromkeys([*(o["retiree_id"] for o in outputs), event["retiree_id"]])
        for rid in touched:
            state = campaign.retirees.get(rid)
            if state is not None:
                # the worker's own status record (streams/records.py)
                records.append((STATUS, retiree_status(POLICY, state, event["recorded_at"],
                                                       event["event_id"])))
    box.publish(records)
    with acting_as("projections"):
        run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)


def expect_error(code: grpc.StatusCode, fn: Any, *args: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, timeout=20)
    error = info.value
    assert error.code() == code, error.details()
    return error


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def macau(server: ServerProcess) -> Iterator[px_grpc.PartnerExchangeStub]:
    with server.channel("MO-SSF", "MACAU_SSF") as channel:
        yield px_grpc.PartnerExchangeStub(channel)


def _visitor(stub: sq_grpc.StatusQueryStub, address: str) -> Any:
    """``stub`` whose GetStatus names ``address`` as the portal's visitor (a public-front
    role must)."""
    class Visitor:
        @staticmethod
        def GetStatus(request: sq.GetStatusRequest, **kw: Any) -> sq.GetStatusResponse:
            return stub.GetStatus(request, metadata=[(CLIENT_ADDRESS_HEADER, address)], **kw)
    return Visitor()


# --------------------------------------------------------------------------- tests


def test_the_server_connects_to_postgresql_as_the_apis_own_role(
        box: Sandbox, server: ServerProcess) -> None:
    """Every session the running server holds is the API's role, named lifecert-api* in
    pg_stat_activity: none is the projections' (whose role may write the read models)."""
    with server.channel("MO-SSF", "MACAU_SSF") as channel:  # the pool is in use by now
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(), timeout=20)
    sessions = box.query(
        "SELECT usename, application_name FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert sessions, "the server holds no PostgreSQL session"
    for role, application in sessions:
        assert (role, application.startswith("lifecert-api")) == (API, True), sessions


def test_health_and_reflection(server: ServerProcess) -> None:
    with server.channel("FS-PORTAL", "PORTAL") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "lifecert.v1.PartnerExchange", "lifecert.v1.StatusQuery"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        [reply] = list(stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
        names = {s.name for s in reply.list_services_response.service}
        assert {"lifecert.v1.PartnerExchange", "lifecert.v1.StatusQuery",
                "grpc.health.v1.Health"} <= names


def test_submit_lands_on_the_events_topic_and_resubmitting_changes_nothing(
    box: Sandbox, macau: px_grpc.PartnerExchangeStub
) -> None:
    request = batch(
        certification("MO-SSF-2017-1", "MO-1", common_pb2.MACAU_SSF),
        certification("MO-SSF-2017-2", "MO-2", common_pb2.MACAU_SSF),
        px.SubmitItem(death=px.DeathReport(retiree_id="MO-3", date_of_death="2017-04-20")),
    )
    first = macau.SubmitBatch(request, timeout=20)
    assert [r.outcome for r in first.results] == [OK.ACCEPTED] * 3
    assert [r.index for r in first.results] == [0, 1, 2]
    before = events_on(box)
    mine = {e["event_id"]: e for e in before if e.get("source_agency") == "MO-SSF"}
    assert set(mine) == {r.event_id for r in first.results}
    cert = mine[event_id_for("MO-SSF", "CertificationRecorded", "MO-SSF-2017-1")]
    assert cert["agency_id"] == "MO-SSF" and cert["channel"] == "MACAU_SSF"
    assert cert["performed_at"] == PERFORMED
    death = mine[first.results[2].event_id]
    assert death["type"] == "DeathRecorded" and death["source"] == "MO-SSF"

    again = macau.SubmitBatch(request, timeout=20)
    assert [r.outcome for r in again.results] == [OK.DUPLICATE] * 3
    assert [r.event_id for r in again.results] == [r.event_id for r in first.results]
    assert [r.recorded_at for r in again.results] == [r.recorded_at for r in first.results]
    assert len(events_on(box)) == len(before)  # no second record on the log


def test_item_results_rejected_duplicate_conflict(
    box: Sandbox, macau: px_grpc.PartnerExchangeStub
) -> None:
    reply = macau.SubmitBatch(batch(
        certification("MO-SSF-X-1", "MO-2", common_pb2.MACAU_SSF),
        certification("MO-SSF-X-1", "MO-2", common_pb2.MACAU_SSF),  # twice in one batch
        certification("MO-SSF-X-2", "NOBODY", common_pb2.MACAU_SSF),
        certification("", "MO-2", common_pb2.MACAU_SSF),
        certification("MO-SSF-X-3", "MO-2", common_pb2.MACAU_SSF,
                      dt.datetime(2099, 1, 1, tzinfo=dt.UTC)),
    ), timeout=20)
    outcomes = [(r.outcome, r.reason_code) for r in reply.results]
    assert outcomes == [
        (OK.ACCEPTED, ""), (OK.DUPLICATE, ""), (OK.REJECTED, "UNKNOWN_RETIREE"),
        (OK.REJECTED, "MALFORMED"), (OK.REJECTED, "MALFORMED"),
    ]
    assert "future" in reply.results[4].reason
    # The same certification id again, about another retiree: not a resubmission.
    conflict = macau.SubmitBatch(batch(
        certification("MO-SSF-X-1", "MO-3", common_pb2.MACAU_SSF)), timeout=20)
    assert conflict.results[0].outcome == OK.REJECTED
    assert conflict.results[0].reason_code == "CONFLICT"
    # The reason names the idempotency key (the certification id) ...
    assert "CertificationRecorded 'MO-SSF-X-1'" in conflict.results[0].reason, \
        conflict.results[0].reason
    # ... and the field that differs from the earlier submission, by name only.
    assert "retiree_id differs" in conflict.results[0].reason, conflict.results[0].reason
    assert "MO-3" not in conflict.results[0].reason
    # ... and, for a conflict inside one batch, the field that differs.
    twice = macau.SubmitBatch(batch(
        certification("MO-SSF-X-4", "MO-2", common_pb2.MACAU_SSF),
        certification("MO-SSF-X-4", "MO-2", common_pb2.MACAU_SSF,
                      PERFORMED - dt.timedelta(hours=1)),
    ), timeout=20)
    assert twice.results[1].reason_code == "CONFLICT"
    assert "by item 0 of this batch" in twice.results[1].reason
    assert "performed_at differ" in twice.results[1].reason, twice.results[1].reason


@pytest.mark.parametrize(
    ("agency", "role", "request_", "reason"),
    [
        ("MO-SSF", "MACAU_SSF", batch(certification("MO-Y-2", "MO-1", common_pb2.COUNTER)),
         "channel COUNTER"),
        ("MO-SSF", "MACAU_SSF", batch(px.SubmitItem(documents_received=px.DocumentsReceived(
            certification_id="MO-Y-3", retiree_id="MO-1", received_at=PERFORMED))),
         "paper forms"),
        ("FS-W01", "COUNTER", batch(certification("W-Y-1", "FS-1", common_pb2.FACE_COUNTER)),
         "channel FACE_COUNTER"),
        ("FS-APP", "APP", batch(certification("APP-Y-1", "FS-1", common_pb2.FACE_APP)),
         "may not call PartnerExchange/SubmitBatch"),
    ],
)
def test_acting_outside_the_role_is_permission_denied(
    box: Sandbox, server: ServerProcess, agency: str, role: str,
    request_: px.SubmitBatchRequest, reason: str,
) -> None:
    before = len(events_on(box))
    with server.channel(agency, role) as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        # A good item in the same batch is not recorded either.
        request = px.SubmitBatchRequest()
        request.CopyFrom(request_)
        error = expect_error(grpc.StatusCode.PERMISSION_DENIED, stub.SubmitBatch, request)
    assert reason in error.details()
    assert len(events_on(box)) == before


def test_batch_refused_whole_when_one_item_is_outside_the_role(
    box: Sandbox, macau: px_grpc.PartnerExchangeStub
) -> None:
    before = len(events_on(box))
    error = expect_error(grpc.StatusCode.PERMISSION_DENIED, macau.SubmitBatch, batch(
        certification("MO-Z-1", "MO-1", common_pb2.MACAU_SSF),
        certification("MO-Z-2", "MO-2", common_pb2.CONSULATE),
    ))
    assert "item 1:" in error.details() and "nothing of this batch" in error.details()
    assert len(events_on(box)) == before


def test_employer_certifies_its_own_retirees(box: Sandbox, server: ServerProcess) -> None:
    with server.channel("UNIT-A", "EMPLOYER") as channel:
        reply = px_grpc.PartnerExchangeStub(channel).SubmitBatch(
            batch(certification("UA-2017-1", "GOV-A1", common_pb2.EMPLOYER_BATCH)), timeout=20)
    assert reply.results[0].outcome == OK.ACCEPTED


def test_no_client_certificate_is_refused(server: ServerProcess) -> None:
    with server.channel(None) as channel:
        stub = sq_grpc.StatusQueryStub(channel)
        expect_error(grpc.StatusCode.UNAVAILABLE, stub.GetStatus,
                     sq.GetStatusRequest(retiree_id="FS-1", second_factor="002X"))


def test_certificate_from_another_ca_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    rogue = PkiPaths(tmp_path / "rogue")
    init(rogue)
    issued = issue(rogue, "FS-PORTAL", role="PORTAL")  # same names, another CA
    with secure_channel(server.target, ca=server.box.pki.ca_cert, cert=issued.cert,
                        key=issued.key) as channel:
        stub = sq_grpc.StatusQueryStub(channel)
        expect_error(grpc.StatusCode.UNAVAILABLE, stub.GetStatus,
                     sq.GetStatusRequest(retiree_id="FS-1", second_factor="002X"))


def test_limits(server: ServerProcess) -> None:
    with server.channel("GZ-POLICE-7", "ASSISTING_AGENCY") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        too_many = batch(*[px.SubmitItem()] * 1001)
        error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.SubmitBatch, too_many)
        assert "at most 1000" in error.details()
        huge = batch(certification("X" * (5 * 1024 * 1024), "FS-1", common_pb2.COUNTER))
        expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, stub.SubmitBatch, huge)
    with server.channel("GZ-POLICE-8", "ASSISTING_AGENCY") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        # The agency's bucket (burst 500, 50/s) is emptied by one large batch.
        reply = stub.SubmitBatch(batch(*[px.SubmitItem()] * 600), timeout=20)
        assert {r.reason_code for r in reply.results} == {"MALFORMED"}
        error = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, stub.SubmitBatch, batch())
        assert "rate limit of agency GZ-POLICE-8" in error.details()


def test_a_batch_refused_for_its_size_is_not_charged_its_items(server: ServerProcess) -> None:
    with server.channel("GZ-POLICE-9", "ASSISTING_AGENCY") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        error = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.SubmitBatch,
                             batch(*[px.SubmitItem()] * 1001))
        assert "at most 1000 items, this one 1001" in error.details()
        # burst 500: had the 1,001 items been taken from the bucket, this would wait
        reply = stub.SubmitBatch(batch(*[px.SubmitItem()] * 450), timeout=20)
        assert len(reply.results) == 450


def _subscribe(
    stub: px_grpc.PartnerExchangeStub, cursor: str = "", types: tuple[str, ...] = ()
) -> tuple[list[px.PartnerEvent], str]:
    """Events until the first checkpoint, and the checkpoint's cursor."""
    events: list[px.PartnerEvent] = []
    stream = stub.Subscribe(px.SubscribeRequest(cursor=cursor, types=types), timeout=30)
    try:
        for message in stream:
            if message.HasField("checkpoint"):
                return events, message.cursor
            events.append(message.event)
    finally:
        stream.cancel()
    raise AssertionError("the subscription ended without a checkpoint")


@pytest.fixture(scope="module")
def decided(box: Sandbox, server: ServerProcess, macau: px_grpc.PartnerExchangeStub) -> None:
    """The certifications of the other tests decided and projected (as live)."""
    macau.SubmitBatch(batch(certification("MO-SSF-2017-1", "MO-1", common_pb2.MACAU_SSF)),
                      timeout=20)
    # Accepted by the API, not counted by the rules: before the window opened (verdicts).
    with server.channel("FS-COUNTER-3", "COUNTER") as channel:
        early = certification("CTR-EARLY-1", "FS-1", common_pb2.COUNTER,
                              dt.datetime(2017, 3, 10, 2, 0, tzinfo=dt.UTC))
        reply = px_grpc.PartnerExchangeStub(channel).SubmitBatch(batch(early), timeout=20)
        assert reply.results[0].outcome == OK.ACCEPTED, reply
    decide_and_project(box)


def test_subscribe_delivers_only_the_partners_events_and_resumes_after_ack(
    box: Sandbox, server: ServerProcess, macau: px_grpc.PartnerExchangeStub, decided: None
) -> None:
    events, cursor = _subscribe(macau)
    assert events, "the Macau SSF receives the statuses of Macau residents"
    assert {e.retiree_id for e in events} <= {"MO-1", "MO-2", "MO-3"}
    assert {"RetireeStatus", "PaymentHoldPlaced", "PaymentHoldReleased",
            "PaymentTerminated"} >= {e.type for e in events}  # no one else's verdict
    for e in events:
        body = json.loads(e.interchange_json)
        assert body["type"] == e.type and body["event_id"] == e.event_id
    # The whole feed (staff) holds other retirees' events too.
    with server.channel("FS-HQ", "STAFF") as channel:
        everything, _ = _subscribe(px_grpc.PartnerExchangeStub(channel))
    assert {e.retiree_id for e in everything} > {e.retiree_id for e in events}
    # Only the types asked for.
    holds, _ = _subscribe(macau, types=("PaymentHoldPlaced",))
    assert holds and {e.type for e in holds} == {"PaymentHoldPlaced"}
    # Acknowledge half-way; an empty cursor resumes after the acknowledged event.
    # (Partitions interleave in any order; within one, the order is the log's.)
    middle = len(events) // 2
    seen: list[str] = []
    stream = macau.Subscribe(px.SubscribeRequest(), timeout=30)
    try:
        for message in stream:
            seen.append(message.event.event_id)
            if len(seen) == middle + 1:
                macau.Acknowledge(px.AcknowledgeRequest(cursor=message.cursor), timeout=10)
                break
    finally:
        stream.cancel()
    rest, end_cursor = _subscribe(macau)
    assert sorted(e.event_id for e in rest) == sorted(
        {e.event_id for e in events} - set(seen))
    assert len(rest) == len(events) - len(seen)
    assert end_cursor == cursor
    # From the end: nothing more.
    assert _subscribe(macau, cursor=cursor)[0] == []
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, macau.Acknowledge,
                 px.AcknowledgeRequest(cursor="c1.bogus"))
    with pytest.raises(grpc.RpcError) as refused:
        next(macau.Subscribe(px.SubscribeRequest(types=["HomeVisitDue"]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "does not receive HomeVisitDue" in refused.value.details()


def test_a_rejection_goes_back_to_the_agency_that_reported_it(
    server: ServerProcess, decided: None
) -> None:
    with server.channel("FS-COUNTER-3", "COUNTER") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        events, _ = _subscribe(stub)
        [rejected] = events
        assert rejected.type == "EventRejected" and rejected.retiree_id == "FS-1"
        body = json.loads(rejected.interchange_json)
        assert body["reason"] == "OUTSIDE_WINDOW"
        assert body["certification_id"] == "CTR-EARLY-1"
        assert body["reported_by"] == "FS-COUNTER-3"
        assert body["judged_event_id"] == event_id_for(
            "FS-COUNTER-3", "CertificationRecorded", "CTR-EARLY-1")
        # The counter's feed is its verdicts only.
        with pytest.raises(grpc.RpcError) as refused:
            next(stub.Subscribe(px.SubscribeRequest(types=["RetireeStatus"]), timeout=10))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Another counter of the same role hears nothing of it; the staff hear every verdict.
    with server.channel("FS-COUNTER-4", "COUNTER") as channel:
        assert _subscribe(px_grpc.PartnerExchangeStub(channel))[0] == []
    with server.channel("FS-HQ", "STAFF") as channel:
        staff, _ = _subscribe(px_grpc.PartnerExchangeStub(channel), types=("EventRejected",))
    # (One run on a machine with 1.4 of its 2 cores taken by stray processes found two
    # more verdicts in this module's campaign, which quiet runs never give: not explained
    # yet. The check is that the staff hear this one; the reasons are shown if not.)
    assert rejected.event_id in {e.event_id for e in staff}, [
        (json.loads(e.interchange_json)["reason"], e.retiree_id) for e in staff]
    assert {e.type for e in staff} == {"EventRejected"}
    # GetStatus tells the retiree why, in both languages.
    with server.channel("FS-PORTAL", "PORTAL") as channel:
        stub_sq = _visitor(sq_grpc.StatusQueryStub(channel), "203.0.113.22")
        fs = stub_sq.GetStatus(sq.GetStatusRequest(retiree_id="FS-1", second_factor="002X"),
                               timeout=10)
    assert fs.status == sq.SUSPENDED
    assert fs.next_step.en.startswith(
        "Your certification of 10 March 2017 did not count: it was done before this year's "
        "certification period opened. Your pension is suspended"), fs.next_step.en
    assert fs.next_step.zh.startswith("您于2017年3月10日办理的认证未被计入"), fs.next_step.zh


def test_status_query_reads_the_projections(server: ServerProcess, decided: None) -> None:
    with server.channel("FS-PORTAL", "PORTAL") as channel:
        stub = _visitor(sq_grpc.StatusQueryStub(channel), "203.0.113.20")
        reply = stub.GetStatus(
            sq.GetStatusRequest(retiree_id="MO-1", second_factor="1234"), timeout=10)
        assert reply.cycle == POLICY
        assert reply.status == sq.CERTIFIED
        assert reply.channel == common_pb2.MACAU_SSF
        # The day the person was seen (performed_at, Asia/Shanghai), not the day the hub
        # received the certification (completed_at).
        assert reply.completed_on == PERFORMED.astimezone(SHANGHAI).date().isoformat()
        received = reply.completed_at.ToDatetime(tzinfo=dt.UTC).astimezone(SHANGHAI)
        assert received.date().isoformat() != reply.completed_on, received  # wall clock
        assert reply.next_step.code == "NOTHING_TO_DO" and reply.next_step.zh
        # A cycle that does not exist is an error naming it, not "no decision yet" (1970).
        no_cycle = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.GetStatus,
                                sq.GetStatusRequest(retiree_id="MO-1", second_factor="1234",
                                                    cycle="foshan-2071"))
        assert "unknown cycle 'foshan-2071'" in no_cycle.details()
        assert POLICY in no_cycle.details()
        # FS-1 never certified: the deadline passed, the hold is open.
        fs = stub.GetStatus(sq.GetStatusRequest(retiree_id="FS-1", second_factor="002x"),
                            timeout=10)
        assert fs.status == sq.SUSPENDED
        assert fs.open_hold.effective_month == "2017-07"
        assert fs.next_step.code == "CERTIFY_TO_RESUME"
        assert "恢复发放" in fs.next_step.zh and "suspended" in fs.next_step.en
        # A wrong second factor and an unknown retiree get the same answer.
        wrong = expect_error(grpc.StatusCode.NOT_FOUND, stub.GetStatus,
                             sq.GetStatusRequest(retiree_id="MO-1", second_factor="4321"))
        unknown = expect_error(grpc.StatusCode.NOT_FOUND, stub.GetStatus,
                               sq.GetStatusRequest(retiree_id="NOBODY", second_factor="4321"))
        assert wrong.details() == unknown.details()
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.GetStatus,
                     sq.GetStatusRequest(retiree_id="MO-1", second_factor="12"))
        # A retiree id outside its pattern (bounds.RETIREE_ID) is bad input, not unknown.
        for bad in ("MO 1", "MO/1", "M" * 33):
            malformed = expect_error(grpc.StatusCode.INVALID_ARGUMENT, stub.GetStatus,
                                     sq.GetStatusRequest(retiree_id=bad, second_factor="1234"))
            assert "not a valid retiree_id" in malformed.details()
    # A partner queries only within its scope.
    with server.channel("MO-SSF", "MACAU_SSF") as channel:
        stub = sq_grpc.StatusQueryStub(channel)
        assert stub.GetStatus(sq.GetStatusRequest(retiree_id="MO-1", second_factor="1234"),
                              timeout=10).status == sq.CERTIFIED
        # Outside it, even with the right second factor: the one NOT_FOUND.
        error = expect_error(grpc.StatusCode.NOT_FOUND, stub.GetStatus,
                             sq.GetStatusRequest(retiree_id="FS-1", second_factor="002X"))
        assert error.details() == wrong.details()


def test_wrong_second_factors_lock_the_retiree_id(server: ServerProcess, decided: None) -> None:
    with server.channel("FS-PORTAL", "PORTAL") as channel:
        stub = _visitor(sq_grpc.StatusQueryStub(channel), "203.0.113.21")
        for _ in range(5):
            expect_error(grpc.StatusCode.NOT_FOUND, stub.GetStatus,
                         sq.GetStatusRequest(retiree_id="FS-2", second_factor="0000"))
        expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, stub.GetStatus,
                     sq.GetStatusRequest(retiree_id="FS-2", second_factor="0000"))


def test_audit_rows_and_no_id_numbers_anywhere(box: Sandbox, server: ServerProcess) -> None:
    # One call of each outcome, made here (earlier tests of the module made more).
    with server.channel("AUDIT-UNIT", "EMPLOYER") as channel:
        exchange = px_grpc.PartnerExchangeStub(channel)
        exchange.SubmitBatch(batch(), timeout=10)
        expect_error(grpc.StatusCode.PERMISSION_DENIED, exchange.SubmitBatch,
                     batch(certification("AU-1", "MO-1", common_pb2.COUNTER)))
        status = sq_grpc.StatusQueryStub(channel)
        expect_error(grpc.StatusCode.NOT_FOUND, status.GetStatus,
                     sq.GetStatusRequest(retiree_id="FS-1", second_factor="9999"))
    expected = {
        ("AUDIT-UNIT", "PartnerExchange/SubmitBatch", "OK"),
        ("AUDIT-UNIT", "PartnerExchange/SubmitBatch", "PERMISSION_DENIED"),
        ("AUDIT-UNIT", "StatusQuery/GetStatus", "NOT_FOUND"),
    }
    deadline = time.monotonic() + 10
    while True:  # the audit writer batches its rows
        rows = box.query("SELECT agency, role, method, outcome, detail, subject FROM api_audit")
        by = {(r[0], r[2], r[3]) for r in rows}
        if expected <= by or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert expected <= by
    subjects = {r[5] for r in rows if r[5]}
    assert subjects and not subjects & {"MO-1", "FS-1", "FS-2"}  # keyed hashes only
    dump = json.dumps(
        [box.query(f"SELECT * FROM {table}") for table in (
            "api_audit", "api_second_factors", "api_accepted_events", "api_retiree_directory",
            "api_subscription_cursors", "api_second_factor_lockouts")],
        default=str,
    )
    log = server.log()
    for id_number in ID_NUMBERS.values():
        for text in (dump, log):
            assert id_number not in text and id_number.lower() not in text
            assert id_number[:-4] not in text


# --------------------------------------------------------------- corrections (rules 12-13)


def revocation(cid: str, rid: str, agency: str = "") -> px.SubmitItem:
    return px.SubmitItem(revocation=px.CertificationRevocation(
        certification_id=cid, retiree_id=rid, agency_id=agency,
        reason=px.CertificationRevocation.MISATTRIBUTED))


def test_a_certification_is_revoked_by_its_agency_or_staff_only(
    box: Sandbox, server: ServerProcess, macau: px_grpc.PartnerExchangeStub
) -> None:
    reply = macau.SubmitBatch(batch(
        certification("MO-REV-1", "MO-2", common_pb2.MACAU_SSF),
        certification("MO-REV-2", "MO-2", common_pb2.MACAU_SSF),
    ), timeout=20)
    assert [r.outcome for r in reply.results] == [OK.ACCEPTED] * 2
    before = len(events_on(box))
    # Another agency of the same role may not revoke MO-SSF's certification.
    with server.channel("MO-SSF-OTHER", "MACAU_SSF") as channel:
        error = expect_error(grpc.StatusCode.PERMISSION_DENIED,
                             px_grpc.PartnerExchangeStub(channel).SubmitBatch,
                             batch(revocation("MO-REV-1", "MO-2", "MO-SSF")))
    assert "may revoke only the certifications its own agency (MO-SSF-OTHER)" in \
        error.details()
    # A role that reports no certifications revokes none, even naming itself.
    with server.channel("FS-PORTAL", "PORTAL") as channel:
        expect_error(grpc.StatusCode.PERMISSION_DENIED,
                     px_grpc.PartnerExchangeStub(channel).SubmitBatch,
                     batch(revocation("MO-REV-1", "MO-2", "MO-SSF")))
    assert len(events_on(box)) == before
    # The agency that reported it may (agency_id empty: its own), and so may staff.
    reply = macau.SubmitBatch(batch(revocation("MO-REV-1", "MO-2")), timeout=20)
    assert reply.results[0].outcome == OK.ACCEPTED
    with server.channel("FS-STAFF", "STAFF") as channel:
        reply = px_grpc.PartnerExchangeStub(channel).SubmitBatch(
            batch(revocation("MO-REV-2", "MO-2", "MO-SSF")), timeout=20)
    assert reply.results[0].outcome == OK.ACCEPTED
    revoked = [e for e in events_on(box) if e["type"] == "CertificationRevoked"]
    assert sorted((e["source_agency"], e["agency_id"], e["certification_id"], e["reason"])
                  for e in revoked) == [
        ("FS-STAFF", "MO-SSF", "MO-REV-2", "MISATTRIBUTED"),
        ("MO-SSF", "MO-SSF", "MO-REV-1", "MISATTRIBUTED"),
    ]


def test_a_death_report_is_retracted_by_staff_only_and_audited(
    box: Sandbox, server: ServerProcess, macau: px_grpc.PartnerExchangeStub
) -> None:
    reason = "家属来电: alive\n\x1b[31mforged line"
    item = px.SubmitItem(retraction=px.DeathReportRetraction(
        retiree_id="MO-3", source="MO-SSF", reason=reason))
    before = len(events_on(box))
    error = expect_error(grpc.StatusCode.PERMISSION_DENIED, macau.SubmitBatch, batch(item))
    assert "may not retract death reports (bureau staff only)" in error.details()
    assert len(events_on(box)) == before
    with server.channel("FS-STAFF", "STAFF") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        reply = stub.SubmitBatch(batch(item), timeout=20)
        assert reply.results[0].outcome == OK.ACCEPTED
        again = stub.SubmitBatch(batch(item), timeout=20)
        assert again.results[0].outcome == OK.DUPLICATE
    [event] = [e for e in events_on(box) if e["type"] == "DeathReportRetracted"]
    assert (event["retiree_id"], event["source"], event["reason"], event["source_agency"]) \
        == ("MO-3", "MO-SSF", reason, "FS-STAFF")
    deadline = time.monotonic() + 10
    while True:  # the audit writer batches its rows
        rows = box.query("SELECT agency, role, method, outcome, detail, subject FROM api_audit "
                         "WHERE outcome = 'DEATH_REPORT_RETRACTED'")
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # One row, for the accepted retraction (not for its duplicate): who, and why escaped.
    [(agency, role, method, _, detail, subject)] = rows
    assert (agency, role, method) == ("FS-STAFF", "STAFF", "PartnerExchange/SubmitBatch")
    assert detail == "source MO-SSF; reason: 家属来电: alive\\n\\x1b[31mforged line"
    assert subject and subject != "MO-3"


def test_a_death_reports_source_is_named_by_staff_only(
    box: Sandbox, server: ServerProcess, macau: px_grpc.PartnerExchangeStub
) -> None:
    """The family's report at a counter: staff record it with source FAMILY_REPORT. A
    partner naming a source (any, even its own words for it) is refused whole; staff naming
    a source that has a door of its own is MALFORMED; without a source a death is the
    caller's."""
    family = px.SubmitItem(death=px.DeathReport(retiree_id="MO-2", date_of_death="2017-04-21",
                                                source="FAMILY_REPORT"))
    before = len(events_on(box))
    for named in ("FAMILY_REPORT", "MO-SSF"):
        item = px.SubmitItem(death=px.DeathReport(retiree_id="MO-2",
                                                  date_of_death="2017-04-21", source=named))
        error = expect_error(grpc.StatusCode.PERMISSION_DENIED, macau.SubmitBatch, batch(
            px.SubmitItem(death=px.DeathReport(retiree_id="MO-1", date_of_death="2017-04-19")),
            item))
        assert "item 1: role MACAU_SSF may not set a death report's source (bureau staff " \
            "only)" in error.details(), error.details()
    with server.channel("COUNTER-CC01", "COUNTER") as channel:
        error = expect_error(grpc.StatusCode.PERMISSION_DENIED,
                             px_grpc.PartnerExchangeStub(channel).SubmitBatch, batch(family))
        assert "role COUNTER may not report deaths" in error.details()
    assert len(events_on(box)) == before, "nothing of a refused batch is recorded"
    with server.channel("FS-STAFF", "STAFF") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        reply = stub.SubmitBatch(batch(
            family, px.SubmitItem(death=px.DeathReport(
                retiree_id="MO-2", date_of_death="2017-04-21", source="HOSPITAL_REPORT"))),
            timeout=20)
        assert [r.outcome for r in reply.results] == [OK.ACCEPTED, OK.REJECTED]
        assert reply.results[1].reason_code == "MALFORMED"
        assert "source 'HOSPITAL_REPORT' is not a source staff may name" in \
            reply.results[1].reason
        again = stub.SubmitBatch(batch(family), timeout=20)
        assert again.results[0].outcome == OK.DUPLICATE
    assert len(events_on(box)) == before + 1
    [event] = [e for e in events_on(box) if e["event_id"] == reply.results[0].event_id]
    assert (event["type"], event["retiree_id"], str(event["date_of_death"]), event["source"],
            event["source_agency"]) == ("DeathRecorded", "MO-2", "2017-04-21", "FAMILY_REPORT",
                                        "FS-STAFF")


def _form3(case: str, beneficiary: str, cid: str, outcome: int = px.Form3Result.CERTIFIED_ALIVE,
           died: str = "", partner: str = "") -> px.SubmitItem:
    return px.SubmitItem(form3_result=px.Form3Result(
        case_id=case, beneficiary_id=beneficiary, certification_id=cid, outcome=outcome,
        method=px.Form3Result.COUNTER, performed_at=PERFORMED, date_of_death=died,
        partner=partner))


def test_a_counter_answers_an_ssf_case_on_the_assistance_topic_only(
    box: Sandbox, server: ServerProcess, macau: px_grpc.PartnerExchangeStub
) -> None:
    """Form 3: SSF's beneficiary living in Foshan certified at a counter. The answer goes to
    the assistance-results topic (posted to SSF by its connector), never to the events
    topic (no payment instruction for a foreign beneficiary); each refusal with its
    reason: a case SSF never sent, a beneficiary other than the case's, a second answer,
    an outcome without its date of death, a role other than COUNTER."""
    requested = {"type": "AssistanceRequested", "event_id": "ssf-req-77",
                 "recorded_at": "2017-04-01T09:00:00+08:00", "source_agency": "MACAU-SSF",
                 "case_id": "FSS-P3-77", "retiree_id": "MO-SSF-77000001",
                 "partner": "MACAU-SSF", "direction": "INBOUND",
                 "requested_at": "2017-04-01T09:00:00+08:00", "due_on": "2017-04-17"}
    other_case = {**requested, "event_id": "ssf-req-78", "case_id": "FSS-P3-78",
                  "retiree_id": "MO-SSF-77000002"}
    box.publish([(ASSISTANCE_RESULTS, parse_event(e, allowed=("AssistanceRequested",)))
                 for e in (requested, other_case)])
    with acting_as("projections"):
        run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)
    events_before = len(events_on(box))
    results_before = len(events_on(box, ASSISTANCE_RESULTS))
    error = expect_error(grpc.StatusCode.PERMISSION_DENIED, macau.SubmitBatch,
                         batch(_form3("FSS-P3-77", "MO-SSF-77000001", "MO-F3-1")))
    assert "may not answer partners' assistance cases (Macau SSF's form 3, Guangdong's " \
        "cases: the bureau's counters only)" in error.details()
    with server.channel("FS-SIB-CC01", "COUNTER") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        reply = stub.SubmitBatch(batch(
            _form3("FSS-P3-77", "MO-SSF-77000001", "FS-F3-1"),
            _form3("FSS-P3-99", "MO-SSF-77000001", "FS-F3-2"),  # no such case
            _form3("FSS-P3-78", "MO-SSF-77000001", "FS-F3-3"),  # another's case
            _form3("FSS-P3-78", "MO-SSF-77000002", "FS-F3-4", px.Form3Result.DECEASED),
            _form3("FSS-P3-78", "MO-SSF-77000002", "FS-F3-5", px.Form3Result.NOT_FOUND,
                   died="2017-04-01"),
            certification("FS-F3-6", "MO-SSF-77000002", common_pb2.COUNTER),
        ), timeout=20)
        outcomes = [(r.outcome, r.reason_code) for r in reply.results]
        assert outcomes == [(OK.ACCEPTED, ""), (OK.REJECTED, "UNKNOWN_CASE"),
                            (OK.REJECTED, "UNKNOWN_CASE"), (OK.REJECTED, "MALFORMED"),
                            (OK.REJECTED, "MALFORMED"), (OK.REJECTED, "UNKNOWN_RETIREE")], \
            [r.reason for r in reply.results]
        assert "Macau SSF has no case 'FSS-P3-99' for beneficiary" in reply.results[1].reason
        assert reply.results[2].reason.replace("78", "99") == reply.results[1].reason, \
            "another beneficiary's case is answered as a missing one"
        assert "date_of_death is missing" in reply.results[3].reason
        assert "goes only with DECEASED" in reply.results[4].reason
        again = stub.SubmitBatch(batch(_form3("FSS-P3-77", "MO-SSF-77000001", "FS-F3-1")),
                                 timeout=20)
        assert again.results[0].outcome == OK.DUPLICATE
        with acting_as("projections"):
            run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)
        other = stub.SubmitBatch(batch(_form3("FSS-P3-77", "MO-SSF-77000001", "FS-F3-9")),
                                 timeout=20)
        assert (other.results[0].outcome, other.results[0].reason_code) == \
            (OK.REJECTED, "ALREADY_ANSWERED")
        assert "answered by certification 'FS-F3-1'" in other.results[0].reason
    assert len(events_on(box)) == events_before, "nothing on the events topic: no payment"
    results = events_on(box, ASSISTANCE_RESULTS)
    assert len(results) == results_before + 1
    [answer] = [e for e in results if e["event_id"] == reply.results[0].event_id]
    assert (answer["type"], answer["case_id"], answer["retiree_id"], answer["partner"],
            answer["agency_id"], answer["outcome"], answer["method"], answer["direction"],
            answer["home_region"]) == (
        "AssistanceResult", "FSS-P3-77", "MO-SSF-77000001", "MACAU-SSF", "FS-SIB-CC01",
        "CERTIFIED_ALIVE", "COUNTER", "INBOUND", "MACAU")


def test_a_counter_answers_a_guangdong_citys_case_with_the_same_item(
    box: Sandbox, server: ServerProcess, macau: px_grpc.PartnerExchangeStub
) -> None:
    """The item answers any partner's INBOUND case: a Guangdong city's retiree living in
    Foshan, its case registered through the provincial system (partner GD-XREGION). Each
    refusal with its reason: a case the province never sent (and SSF's case under the
    province's name), a partner with no cases to answer, a second answer, a role other
    than COUNTER; the same answer again is a DUPLICATE, recorded once."""
    case = {"type": "AssistanceRequested", "event_id": "gd-req-41",
            "recorded_at": "2017-04-01T09:00:00+08:00", "source_agency": "GD-XREGION",
            "case_id": "GDXC-440100-17-000041", "retiree_id": "GZ000000041",
            "partner": "GD-XREGION", "direction": "INBOUND",
            "requested_at": "2017-04-01T09:00:00+08:00", "due_on": "2017-04-17"}
    ssf_case = {**case, "event_id": "ssf-req-41", "source_agency": "MACAU-SSF",
                "partner": "MACAU-SSF", "case_id": "FSS-P3-41"}
    box.publish([(ASSISTANCE_RESULTS, parse_event(e, allowed=("AssistanceRequested",)))
                 for e in (case, ssf_case)])
    with acting_as("projections"):
        run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)
    events_before = len(events_on(box))
    results_before = len(events_on(box, ASSISTANCE_RESULTS))
    gd = "GD-XREGION"
    error = expect_error(grpc.StatusCode.PERMISSION_DENIED, macau.SubmitBatch,
                         batch(_form3("GDXC-440100-17-000041", "GZ000000041", "MO-G-1",
                                      partner=gd)))
    assert "may not answer partners' assistance cases" in error.details()
    with server.channel("FS-SIB-NH02", "COUNTER") as channel:
        stub = px_grpc.PartnerExchangeStub(channel)
        reply = stub.SubmitBatch(batch(
            _form3("GDXC-440100-17-000041", "GZ000000041", "FS-G-1", partner=gd),
            _form3("GDXC-440100-17-000042", "GZ000000041", "FS-G-2", partner=gd),  # none
            _form3("FSS-P3-41", "GZ000000041", "FS-G-3", partner=gd),  # SSF's case
            _form3("GDXC-440100-17-000041", "GZ000000041", "FS-G-4", partner="HK-FTU"),
        ), timeout=20)
        outcomes = [(r.outcome, r.reason_code) for r in reply.results]
        assert outcomes == [(OK.ACCEPTED, ""), (OK.REJECTED, "UNKNOWN_CASE"),
                            (OK.REJECTED, "UNKNOWN_CASE"), (OK.REJECTED, "MALFORMED")], \
            [r.reason for r in reply.results]
        assert "the Guangdong provincial system has no case 'GDXC-440100-17-000042'" in \
            reply.results[1].reason
        assert "partner 'HK-FTU' has no cases the counters answer (one of GD-XREGION, " \
            "MACAU-SSF)" in reply.results[3].reason
        again = stub.SubmitBatch(batch(_form3("GDXC-440100-17-000041", "GZ000000041",
                                              "FS-G-1", partner=gd)), timeout=20)
        assert (again.results[0].outcome, again.results[0].event_id) == \
            (OK.DUPLICATE, reply.results[0].event_id)
        with acting_as("projections"):
            run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)
        other = stub.SubmitBatch(batch(_form3("GDXC-440100-17-000041", "GZ000000041",
                                              "FS-G-9", partner=gd)), timeout=20)
        assert (other.results[0].outcome, other.results[0].reason_code) == \
            (OK.REJECTED, "ALREADY_ANSWERED")
        assert "a second answer is not sent to the Guangdong provincial system" in \
            other.results[0].reason
    assert len(events_on(box)) == events_before, "nothing on the events topic: no payment"
    results = events_on(box, ASSISTANCE_RESULTS)
    assert len(results) == results_before + 1
    [answer] = [e for e in results if e["event_id"] == reply.results[0].event_id]
    assert (answer["type"], answer["case_id"], answer["retiree_id"], answer["partner"],
            answer["agency_id"], answer["direction"], answer["home_region"]) == (
        "AssistanceResult", "GDXC-440100-17-000041", "GZ000000041", "GD-XREGION",
        "FS-SIB-NH02", "INBOUND", "GUANGDONG")


def test_one_retirees_events_keep_log_order_across_fetches(
    box: Sandbox, server: ServerProcess
) -> None:
    """Subscribe takes at most 500 records at a time from what the broker sent, partition
    after partition in an order of the client's: a retiree's two events on two topics may
    come in different takes. In each of the 6 partitions, one retiree has an event on the
    instructions topic and one on the status topic, the first written behind 501 records
    of others (more than a take) in its topic's partition; in half the partitions the
    release is written first, in the other half the status. Whichever partition a take
    drains first, some would come out of order (read topic by topic, or each take sorted
    by itself: this test failed 3 times out of 3 on that); all keep the log's. (Last in
    this module: the other feed tests count events.)"""
    policy = load_policy(POLICY)
    at = dt.datetime(2017, 7, 5, 2, tzinfo=dt.UTC)
    ids = (f"ORD-{i}" for i in itertools.count())
    by_partition: dict[int, list[str]] = {p: [] for p in range(6)}
    while min(len(v) for v in by_partition.values()) < 502:
        rid = next(ids)
        by_partition[_partition(rid.encode())].append(rid)

    def release(rid: str) -> tuple[str, dict[str, Any]]:
        return ("payment_instructions", output_event(
            policy, "PaymentHoldReleased", rid, at, "2017-08", effective_month="2017-08",
            backpay_months=["2017-07"], backpay_amount_fen=300_000))

    def hold(rid: str) -> tuple[str, dict[str, Any]]:
        return ("payment_instructions", output_event(
            policy, "PaymentHoldPlaced", rid, at, "2017-07", effective_month="2017-07",
            reason="NOT_CERTIFIED"))

    def status(rid: str) -> tuple[str, dict[str, Any]]:
        return (STATUS, _status(rid, f"status-{rid}", at))

    fillers, first, then, expected = [], [], [], {}
    for p, (subject, *others) in by_partition.items():
        release_first = p % 2 == 0
        fillers += [hold(r) if release_first else status(r) for r in others[:501]]
        first.append(release(subject) if release_first else status(subject))
        then.append(status(subject) if release_first else release(subject))
        expected[subject] = ["PaymentHoldReleased", "RetireeStatus"][::1 if release_first
                                                                    else -1]
    box.publish([*fillers, *first])
    time.sleep(0.01)  # two decisions: in log time, one after the other (docs/api.md)
    box.publish(then)
    with server.channel("FS-HQ", "STAFF") as channel:
        stream = px_grpc.PartnerExchangeStub(channel).Subscribe(
            px.SubscribeRequest(from_start=True,
                                types=("RetireeStatus", "PaymentHoldReleased",
                                       "PaymentHoldPlaced")), timeout=60)
        seen: list[px.PartnerEvent] = []
        try:
            for message in stream:
                if message.HasField("checkpoint"):
                    break
                seen.append(message.event)
        finally:
            stream.cancel()
    assert len(seen) > 6 * 501  # several takes' worth
    got = {rid: [e.type for e in seen if e.retiree_id == rid] for rid in expected}
    assert got == expected


def _partition(key: bytes, partitions: int = 6) -> int:
    """The partition Kafka's default partitioner gives ``key`` (topics.toml: 6)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _status(retiree_id: str, event_id: str, at: dt.datetime) -> dict[str, Any]:
    return {"type": "RetireeStatus", "event_id": event_id, "recorded_at": at,
            "source_agency": "lifecert", "retiree_id": retiree_id, "policy": POLICY,
            "status": "CERTIFIED", "district": "CHANCHENG", "residence": "FOSHAN",
            "completed_by": "COUNTER", "completed_at": at, "revocations": 0,
            "retractions": 0, "performed_on": at.date()}
