"""``lifecert reconcile`` against the real broker and a real ledger fed by the sink running
as ``lifecert connectors run``: equal after a clean run (with redeliveries on the topic),
then every kind of difference, each explained."""

from __future__ import annotations

import argparse
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.payment_ledger.intake import connect
from connectors.sdk.process import ConnectorProcess, InstanceSpec, write_config
from lifecert.commands import reconcile as reconcile_command
from lifecert.events import codec
from lifecert.pipeline import broker_clients
from lifecert.pipeline.topics import DEAD_LETTERS, PAYMENT_INSTRUCTIONS, TopicLayout, layout
from lifecert_dev.partners.payment_ledger.harness import PaymentLedgerHarness, sample_instructions
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import wait_for

pytestmark = pytest.mark.stack

RUNNER = {"batch_size": 50, "retry_initial": 0.1, "retry_max": 0.5, "idle_interval": 0.2}


@dataclass
class World:
    bootstrap: str
    topics: TopicLayout
    ledger: PaymentLedgerHarness
    config: Path
    log: Path

    def publish(self, events: list[dict[str, Any]], garbage: bytes | None = None) -> None:
        producer = broker_clients.producer(self.bootstrap)
        try:
            topic = self.topics[PAYMENT_INSTRUCTIONS].name
            for e in events:
                producer.send(topic, key=e["retiree_id"].encode(), value=codec.encode(e))
            if garbage is not None:
                producer.send(topic, key=b"R-garbage", value=garbage)
            producer.flush(30)
        finally:
            producer.close()

    def dead_letters(self) -> int:
        consumer = broker_clients.consumer(self.bootstrap)
        try:
            return sum(1 for _ in broker_clients.read_to_end(consumer,
                                                            self.topics[DEAD_LETTERS].name))
        finally:
            consumer.close()

    def sink(self) -> ConnectorProcess:
        return ConnectorProcess(self.config, "payments", self.log).start()

    def wait(self, proc: ConnectorProcess, applied: int, dead_letters: int) -> None:
        wait_for(f"{applied} applied and {dead_letters} dead letters",
                 lambda: len(self.ledger.applied()) >= applied
                 and self.dead_letters() >= dead_letters, proc, timeout=60)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        conn = connect(self.ledger._dsn())
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql, params)
        finally:
            conn.close()

    def reconcile(self, *extra: str) -> tuple[int, str]:
        parser = argparse.ArgumentParser(prog="lifecert")
        reconcile_command.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["reconcile", "--bootstrap", self.bootstrap,
                                  "--topic-prefix", self.topics.prefix,
                                  "--ledger-dsn", self.ledger._dsn(), *extra])
        return int(args.func(args)), ""


@pytest.fixture
def world(stack: StackStatus, tmp_path: Path) -> Iterator[World]:
    topics = layout(f"reconcile-{uuid.uuid4().hex[:10]}.")
    with broker_clients.admin_client(stack.kafka_bootstrap) as admin:
        broker_clients.ensure_topics(admin, topics)
    ledger = PaymentLedgerHarness(stack.postgres_dsn)
    settings = ledger.start(tmp_path / "ledger")
    config = write_config(tmp_path / "connectors.toml", bootstrap=stack.kafka_bootstrap,
                          topic_prefix=topics.prefix,
                          instances={"payments": InstanceSpec("payment-ledger", settings,
                                                              RUNNER)})
    try:
        yield World(stack.kafka_bootstrap, topics, ledger, config, tmp_path / "sink.log")
    finally:
        ledger.stop()
        with broker_clients.admin_client(stack.kafka_bootstrap) as admin, \
                contextlib.suppress(Exception):
            admin.delete_topics([spec.name for spec in topics.topics.values()])


