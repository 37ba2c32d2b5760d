"""The second factor cannot be worn down, nor used to lock people out (issue 11, item 3):
against real server processes (``python -m lifecert.api.server``) over mutual TLS, the
stack fixture's PostgreSQL and Kafka broker, in the session's sandbox.

Every test uses agencies of its own, so that their lockouts and budgets (which bind the
agency that guessed) touch no other test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from lifecert.api import lockouts
from lifecert.api.lockouts import CLIENT_ADDRESS_HEADER
from lifecert.api.protos import common_pb2
from lifecert.api.protos import partner_exchange_pb2 as px
from lifecert.api.protos import partner_exchange_pb2_grpc as px_grpc
from lifecert.api.protos import status_query_pb2 as sq
from lifecert.api.protos import status_query_pb2_grpc as sq_grpc
from lifecert.pipeline.topics import ALERTS
from lifecert_dev.api_sandbox import Sandbox, ServerProcess
from lifecert_dev.testkit.reading import read_events
from projections.writer import run_until_idle
from tests.api.test_api_server import PERFORMED, _subscribe, batch, certification

pytestmark = pytest.mark.stack

OK = px.ItemResult
RIGHT = {"MO-1": "1234", "FS-1": "002X"}  # the second factors of api_world's ID numbers
# Whatever a refusal may say about a retiree an agency may not act for, none of this.
LEAKS = ("FOSHAN", "ABROAD", "HONG_KONG", "GUANGDONG", "OTHER_PROVINCE", "UNIT-B", "UNIT-A",
         "resides", "another unit", "no unit", "managed by", "not known yet")


def status(server: ServerProcess, agency: str, role: str, retiree_id: str, factor: str,
           address: str | None = None) -> tuple[grpc.StatusCode, str]:
    """One status query: (code, details); OK with ''."""
    metadata = [(CLIENT_ADDRESS_HEADER, address)] if address else None
    with server.channel(agency, role) as channel:
        stub = sq_grpc.StatusQueryStub(channel)
        try:
            stub.GetStatus(sq.GetStatusRequest(retiree_id=retiree_id, second_factor=factor),
                           timeout=20, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def guess(server: ServerProcess, agency: str, role: str, retiree_id: str, times: int,
          address: str | None = None) -> None:
    """``times`` wrong second factors, each answered NOT_FOUND."""
    for _ in range(times):
        code, details = status(server, agency, role, retiree_id, "0000", address)
        assert code == grpc.StatusCode.NOT_FOUND, details


def alerts_on(box: Sandbox) -> list[dict[str, Any]]:
    return read_events(box.bootstrap, box.topics[ALERTS].name)


@pytest.fixture(scope="module")
def two(box: Sandbox, server: ServerProcess) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two more server processes on the same database (as behind a load balancer)."""
    first = box.start_server("--no-face")
    second = box.start_server("--no-face")
    yield first, second
    first.stop()
    second.stop()


# --------------------------------------------------------------------------- lockouts


def test_a_lockout_is_shared_by_two_servers_and_survives_a_restart(
    box: Sandbox, two: tuple[ServerProcess, ServerProcess]
) -> None:
    first, second = two
    at = "203.0.113.1"
    guess(first, "LK-PORTAL-1", "PORTAL", "MO-1", 3, address=at)
    guess(second, "LK-PORTAL-1", "PORTAL", "MO-1", 2, address=at)  # 5 in all, 2 processes
    for server in (first, second):
        code, details = status(server, "LK-PORTAL-1", "PORTAL", "MO-1", RIGHT["MO-1"], at)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details  # even the right one
        assert "too many wrong second factors" in details and "minutes" in details
    # A server that starts after the guesses knows of them.
    assert first.stop() == 0
    again = box.start_server("--no-face")
    try:
        code, details = status(again, "LK-PORTAL-1", "PORTAL", "MO-1", RIGHT["MO-1"], at)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
    finally:
        again.stop()
    rows = box.query("SELECT subject, failures, locked_until > now() FROM "
                     "api_second_factor_lockouts WHERE agency = 'LK-PORTAL-1'")
    assert len(rows) == 1 and rows[0][1] == 5 and rows[0][2]
    assert rows[0][0] != "MO-1"  # a keyed hash, as in the audit


