"""ConsularReview over the real server process (issue 13): STAFF lists the consular cases
with their due day and overdue flag, approves one (published: the audit record with the
caller's agency as reviewer, and the CONSULATE certification), and each refusal: another
role, an unknown case, a case missing a check, a rejection without reason."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from lifecert.api.protos import consular_review_pb2 as cr
from lifecert.api.protos import consular_review_pb2_grpc as cr_grpc
from lifecert.events import codec
from lifecert.pipeline import broker_clients
from lifecert.pipeline.credentials import ADMIN, acting_as
from lifecert.pipeline.topics import CONSULAR_CASES, EVENTS
from lifecert_dev.api_sandbox import Sandbox, ServerProcess

pytestmark = pytest.mark.stack

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def cases(box: Sandbox) -> None:
    received = dt.datetime(2017, 4, 12, 9, 0, tzinfo=SHANGHAI)  # due Wed 26 April
    rows = [("LS-API-1", True), ("LS-API-2", False)]
    with box.connect() as conn, conn, conn.cursor() as cur:
        for case_id, permit in rows:
            cur.execute(
                "INSERT INTO consular_cases (case_id, retiree_id, mission_id, mission_kind, "
                "country, passport_checked, residence_permit_checked, face_checked, "
                "performed_at, received_at, event_id, source_topic, source_partition, "
                "source_offset) VALUES (%s, 'AB-1', 'CT-CH-FOR-CN-TUVALU', "
                "'CARETAKER_EMBASSY', 'TV', true, %s, true, %s, %s, %s, 'seed', 0, 0)",
                (case_id, permit, received - dt.timedelta(hours=12), received,
                 f"seed-{case_id}"))


def _stub(server: ServerProcess, agency: str, role: str) -> tuple[grpc.Channel,
                                                                   cr_grpc.ConsularReviewStub]:
    channel = server.channel(agency, role)
    return channel, cr_grpc.ConsularReviewStub(channel)


def test_staff_lists_and_approves_and_the_review_is_published(
        box: Sandbox, server: ServerProcess, cases: None) -> None:
    # the hub runs the 2017 campaign: its statuses are of foshan-2017, the default cycle
    box.seed_statuses([{"retiree_id": "AB-1", "status": "NOT_CERTIFIED", "residence": "ABROAD",
                        "policy": "foshan-2017"}])
    channel, stub = _stub(server, "FS-STAFF", "STAFF")
    with channel:
        listed = stub.ListCases(cr.ListConsularCasesRequest(as_of="2017-04-27"), timeout=30)
        got = {c.case_id: c for c in listed.cases}
        assert {"LS-API-1", "LS-API-2"} <= set(got)
        one = got["LS-API-1"]
        assert (one.due_on, one.overdue, one.mission_kind) == \
            ("2017-04-26", True, "CARETAKER_EMBASSY")
        assert not got["LS-API-2"].residence_permit_checked
        request = cr.ReviewConsularCaseRequest(case_id="LS-API-1", approve=True)
        request.reviewed_at.FromDatetime(dt.datetime(2017, 4, 20, 2, 0))  # UTC
        reply = stub.Review(request, timeout=30)
        assert (reply.decision, reply.due_on, reply.overdue) == ("APPROVED", "2017-04-26", False)
        assert list(reply.published) == ["ConsularCaseReviewed", "CertificationRecorded"]
        with pytest.raises(grpc.RpcError) as refused:
            stub.Review(cr.ReviewConsularCaseRequest(case_id="LS-API-2", approve=True),
                        timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "did not check the residence permit" in refused.value.details()
        with pytest.raises(grpc.RpcError) as refused:
            stub.Review(cr.ReviewConsularCaseRequest(case_id="LS-API-2", approve=False),
                        timeout=30)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "needs its reason" in refused.value.details()
        with pytest.raises(grpc.RpcError) as refused:
            stub.Review(cr.ReviewConsularCaseRequest(case_id="LS-NONE", approve=True),
                        timeout=30)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        # a cycle is a shipped policy's name, never a path the server would read
        for cycle in ("/etc/hosts.toml", "../policies/foshan-2017", "foshan-2099"):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListCases(cr.ListConsularCasesRequest(cycle=cycle), timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "is not a policy of this hub" in refused.value.details()
    with acting_as(ADMIN):
        consumer = broker_clients.consumer(box.bootstrap)
        try:
            reviews = [codec.decode(r.value) for r in broker_clients.read_to_end(
                consumer, box.topics[CONSULAR_CASES].name)]
            certs = [e for e in (codec.decode(r.value) for r in broker_clients.read_to_end(
                consumer, box.topics[EVENTS].name)) if e["type"] == "CertificationRecorded"]
        finally:
            consumer.close()
    assert [(e["case_id"], e["reviewer"], e["decision"]) for e in reviews] == \
        [("LS-API-1", "FS-STAFF", "APPROVED")]
    assert [(e["certification_id"], e["channel"], e["agency_id"]) for e in certs
            if e["certification_id"] == "LS-API-1"] == \
        [("LS-API-1", "CONSULATE", "CT-CH-FOR-CN-TUVALU")]


@pytest.mark.parametrize("role", ["CONSULATE", "COUNTER", "PORTAL"])
def test_only_staff_may_review(server: ServerProcess, cases: None, role: str) -> None:
    channel, stub = _stub(server, f"AG-{role}", role)
    with channel:
        for call in (lambda: stub.ListCases(cr.ListConsularCasesRequest(), timeout=30),
                     lambda: stub.Review(cr.ReviewConsularCaseRequest(
                         case_id="LS-API-1", approve=True), timeout=30)):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, \
                refused.value.details()


def test_the_default_cycle_is_the_policy_the_hub_runs(box: Sandbox, server: ServerProcess,
                                                      cases: None) -> None:
    """Without a cycle, a review is judged by the policy of the statuses the read models
    hold (the worker's), never a year written in the server: once the hub runs 2021, an
    approval also completes the documents (foshan-2021's consular switch). Last in this
    module: it starts the 2021 campaign in the session's read models."""
    received = dt.datetime(2021, 4, 12, 9, 0, tzinfo=SHANGHAI)
    with box.connect() as conn, conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO consular_cases (case_id, retiree_id, mission_id, mission_kind, "
            "country, passport_checked, residence_permit_checked, face_checked, "
            "performed_at, received_at, event_id, source_topic, source_partition, "
            "source_offset) VALUES ('LS-API-2021', 'AB-2', 'CT-CH-FOR-CN-TUVALU', "
            "'CARETAKER_EMBASSY', 'TV', true, true, true, %s, %s, 'seed-2021', 'seed', 0, 0)",
            (received - dt.timedelta(hours=12), received))
    box.seed_statuses([{"retiree_id": "AB-2", "status": "NOT_CERTIFIED", "residence": "ABROAD",
                        "policy": "foshan-2021"}])
    channel, stub = _stub(server, "FS-STAFF", "STAFF")
    with channel:
        listed = stub.ListCases(cr.ListConsularCasesRequest(as_of="2021-04-13"), timeout=30)
        got = {c.case_id: c.due_on for c in listed.cases}
        assert got["LS-API-2021"] == "2021-04-25"  # 2021's calendar: Sunday 25 April worked
        assert got["LS-API-2"] == ""  # a 2017 case is outside 2021's calendar
        reply = stub.Review(cr.ReviewConsularCaseRequest(case_id="LS-API-2021", approve=True),
                            timeout=30)
        assert list(reply.published) == ["ConsularCaseReviewed", "CertificationRecorded",
                                          "CertificationDocumentsReceived"]
        old = stub.ListCases(cr.ListConsularCasesRequest(cycle="foshan-2017",
                                                         as_of="2017-04-27"), timeout=30)
        assert {c.case_id: c.due_on for c in old.cases}["LS-API-2"] == "2017-04-26"
