"""Contact updates through the partner API (issue 14 item 5): a certification item may
carry the phone and address the retiree gave; they become a ContactDetailsUpdated, sealed
on the events topic, projected sealed into the contact read model; a bad phone or address
is refused with its reason (never its value) and the rest of the batch flows on; neither
appears on the server's log, in its tables or in any answer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import psycopg2
import pytest

from lifecert.api.partner import event_id_for
from lifecert.api.protos import common_pb2
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.protos import partner_exchange_pb2_grpc as px_grpc
from lifecert.events.personal import is_sealed, reveal
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline.credentials import acting_as
from lifecert_dev.api_sandbox import Sandbox, ServerProcess
from projections.queries import contact
from projections.writer import run_until_idle
from tests.api.test_api_server import OK, batch, events_on

pytestmark = pytest.mark.stack

PERFORMED = dt.datetime(2017, 5, 2, 1, 30, tzinfo=dt.UTC)
PHONE, ADDRESS = "0757-22338899", "佛山市顺德区大良街道隐私路 18 号"
TEAM = "HV-SHUNDE"


@pytest.fixture(scope="module")
def team(server: ServerProcess) -> Iterator[px_grpc.PartnerExchangeStub]:
    with server.channel(TEAM, "HOME_VISIT") as channel:
        yield px_grpc.PartnerExchangeStub(channel)


def visit(cid: str, rid: str, phone: str = "", address: str = "") -> px.SubmitItem:
    contact = px.ContactDetails(phone=phone, address=address) if phone or address else None
    return px.SubmitItem(certification=px.Certification(
        certification_id=cid, retiree_id=rid, channel=common_pb2.HOME_VISIT,
        performed_at=PERFORMED, contact=contact))


def test_a_contact_update_through_the_api_lands_sealed_in_the_read_model(
        box: Sandbox, server: ServerProcess, team: px_grpc.PartnerExchangeStub) -> None:
    answer = team.SubmitBatch(batch(
        visit("HV-API-1", "HV-1", PHONE, ADDRESS),
        visit("HV-API-2", "HV-1", phone="call 110"),
        visit("HV-API-3", "HV-1", address="x\x1b[2J"),
    ), timeout=20)
    assert [r.outcome for r in answer.results] == [OK.ACCEPTED, OK.REJECTED, OK.REJECTED]
    assert "contact.phone must be digits" in answer.results[1].reason
    assert "contact.address holds control characters" in answer.results[2].reason
    assert "call 110" not in str(answer)

    events = {e["event_id"]: e for e in events_on(box)}
    cert = events[event_id_for(TEAM, "CertificationRecorded", "HV-API-1")]
    assert (cert["channel"], cert["agency_id"]) == ("HOME_VISIT", TEAM)
    [update] = [e for e in events.values() if e["type"] == "ContactDetailsUpdated"
                and e["retiree_id"] == "HV-1"]
    assert (update["retiree_id"], update["channel"], update["agency_id"]) == \
        ("HV-1", "HOME_VISIT", TEAM)
    assert is_sealed(update["phone"]) and is_sealed(update["address"])
    assert event_id_for(TEAM, "CertificationRecorded", "HV-API-2") not in events

    again = team.SubmitBatch(batch(visit("HV-API-1", "HV-1", PHONE, ADDRESS)), timeout=20)
    assert [r.outcome for r in again.results] == [OK.DUPLICATE]
    assert sum(1 for e in events_on(box) if e["type"] == "ContactDetailsUpdated"
               and e["retiree_id"] == "HV-1") == 1

    with acting_as("projections"):
        run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)
    conn = psycopg2.connect(box.dsn)
    try:
        row = contact(conn, "HV-1")
    finally:
        conn.close()
    assert row is not None and (row.channel, row.agency_id) == ("HOME_VISIT", TEAM)
    assert is_sealed(row.phone_sealed) and is_sealed(row.address_sealed)
    keys = open_keystore()
    try:
        opened = {"type": "ContactDetailsUpdated", "retiree_id": "HV-1",
                  "phone": row.phone_sealed, "address": row.address_sealed}
        assert reveal(opened, "phone", keys) == PHONE
        assert reveal(opened, "address", keys) == ADDRESS
    finally:
        keys.close()

    dump = json.dumps([box.query(f"SELECT * FROM {t}") for t in (
        "api_audit", "api_accepted_events", "api_audit_dead_letters")], default=str)
    log = server.log()
    for secret in (PHONE, ADDRESS, "隐私路", "call 110"):
        assert secret not in log and secret not in dump


def test_a_home_visit_team_may_not_record_a_death_through_the_api(
        team: px_grpc.PartnerExchangeStub) -> None:
    """A team's report of a death goes to the review queue (its results file), never
    straight to a DeathRecorded (issue 14 item 4)."""
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        team.SubmitBatch(batch(px.SubmitItem(death=px.DeathReport(
            retiree_id="HV-1", date_of_death="2017-04-20"))), timeout=20)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_new_contact_details_with_a_certification_sent_again_are_recorded(
        box: Sandbox, server: ServerProcess, team: px_grpc.PartnerExchangeStub) -> None:
    """The certification is answered DUPLICATE (no second effect), and the new phone it
    carries is still recorded: one more ContactDetailsUpdated, the read model's latest.
    The same new details sent a third time add nothing."""
    def updates() -> list[dict[str, object]]:
        return [e for e in events_on(box) if e["type"] == "ContactDetailsUpdated"
                and e["retiree_id"] == "HV-1"]

    before = len(updates())
    first = team.SubmitBatch(batch(visit("HV-API-7", "HV-1", PHONE)), timeout=20)
    assert [r.outcome for r in first.results] == [OK.ACCEPTED]
    moved = "0757-66554433"
    for _ in range(2):
        again = team.SubmitBatch(batch(visit("HV-API-7", "HV-1", moved, ADDRESS)), timeout=20)
        assert [r.outcome for r in again.results] == [OK.DUPLICATE]
    now = updates()
    assert len(now) == before + 2 and len({e["event_id"] for e in now}) == len(now)
    assert sum(1 for e in events_on(box) if e["type"] == "CertificationRecorded"
               and e["certification_id"] == "HV-API-7") == 1
    with acting_as("projections"):
        run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)
    conn = psycopg2.connect(box.dsn)
    try:
        row = contact(conn, "HV-1")
    finally:
        conn.close()
    assert row is not None
    keys = open_keystore()
    try:
        opened = {"type": "ContactDetailsUpdated", "retiree_id": "HV-1",
                  "phone": row.phone_sealed, "address": row.address_sealed}
        assert reveal(opened, "phone", keys) == moved
        assert reveal(opened, "address", keys) == ADDRESS
    finally:
        keys.close()
    assert moved not in server.log()