def test_one_agencys_guesses_lock_out_neither_another_agency_nor_the_portal(
    server: ServerProcess,
) -> None:
    guess(server, "LK-MO-B", "MACAU_SSF", "MO-1", 5)
    code, _ = status(server, "LK-MO-B", "MACAU_SSF", "MO-1", RIGHT["MO-1"])
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Another agency, and the retiree through the portal, are not locked out.
    assert status(server, "LK-MO-A", "MACAU_SSF", "MO-1", RIGHT["MO-1"])[0] == \
        grpc.StatusCode.OK
    assert status(server, "LK-PORTAL-2", "PORTAL", "MO-1", RIGHT["MO-1"],
                  "203.0.113.2")[0] == grpc.StatusCode.OK


def test_behind_the_portal_a_lockout_binds_the_client_address(server: ServerProcess) -> None:
    guess(server, "LK-PORTAL-3", "PORTAL", "FS-1", 5, address="203.0.113.7")
    code, details = status(server, "LK-PORTAL-3", "PORTAL", "FS-1", RIGHT["FS-1"],
                           address="203.0.113.7")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "from this client address" in details
    # The retiree's own session from another address.
    for address in ("198.51.100.9", "2001:db8:7::1"):
        code, details = status(server, "LK-PORTAL-3", "PORTAL", "FS-1", RIGHT["FS-1"],
                               address=address)
        assert code == grpc.StatusCode.OK, (address, details)
    # One IPv6 subscriber (a /64) is one client: stepping through it does not help.
    guess(server, "LK-PORTAL-3", "PORTAL", "FS-1", 5, address="2001:db8:9:1::1")
    code, _ = status(server, "LK-PORTAL-3", "PORTAL", "FS-1", RIGHT["FS-1"],
                     address="2001:db8:9:1:ffff::2")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A partner may not name an address (it would escape its own lockouts).
    code, details = status(server, "LK-MO-E", "MACAU_SSF", "MO-1", RIGHT["MO-1"],
                           address="203.0.113.7")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert CLIENT_ADDRESS_HEADER in details


def test_a_public_front_must_name_the_client_address(server: ServerProcess) -> None:
    # Without it every visitor's guesses would count against the retiree's own queries
    # through the portal: five wrong ones would lock the retiree out.
    for agency, role in (("LK-PORTAL-4", "PORTAL"), ("LK-APP-4", "APP")):
        code, details = status(server, agency, role, "FS-1", RIGHT["FS-1"])
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert CLIENT_ADDRESS_HEADER in details and f"role {role}" in details
    # Refused before anything was counted: the retiree is not locked out.
    for _ in range(6):
        assert status(server, "LK-PORTAL-4", "PORTAL", "FS-1", "0000")[0] == \
            grpc.StatusCode.INVALID_ARGUMENT
    assert status(server, "LK-PORTAL-4", "PORTAL", "FS-1", RIGHT["FS-1"],
                  "198.51.100.4")[0] == grpc.StatusCode.OK


def test_the_right_factor_clears_the_callers_earlier_wrong_ones(server: ServerProcess,
                                                               box: Sandbox) -> None:
    guess(server, "LK-MO-F", "MACAU_SSF", "MO-1", 4)
    assert status(server, "LK-MO-F", "MACAU_SSF", "MO-1", RIGHT["MO-1"])[0] == \
        grpc.StatusCode.OK
    assert box.query("SELECT 1 FROM api_second_factor_lockouts WHERE agency = 'LK-MO-F'") == []
    guess(server, "LK-MO-F", "MACAU_SSF", "MO-1", 4)  # not locked: the count began again


# --------------------------------------------------------------------------- the budget