def test_reconcile_equal_then_every_difference(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    events = sample_instructions(150, seed=21)
    world.publish(events)
    world.publish(events[:15])  # the worker re-sent some after a crash: same ids
    sink = world.sink()
    try:
        world.wait(sink, applied=150, dead_letters=0)
        check_equal(world, events, capsys)  # while the sink runs: the ledger is read first

        # Refused by the ledger, refused by the connector, undecodable: each dead-lettered.
        suspended = next(e for e in events if e["type"] == "PaymentHoldPlaced"
                         and not any(o["retiree_id"] == e["retiree_id"] and o is not e
                                     for o in events))
        refused = {**suspended, "event_id": "second-hold", "effective_month": "2017-08"}
        fraud = {**suspended, "type": "FraudSuspected", "event_id": "fraud-1",
                 "certification_id": "C1", "reason": "CERTIFIED_AFTER_DEATH"}
        del fraud["effective_month"]
        world.publish([refused, fraud], garbage=b"\xc3\x01garbage")
        world.wait(sink, applied=150, dead_letters=3)
        assert sink.stop() == 0, sink.log_tail()
    finally:
        sink.kill()
    check_differences(world, events, suspended, capsys)


def check_equal(world: World, events: list[dict[str, Any]],
                capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = world.reconcile("--json")
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["differences"]
    assert report["equal"] is True and report["differences"] == []
    assert (report["records"], report["redelivered"]) == (165, 15)
    sent = Counter(e["type"] for e in events)
    for type_name, row in report["types"].items():
        assert row["sent"] == row["applied"] == sent[type_name]
    backpay = sum(e["backpay_amount_fen"] for e in events if e["type"] == "PaymentHoldReleased")
    released = report["types"]["PaymentHoldReleased"]
    assert released["sent_fen"] == released["applied_fen"] == backpay
    assert released["sent_yuan"] == f"{backpay // 100:,}.{backpay % 100:02d}"
    assert "sent_fen" not in report["types"]["PaymentHoldPlaced"]
    assert all(p["ledger_next_offset"] == p["end_offset"] for p in report["partitions"])
    assert world.reconcile()[0] == 0
    assert "equal: every instruction sent is applied once" in capsys.readouterr().out


def check_differences(world: World, events: list[dict[str, Any]],
                      suspended: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    # Sent while the sink is stopped.
    late = {**suspended, "retiree_id": "R-late", "event_id": "late-hold"}
    world.publish([late])
    # The ledger tampered with: an instruction lost, one changed, one never sent.
    release = next(e for e in events if e["type"] == "PaymentHoldReleased"
                   and e["backpay_amount_fen"])
    lost = next(e for e in events if e["type"] == "PaymentTerminated")
    world.execute("DELETE FROM instruction WHERE event_id = %s", (lost["event_id"],))
    world.execute("UPDATE instruction SET backpay_fen = backpay_fen + 1 WHERE event_id = %s",
                  (release["event_id"],))
    world.execute(
        "INSERT INTO instruction (event_id, retiree_id, kind, effective_period, reason_code, "
        "instructed_at, consumer, source_topic, source_partition, source_offset) VALUES "
        "('ghost', 'R-ghost', 'SUSPEND', '2017-07-01', 'NOT_CERTIFIED', now(), 'payments', "
        "%s, 0, 9999)", (world.topics[PAYMENT_INSTRUCTIONS].name,))

    code, _ = world.reconcile("--json")
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["equal"] is False
    by_event = {(d["kind"], d["event_id"] or d["retiree_id"]): d["detail"]
                for d in report["differences"]}
    assert set(by_event) == {
        ("missing_in_ledger", "second-hold"),
        ("missing_in_ledger", "late-hold"),
        ("missing_in_ledger", lost["event_id"]),
        ("content_differs", release["event_id"]),
        ("in_ledger_not_sent", "ghost"),
        ("not_a_payment_instruction", "fraud-1"),
        ("not_a_payment_instruction", "R-garbage"),
        ("account_differs", release["retiree_id"]),
        ("account_differs", lost["retiree_id"]),
        ("account_differs", "R-ghost"),
    }, by_event
    assert "refused, dead letter: connector:payments: payment-ledger refused" in \
        by_event[("missing_in_ledger", "second-hold")]
    assert "ALREADY_SUSPENDED" in by_event[("missing_in_ledger", "second-hold")]
    assert "not consumed yet" in by_event[("missing_in_ledger", "late-hold")]
    assert "consumed (the ledger has read partition" in \
        by_event[("missing_in_ledger", lost["event_id"])]
    assert "neither applied nor dead-lettered" in by_event[("missing_in_ledger",
                                                            lost["event_id"])]
    assert "amount_fen" in by_event[("content_differs", release["event_id"])]
    assert "reconcile-" in by_event[("in_ledger_not_sent", "ghost")]
    assert "holds no such instruction" in by_event[("in_ledger_not_sent", "ghost")]
    assert "not a payment instruction: a FraudSuspected" in \
        by_event[("not_a_payment_instruction", "fraud-1")]
    assert "(dead letter: connector:payments:" in \
        by_event[("not_a_payment_instruction", "fraud-1")]
    assert "cannot be decoded" in by_event[("not_a_payment_instruction", "R-garbage")]
    assert "backpay_due_fen is" in by_event[("account_differs", release["retiree_id"])]
    assert "from its instructions" in by_event[("account_differs", release["retiree_id"])]
    assert by_event[("account_differs", "R-ghost")] == "instructions applied but no account"

    # Without the dead letters (or when the sink stopped between the ledger's commit and
    # its dead letter), the ledger's own record of the refusal explains it.
    assert world.reconcile("--json", "--no-dead-letters")[0] == 1
    details = {d["event_id"]: d["detail"] for d in json.loads(capsys.readouterr().out)[
        "differences"]}
    assert details["second-hold"].startswith(
        "refused by the payment system (ALREADY_SUSPENDED: the account of ")
    assert details["second-hold"].endswith("; no dead letter found")

    assert world.reconcile("--limit", "3")[0] == 1
    text = capsys.readouterr().out
    assert "DIFFERENT: 10 difference(s): account differs 3, content differs 1" in text
    assert "... and 7 more" in text
    assert "partitions the ledger has not read to the end:" in text


def test_reconcile_says_what_is_missing_to_compare(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(reconcile_command.LEDGER_DSN_ENV, raising=False)
    parser = argparse.ArgumentParser(prog="lifecert")
    reconcile_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["reconcile", "--topic-prefix", world.topics.prefix])
    assert args.func(args) == 2
    assert "--ledger-dsn" in capsys.readouterr().err
    not_a_ledger = world.ledger.server_dsn
    args = parser.parse_args(["reconcile", "--bootstrap", world.bootstrap, "--topic-prefix",
                              world.topics.prefix, "--ledger-dsn", not_a_ledger])
    assert args.func(args) == 2
    assert "is it a payment ledger?" in capsys.readouterr().err
    args = parser.parse_args(["reconcile", "--bootstrap", world.bootstrap, "--topic-prefix",
                              "no-such-prefix.", "--ledger-dsn", world.ledger._dsn()])
    assert args.func(args) == 2
    assert "does not exist" in capsys.readouterr().err
