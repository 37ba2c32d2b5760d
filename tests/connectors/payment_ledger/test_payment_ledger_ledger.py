"""The payment system's ledger (a real PostgreSQL database of the running stack) and the
sink's hooks against it: the simulator's command line, every refusal, duplicates and
stored positions, outages, and a whole replayed campaign applied without a refusal.

The tests share one ledger database (``PaymentLedgerHarness``, dropped after the module),
emptied before each test."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from connectors.payment_ledger.connector import KIND_OF, PaymentLedgerSink
from connectors.payment_ledger.reconcile import read_ledger, recompute_accounts
from connectors.sdk.base import SinkRecord
from connectors.sdk.errors import ConfigError, PartnerUnavailable
from lifecert.commands import reconcile as reconcile_command
from lifecert.events import codec
from lifecert.events.interchange import parse_event
from lifecert.pipeline.broker_clients import partition_for_key
from lifecert.replay import replay_lines
from lifecert_dev.generate import CampaignProfile, iter_campaign
from lifecert_dev.partners.payment_ledger import simulator
from lifecert_dev.partners.payment_ledger.harness import PaymentLedgerHarness, sample_instructions
from lifecert_dev.stack import StackStatus

pytestmark = pytest.mark.stack

TOPIC = "test.payment-instructions"
AT = datetime(2017, 6, 20, 16, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ledger_db(stack: StackStatus,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaymentLedgerHarness]:
    harness = PaymentLedgerHarness(stack.postgres_dsn)
    harness.start(tmp_path_factory.mktemp("ledger"))
    try:
        yield harness
    finally:
        harness.stop()


@pytest.fixture
def ledger(ledger_db: PaymentLedgerHarness) -> PaymentLedgerHarness:
    ledger_db.mend_partner()
    rows(ledger_db._dsn(), "TRUNCATE instruction, account, refusal, intake_position "
         "RESTART IDENTITY; SELECT 1")
    return ledger_db


@pytest.fixture
def sink(ledger: PaymentLedgerHarness) -> Iterator[PaymentLedgerSink]:
    connector = PaymentLedgerSink("test-sink", {"dsn": ledger.dsn})
    try:
        yield connector
    finally:
        connector._close()


class Topic:
    """Records as the runner hands them to the sink: decoded, with growing offsets."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self.ends = [0] * partitions

    def records(self, events: list[dict[str, Any]]) -> list[SinkRecord]:
        out = []
        for e in events:
            key = e["retiree_id"].encode()
            partition = partition_for_key(key, self.partitions)
            value = codec.encode(e)
            out.append(SinkRecord(TOPIC, partition, self.ends[partition], key, value,
                                  codec.decode(value)))
            self.ends[partition] += 1
        return out


def instruction(type_name: str, event_id: str, retiree: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_name, "event_id": event_id, "recorded_at": AT,
            "source_agency": "lifecert", "retiree_id": retiree, **fields}


def hold(event_id: str, retiree: str, month: str = "2017-07") -> dict[str, Any]:
    return instruction("PaymentHoldPlaced", event_id, retiree, effective_month=month,
                       reason="NOT_CERTIFIED")


def release(event_id: str, retiree: str, effective: str, months: list[str],
            fen: int) -> dict[str, Any]:
    return instruction("PaymentHoldReleased", event_id, retiree, effective_month=effective,
                       backpay_months=months, backpay_amount_fen=fen)


def stop(event_id: str, retiree: str, month: str) -> dict[str, Any]:
    return instruction("PaymentTerminated", event_id, retiree, effective_month=month,
                       reason="DECEASED")


def recover(event_id: str, retiree: str, months: list[str], fen: int) -> dict[str, Any]:
    return instruction("OverpaymentDetected", event_id, retiree, months=months, amount_fen=fen)


def reinstate(event_id: str, retiree: str, effective: str, months: list[str],
              fen: int) -> dict[str, Any]:
    return instruction("PaymentReinstated", event_id, retiree, effective_month=effective,
                       backpay_months=months, backpay_amount_fen=fen)


def cancel(event_id: str, retiree: str, months: list[str], fen: int) -> dict[str, Any]:
    return instruction("OverpaymentCancelled", event_id, retiree, months=months,
                       amount_fen=fen)