def test_the_agency_budget_refuses_and_raises_exactly_one_alert(box: Sandbox) -> None:
    budgeted = box.start_server("--no-face", "--failure-budget", "6")
    try:
        before = [a for a in alerts_on(box) if a["type"] == "SecurityAlert"]
        # Wrong factors for many ids (no lockout of a single id stops it), 12 at once:
        # the budget of 6 is spent by exactly one of them, whatever the interleaving.
        ids = [f"NOBODY-{n}" for n in range(12)]
        box.certificate("LK-HK-1", "HK_AGENCY")  # issued once, before the threads
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(
                lambda rid: status(budgeted, "LK-HK-1", "HK_AGENCY", rid, "0000"), ids))
        codes = [code for code, _ in answers]
        assert codes.count(grpc.StatusCode.NOT_FOUND) >= 6
        # Spent: every further query of this agency is refused, whatever it asks.
        code, details = status(budgeted, "LK-HK-1", "HK_AGENCY", "MO-1", RIGHT["MO-1"])
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "agency LK-HK-1 gave" in details and "budget of 6" in details
        assert "refused for" in details and "alerted" in details
        # Another agency of the same role is not.
        assert status(budgeted, "LK-HK-2", "HK_AGENCY", "NOBODY-0", "0000")[0] == \
            grpc.StatusCode.NOT_FOUND
        alerts = [a for a in alerts_on(box) if a["type"] == "SecurityAlert"
                  and a not in before]
        mine = [a for a in alerts if a["agency"] == "LK-HK-1"]
        assert len(mine) == 1, mine
        [alert] = mine
        assert alert["kind"] == "SECOND_FACTOR_BUDGET_SPENT"
        assert alert["count"] == 6 and alert["limit"] == 6
        assert alert["window_seconds"] == 3600
        assert alert["refused_until"] > alert["window_started"]
        assert "retiree_id" not in alert  # about the agency, never a person
        assert not [a for a in alerts if a["agency"] == "LK-HK-2"]
        # The whole feed reads the alerts topic (for FraudSuspected): it reads past it.
        with budgeted.channel("LK-HQ", "STAFF") as channel:
            feed, _ = _subscribe(px_grpc.PartnerExchangeStub(channel))
        assert "SecurityAlert" not in {e.type for e in feed}
    finally:
        budgeted.stop()
    # Every consumer of the alerts topic reads past it: the projections (no dead letter).
    stats = run_until_idle(box.dsn, box.bootstrap, box.topics, batch_seconds=0.05)
    assert stats.dead_letters == 0


def test_behind_the_portal_the_budget_binds_the_address_and_the_agency_is_only_alerted(
    box: Sandbox,
) -> None:
    # Per address 3 wrong factors, agency-wide alert at 5.
    budgeted = box.start_server("--no-face", "--failure-budget", "3",
                                "--public-failure-budget", "5")
    try:
        before = [a for a in alerts_on(box) if a["type"] == "SecurityAlert"]
        for n in range(3):  # many ids: no lockout of one id stops it
            assert status(budgeted, "LK-PORTAL-B", "PORTAL", f"NOBODY-B{n}", "0000",
                          "203.0.113.50")[0] == grpc.StatusCode.NOT_FOUND
        code, details = status(budgeted, "LK-PORTAL-B", "PORTAL", "MO-1", RIGHT["MO-1"],
                               "203.0.113.50")
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        assert "this client address of agency LK-PORTAL-B" in details
        assert "budget of 3" in details
        # Another visitor is not refused, and the retiree's own query answers.
        assert status(budgeted, "LK-PORTAL-B", "PORTAL", "MO-1", RIGHT["MO-1"],
                      "198.51.100.60")[0] == grpc.StatusCode.OK
        # Agency-wide the 5th wrong factor raises the alert, and refuses nobody.
        for n, address in enumerate(("198.51.100.61", "198.51.100.62", "198.51.100.63",
                                     "198.51.100.64")):
            assert status(budgeted, "LK-PORTAL-B", "PORTAL", f"NOBODY-C{n}", "0000",
                          address)[0] == grpc.StatusCode.NOT_FOUND
        assert status(budgeted, "LK-PORTAL-B", "PORTAL", "FS-1", RIGHT["FS-1"],
                      "198.51.100.65")[0] == grpc.StatusCode.OK
        deadline = time.monotonic() + 20
        while True:
            mine = [a for a in alerts_on(box) if a["type"] == "SecurityAlert"
                    and a not in before and a["agency"] == "LK-PORTAL-B"]
            if mine or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(mine) == 1, mine
        assert mine[0]["count"] == 5 and mine[0]["limit"] == 5
        assert mine[0]["refused_until"] is None  # refuses nobody
        assert box.query("SELECT 1 FROM api_pending_alerts WHERE agency = 'LK-PORTAL-B'") == []
    finally:
        budgeted.stop()


def test_an_alert_the_broker_did_not_take_is_kept_and_published_later(
    box: Sandbox, tmp_path: Path,
) -> None:
    import asyncio

    from lifecert.api.db import Database
    from lifecert.api.publisher import Publisher
    from lifecert.pipeline.topics import layout

    # A sandbox of its own: no server publishes its pending alerts behind the test's back.
    with Sandbox.create(box.admin_dsn, box.bootstrap, tmp_path) as own:
        # A partner's budget of 1 spent: the alert is pending, by the same transaction.
        spent = _failed(own, "LK-DUR-1", 5, 900.0, 1, 3600.0)
        assert spent[5] is True
        pending = "SELECT failures, budget FROM api_pending_alerts WHERE agency = 'LK-DUR-1'"
        assert own.query(pending) == [(1, 1)]
        database = Database(own.dsn, 2)
        # The broker does not take it (its alerts topic does not exist there).
        refusing = Publisher(own.bootstrap, layout("lk-absent."), timeout=2)
        working = Publisher(own.bootstrap, own.topics, timeout=20)
        try:
            assert asyncio.run(lockouts.PendingAlerts(database, refusing.publish).flush()) == 1
            assert own.query(pending) == [(1, 1)]  # kept
            assert alerts_on(own) == []
            # The broker takes it: published once, then no longer pending.
            assert asyncio.run(lockouts.PendingAlerts(database, working.publish).flush()) == 0
            assert asyncio.run(lockouts.PendingAlerts(database, working.publish).flush()) == 0
        finally:
            refusing.close()
            working.close()
            database.close()
        assert own.query(pending) == []
        [alert] = alerts_on(own)
        assert alert["agency"] == "LK-DUR-1" and alert["kind"] == "SECOND_FACTOR_BUDGET_SPENT"
        assert alert["count"] == 1 and alert["limit"] == 1 and alert["refused_until"]


# --------------------------------------------------------------------------- one answer


def test_unknown_out_of_scope_and_wrong_factor_are_one_identical_not_found(
    server: ServerProcess,
) -> None:
    answers = {}
    with server.channel("LK-MO-C", "MACAU_SSF") as channel:
        stub = sq_grpc.StatusQueryStub(channel)
        for case, rid, factor in (
            ("unknown", "NOBODY-C", RIGHT["MO-1"]),
            ("not yours", "FS-1", RIGHT["FS-1"]),  # the right factor, out of scope
            ("wrong factor", "MO-1", "4321"),
        ):
            with pytest.raises(grpc.RpcError) as info:
                stub.GetStatus(sq.GetStatusRequest(retiree_id=rid, second_factor=factor),
                               timeout=20)
            error = info.value
            answers[case] = (error.code(), error.details(), tuple(error.trailing_metadata()))
    assert len(set(answers.values())) == 1, answers
    code, details, _ = answers["unknown"]
    assert code == grpc.StatusCode.NOT_FOUND
    assert not any(word in details for word in LEAKS)


def test_submit_batch_tells_an_agency_nothing_of_retirees_outside_its_scope(
    server: ServerProcess,
) -> None:
    with server.channel("LK-MO-D", "MACAU_SSF") as channel:
        reply = px_grpc.PartnerExchangeStub(channel).SubmitBatch(batch(
            certification("LK-D-1", "FS-1", common_pb2.MACAU_SSF),  # resides in Foshan
            certification("LK-D-2", "AB-1", common_pb2.MACAU_SSF),  # abroad
            certification("LK-D-3", "GOV-B1", common_pb2.MACAU_SSF),  # a unit's
            certification("LK-D-4", "NOBODY-D", common_pb2.MACAU_SSF),  # not enrolled
            certification("LK-D-5", "MO-2", common_pb2.MACAU_SSF),  # its own
            px.SubmitItem(death=px.DeathReport(retiree_id="FS-2", date_of_death="2017-03-01")),
        ), timeout=20)
    results = reply.results
    refused = [results[i] for i in (0, 1, 2, 3, 5)]
    assert {(r.outcome, r.reason_code, r.reason) for r in refused} == {
        (OK.REJECTED, "UNKNOWN_RETIREE", refused[0].reason)}
    assert "residing in MACAU" in refused[0].reason  # its own scope: helpful, no leak
    for r in refused:
        assert not any(word in r.reason for word in LEAKS), r.reason
    assert results[4].outcome == OK.ACCEPTED
    # The employer's scope is its own unit: another unit's retiree, a Foshan resident
    # and an unknown id read alike.
    with server.channel("LK-UNIT-A", "EMPLOYER") as channel:
        reply = px_grpc.PartnerExchangeStub(channel).SubmitBatch(batch(
            certification("LK-UA-1", "GOV-B1", common_pb2.EMPLOYER_BATCH),
            certification("LK-UA-2", "FS-1", common_pb2.EMPLOYER_BATCH),
            certification("LK-UA-3", "NOBODY-UA", common_pb2.EMPLOYER_BATCH),
        ), timeout=20)
    assert len({(r.outcome, r.reason_code, r.reason) for r in reply.results}) == 1
    for r in reply.results:
        assert r.outcome == OK.REJECTED
        assert not any(word in r.reason for word in LEAKS if word != "UNIT-A"), r.reason