def estate(event_id: str, retiree: str, months: list[str], fen: int) -> dict[str, Any]:
    return instruction("PaymentEstateSettled", event_id, retiree, months=months,
                       amount_fen=fen)


def rows(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = simulator.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------ command line


def test_simulator_command_line(stack: StackStatus, capsys: pytest.CaptureFixture[str]) -> None:
    dsn = psycopg2.extensions.make_dsn(stack.postgres_dsn,
                                       dbname=f"payledger_cli_{uuid.uuid4().hex[:8]}")
    cmd = [sys.executable, "-m", "lifecert_dev.partners.payment_ledger.simulator"]
    try:
        for _ in range(2):  # idempotent
            done = subprocess.run([*cmd, "init", "--create", "--dsn", dsn], capture_output=True,
                                  text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            assert "payment ledger ready" in done.stderr
        sink = PaymentLedgerSink("cli", {"dsn": dsn})
        events = [hold("h1", "R1"), release("r1", "R1", "2017-09", ["2017-07", "2017-08"],
                                            400_000), hold("h2", "R2"), release("r2", "R1",
                                                                                "2017-10", [], 0)]
        rejected = sink._apply(Topic().records(events))
        sink._close()
        assert [r.event["event_id"] for r, _ in rejected] == ["r2"]

        assert simulator.main(["summary", "--json", "--dsn", dsn]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["instructions"]["SUSPEND"]["count"] == 2
        assert data["instructions"]["RESUME"] == {"count": 1, "backpay_fen": 400_000,
                                                  "overpaid_fen": 0, "periods": 2}
        assert data["accounts"]["PAYING"]["backpay_due_fen"] == 400_000
        assert data["accounts"]["SUSPENDED"]["accounts"] == 1
        assert data["refusals"] == {"NOT_SUSPENDED": 1}
        assert data["positions"] == [{"consumer": "cli", "topic": TOPIC, "partition": 0,
                                      "next_offset": 4}]
        assert simulator.main(["summary", "--dsn", dsn]) == 0
        assert f"{'RESUME':<15} {1:>9} {'4,000.00':>18}" in capsys.readouterr().out
        assert simulator.main(["show", "--retiree", "R1", "--dsn", dsn]) == 0
        shown = capsys.readouterr().out
        assert "account R1: PAYING, suspended from -, resumed from 2017-09" in shown
        assert "RESUME  R1 from 2017-09 back pay [2017-07,2017-08] 4,000.00 yuan" in shown
        assert "NOT_SUSPENDED" in shown
    finally:
        assert simulator.main(["drop", "--dsn", dsn]) == 0
    assert simulator.main(["summary", "--dsn", dsn]) == 1
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------- refusals


def test_every_refusal_of_the_ledger(ledger: PaymentLedgerHarness,
                                     sink: PaymentLedgerSink) -> None:
    topic = Topic()
    good = [hold("h1", "R1"), stop("s1", "R1", "2017-05"), recover("o1", "R1", ["2017-05"], 10),
            hold("h2", "R2"), hold("h3", "R3")]
    assert sink._apply(topic.records(good)) == []
    bad = {
        "CONFLICTING_DUPLICATE": hold("h2", "R2", "2017-08"),
        "ACCOUNT_STOPPED": release("x1", "R1", "2017-07", [], 0),
        "ALREADY_SUSPENDED": hold("x2", "R2"),
        "NOT_SUSPENDED": release("x3", "R4", "2017-08", ["2017-07"], 5),
        "BACKPAY_PERIODS_MISMATCH": release("x4", "R2", "2017-10", ["2017-07", "2017-08"], 5),
        "NOT_STOPPED": recover("x5", "R3", ["2017-07"], 5),
        "NOT_OVERPAID": recover("x6", "R1", ["2017-05", "2017-06"], 5),
    }
    rejected = sink._apply(topic.records(list(bad.values())))
    assert [(r.event["event_id"], reason.split(")")[0]) for r, reason in rejected] == [
        (e["event_id"], f"the payment system refused it ({code}") for code, e in bad.items()]
    reasons = dict(zip(bad, (reason for _, reason in rejected), strict=True))
    assert "suspended from 2017-07: the suspended periods are [2017-07,2017-08,2017-09]" in \
        reasons["BACKPAY_PERIODS_MISMATCH"]
    assert "periods [2017-05] of R1 were not overpaid" in reasons["NOT_OVERPAID"]
    assert "stopped from 2017-05" in reasons["ACCOUNT_STOPPED"]
    assert ledger.applied() == ["h1", "s1", "o1", "h2", "h3"]
    assert sorted(rows(ledger.dsn, "SELECT code FROM refusal")) == sorted((c,) for c in bad)
    accounts = dict(rows(ledger.dsn, "SELECT retiree_id, state FROM account"))
    assert accounts == {"R1": "STOPPED", "R2": "SUSPENDED", "R3": "SUSPENDED"}

    # Suspended at death: the months the suspension kept unpaid are not overpaid either.
    more = [stop("s2", "R2", "2017-05"), recover("x7", "R2", ["2017-06", "2017-07"], 5)]
    rejected = sink._apply(topic.records(more))
    assert [reason.split(":")[0] for _, reason in rejected] == [
        "the payment system refused it (NOT_OVERPAID)"]
    assert "periods [2017-07] of R2 were not overpaid" in rejected[0][1]


# ------------------------------------------------------------- corrections


def test_corrections_apply_once_and_their_refusals(ledger: PaymentLedgerHarness,
                                                  sink: PaymentLedgerSink) -> None:
    """A death retracted after an overpayment (rule 13): the recovery given back, the pension
    re-opened with back pay for the months the stop left unpaid, then held again; the later
    release also pays the months the reinstatement did not. A death while held: the estate
    is paid the held months up to the death (rule 14). Each applied once."""
    topic = Topic()
    good = [
        # R1: paid through 2017-09, died 2017-06 (stop 2017-07), 07-09 recovered; retracted
        # in 2017-10 after the deadline, not certified: reinstated from 2017-11 with no
        # back pay before the hold month, held from 2017-11, released in 2017-12 with
        # back pay for 2017-10 (the month the stop left unpaid) and 11-12.
        stop("s1", "R1", "2017-07"), recover("o1", "R1", ["2017-07", "2017-08", "2017-09"], 30),
        cancel("c1", "R1", ["2017-07", "2017-08", "2017-09"], 30),
        reinstate("r1", "R1", "2017-11", [], 0), hold("h1", "R1", "2017-11"),
        release("l1", "R1", "2018-01", ["2017-10", "2017-11", "2017-12"], 30),
        # R2: held from 2017-07, died 2017-08 reported in 2017-09: estate for 07-08.
        hold("h2", "R2"), stop("s2", "R2", "2017-09"),
        estate("e2", "R2", ["2017-07", "2017-08"], 20),
    ]
    assert sink._apply(topic.records(good)) == []
    assert ledger.applied() == [e["event_id"] for e in good]
    accounts = {r[0]: r[1:] for r in rows(
        ledger.dsn, "SELECT retiree_id, state, recovery_due_fen, backpay_due_fen, "
        "estate_due_fen FROM account")}
    assert accounts == {"R1": ("PAYING", 0, 30, 0), "R2": ("STOPPED", 0, 0, 20)}
    # Again, at later offsets: duplicates by event id, nothing changes.
    assert sink._apply(topic.records(good)) == []
    assert sink.counts["DUPLICATE"] == len(good)

    bad = {
        "NOT_STOPPED": reinstate("x1", "R1", "2018-02", [], 0),
        "NOT_OWED_TO_ESTATE": estate("x2", "R2", ["2017-06"], 10),
        "NOT_RECOVERING": cancel("x3", "R2", ["2017-09"], 10),
        "BACKPAY_PERIODS_MISMATCH": reinstate("x4", "R2", "2017-10", ["2017-07"], 10),
    }
    rejected = sink._apply(topic.records(list(bad.values())))
    assert [reason.split(")")[0] for _, reason in rejected] == [
        f"the payment system refused it ({code}" for code in bad]
    conn = simulator.connect(ledger.dsn)
    try:
        state = read_ledger(conn)
    finally:
        conn.close()
    assert recompute_accounts(state.instructions[e][0] for e in state.order) == state.accounts


# -------------------------------------------------------- duplicates and positions


def test_redelivery_changes_nothing_and_positions_move_with_the_effects(
    ledger: PaymentLedgerHarness, sink: PaymentLedgerSink,
) -> None:
    topic = Topic(partitions=3)
    events = sample_instructions(120, seed=11)
    first = topic.records(events)
    assert sink._apply(first) == []
    assert sink._stored_offsets() == {(TOPIC, p): end for p, end in enumerate(topic.ends) if end}
    accounts_before = rows(ledger.dsn, "SELECT * FROM account ORDER BY retiree_id")

    # The same records again (a runner that re-read them): skipped by position.
    assert sink._apply(first) == []
    assert sink.counts == {"APPLIED": 120, "CONSUMED": 120}
    # The same events at later offsets (a worker that re-sent them): skipped by event id.
    again = topic.records(events)
    assert sink._apply(again) == []
    assert sink.counts == {"APPLIED": 120, "CONSUMED": 120, "DUPLICATE": 120}
    assert sorted(ledger.applied()) == sorted(e["event_id"] for e in events)
    assert rows(ledger.dsn, "SELECT * FROM account ORDER BY retiree_id") == accounts_before
    assert sink._stored_offsets() == {(TOPIC, p): end for p, end in enumerate(topic.ends) if end}
    other = PaymentLedgerSink("other", {"dsn": ledger.dsn})
    assert other._stored_offsets() == {}, "positions are kept per consumer"
    other._close()


def test_instructions_and_positions_commit_together(ledger: PaymentLedgerHarness) -> None:
    """A batch that fails half way leaves neither its instructions nor its positions."""
    batch = [{"n": 0, "event_id": "ok", "retiree_id": "R1", "kind": "SUSPEND",
              "effective": "2017-07-01", "reason": "NOT_CERTIFIED", "periods": [],
              "amount_fen": 0, "instructed_at": AT.isoformat(), "topic": TOPIC,
              "partition": 0, "offset": 0},
             {"n": 1, "event_id": "bad", "retiree_id": "R2", "kind": "SUSPEND",
              "effective": "2017-07-15", "reason": "NOT_CERTIFIED", "periods": [],
              "amount_fen": 0, "instructed_at": AT.isoformat(), "topic": TOPIC,
              "partition": 0, "offset": 1}]
    positions = [{"topic": TOPIC, "partition": 0, "next_offset": 2}]
    conn = simulator.connect(ledger.dsn)
    try:
        with pytest.raises(psycopg2.errors.CheckViolation), conn.cursor() as cur:
            cur.execute("SELECT * FROM apply_instructions('c', %s::jsonb, %s::jsonb)",
                        (json.dumps(batch), json.dumps(positions)))
        conn.rollback()
    finally:
        conn.close()
    assert ledger.applied() == []
    assert rows(ledger.dsn, "SELECT count(*) FROM intake_position") == [(0,)]


# ----------------------------------------------------------------------- outages


def test_ledger_outage_is_partner_unavailable_and_recovered(
    ledger: PaymentLedgerHarness, sink: PaymentLedgerSink,
) -> None:
    topic = Topic()
    assert sink._apply(topic.records([hold("h1", "R1")])) == []
    # Connection lost mid-session (the server ended it).
    rows(ledger.server_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
         "WHERE application_name = 'lifecert-connector/test-sink'")
    pending = topic.records([hold("h2", "R2")])
    with pytest.raises(PartnerUnavailable, match="applying a batch"):
        sink._apply(pending)
    assert sink.conn is None
    # Connections refused.
    ledger.break_partner()
    try:
        with pytest.raises(PartnerUnavailable,
                           match=r"cannot connect.*not currently accepting connections"):
            sink._apply(pending)
        with pytest.raises(PartnerUnavailable, match="cannot connect"):
            sink._stored_offsets()
        assert sink._check()[0].startswith("test-sink: partner system unavailable")
    finally:
        ledger.mend_partner()
    assert sink._apply(pending) == []
    assert ledger.applied() == ["h1", "h2"]
    assert sink._stored_offsets() == {(TOPIC, 0): 2}
    assert sink._check() == []


def test_a_database_that_is_not_a_ledger_is_a_configuration_error(stack: StackStatus) -> None:
    sink = PaymentLedgerSink("x", {"dsn": stack.postgres_dsn})
    with pytest.raises(ConfigError, match=r"is not a payment ledger.*simulator init"):
        sink._open()
    assert "is not a payment ledger" in sink._check()[0]


# ------------------------------------------------------------ a replayed campaign


def test_a_replayed_campaign_is_applied_without_a_refusal(
    ledger: PaymentLedgerHarness, sink: PaymentLedgerSink, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Everything lifecert's rules decide for a generated campaign is a valid sequence for
    the payment system: applied in full, accounts as recomputed from the instructions,
    totals as replay's, `lifecert reconcile --replay-instructions` equal; all of it re-sent
    changes nothing."""
    profile = CampaignProfile(revocation_rate=0.05, clash_rate=0.03, wrong_death_rate=0.03)
    result = replay_lines(iter_campaign(3000, seed=41, profile=profile))
    events = [parse_event(dict(i), allowed=tuple(KIND_OF)) for i in result.instructions
              if i["type"] in KIND_OF]
    kinds = {e["type"] for e in events}
    assert kinds == set(KIND_OF), kinds
    topic = Topic(partitions=6)
    records = topic.records(events)
    for start in range(0, len(records), 500):
        batch = sorted(records[start:start + 500], key=lambda r: (r.partition, r.offset))
        assert sink._apply(batch) == []
    assert sorted(ledger.applied()) == sorted(e["event_id"] for e in events)
    conn = simulator.connect(ledger.dsn)
    try:
        state = read_ledger(conn)
        figures = simulator.summary(conn)
    finally:
        conn.close()
    assert recompute_accounts(state.instructions[e][0] for e in state.order) == state.accounts
    def total(kind: str, name: str) -> int:
        return sum(e[name] for e in events if e["type"] == kind)

    backpay = total("PaymentHoldReleased", "backpay_amount_fen")
    reinstated = total("PaymentReinstated", "backpay_amount_fen")
    overpaid = total("OverpaymentDetected", "amount_fen")
    cancelled = total("OverpaymentCancelled", "amount_fen")
    settled = total("PaymentEstateSettled", "amount_fen")
    assert figures["instructions"]["RESUME"]["backpay_fen"] == backpay > 0
    assert figures["instructions"]["RECOVER"]["overpaid_fen"] == overpaid > 0
    assert figures["instructions"]["REINSTATE"]["backpay_fen"] == reinstated > 0
    assert figures["instructions"]["CANCEL_RECOVERY"]["overpaid_fen"] == cancelled > 0
    assert figures["instructions"]["SETTLE_ESTATE"]["backpay_fen"] == settled > 0
    accounts = figures["accounts"].values()
    assert sum(a["backpay_due_fen"] for a in accounts) == backpay + reinstated
    assert sum(a["recovery_due_fen"] for a in accounts) == overpaid - cancelled
    assert sum(a["estate_due_fen"] for a in accounts) == settled

    assert sink._apply(topic.records(events)) == []
    assert sink.counts == {"APPLIED": len(events), "DUPLICATE": len(events)}

    replayed = tmp_path / "instructions.jsonl"  # as `lifecert replay --out` writes it
    replayed.write_text("".join(json.dumps(i) + "\n" for i in result.instructions))
    assert len(result.instructions) > len(events), "alerts and tasks are in the file too"
    assert reconcile_cli("--replay-instructions", str(replayed), "--ledger-dsn",
                         ledger._dsn()) == 0
    assert "equal: every instruction sent is applied once" in capsys.readouterr().out
    lost = events[len(events) // 2]
    rows(ledger.dsn, "DELETE FROM instruction WHERE event_id = %s RETURNING 1",
         (lost["event_id"],))
    assert reconcile_cli("--replay-instructions", str(replayed), "--ledger-dsn",
                         ledger._dsn(), "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["difference_counts"] == {"missing_in_ledger": 1, "account_differs": 1}
    missing = next(d for d in report["differences"] if d["kind"] == "missing_in_ledger")
    assert (missing["event_id"], missing["detail"]) == (lost["event_id"], "not in the ledger")
    assert missing["line"] == 1 + next(n for n, i in enumerate(result.instructions)
                                       if i.get("event_id") == lost["event_id"])


def reconcile_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lifecert")
    reconcile_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["reconcile", *argv])
    return int(args.func(args))