def test_a_role_refusal_still_refuses_the_whole_batch_and_names_no_retiree(
    server: ServerProcess,
) -> None:
    with server.channel("LK-MO-G", "MACAU_SSF") as channel, pytest.raises(grpc.RpcError) as info:
        px_grpc.PartnerExchangeStub(channel).SubmitBatch(batch(
            certification("LK-G-1", "MO-3", common_pb2.MACAU_SSF),
            px.SubmitItem(documents_received=px.DocumentsReceived(
                certification_id="LK-G-2", retiree_id="FS-1", received_at=PERFORMED)),
        ), timeout=20)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    details = info.value.details() or ""
    assert "item 1:" in details and "paper forms" in details
    assert not any(word in details for word in LEAKS)


# --------------------------------------------------------------------------- the tables


def _failed(box: Sandbox, agency: str, attempts: int, lock: float, budget: int,
            window: float, subject: str = "S1") -> tuple[Any, ...]:
    [row] = box.query(
        "SELECT * FROM api_second_factor_failed(%s, %s, '', %s, %s, %s, %s, %s)",
        (subject, agency, attempts, lock, budget, window, budget))
    return row


def test_counts_lock_and_budget_start_again_once_their_window_is_over(box: Sandbox) -> None:
    # (key failures, locked until, budget failures, window started, refused until, spent)
    rows = [_failed(box, "LK-T-1", 3, 1.0, 2, 1.0) for _ in range(3)]
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[0][1] is None and rows[1][1] is None and rows[2][1] is not None  # locked
    assert [r[2] for r in rows] == [1, 2, 3]
    assert [r[5] for r in rows] == [False, True, False]  # spent once, by the 2nd
    assert rows[1][4] is not None
    time.sleep(1.3)  # lock and window over: both count from 1 again
    again = _failed(box, "LK-T-1", 3, 1.0, 2, 1.0)
    assert again[0] == 1 and again[1] is None and again[2] == 1 and again[4] is None


def test_purge_deletes_only_what_is_no_longer_in_force(box: Sandbox) -> None:
    box.query(
        "INSERT INTO api_second_factor_lockouts VALUES "
        "('P1', 'LK-P', '', 5, now() - interval '2 hours', now() + interval '1 hour'), "
        "('P2', 'LK-P', '', 5, now() - interval '2 hours', now() - interval '1 hour'), "
        "('P3', 'LK-P', '', 2, now() - interval '1 minute', NULL) RETURNING 1")
    box.query(
        "INSERT INTO api_agency_failure_budgets VALUES "
        "('LK-P-1', 9, now() - interval '3 hours', now() + interval '1 hour'), "
        "('LK-P-2', 9, now() - interval '3 hours', now() - interval '1 hour') RETURNING 1")
    policy = lockouts.Policy(5, 900.0, budget=100, public_budget=2000, window_seconds=3600.0)
    with box.connect() as conn:
        lockouts.purge(conn, policy)
    assert sorted(r[0] for r in box.query(
        "SELECT subject FROM api_second_factor_lockouts WHERE agency = 'LK-P'")) == ["P1", "P3"]
    assert [r[0] for r in box.query(
        "SELECT agency FROM api_agency_failure_budgets WHERE agency LIKE 'LK-P-%%'")] == ["LK-P-1"]
