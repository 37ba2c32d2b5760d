"""The payment-ledger sink's mapping: lifecert's payment instructions in the payment
system's terms, and every reason the connector refuses a record before the ledger sees it.
No database here (test_payment_ledger_ledger.py drives the real ledger)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest

from connectors.payment_ledger.connector import (
    KIND_OF,
    Instruction,
    PaymentLedgerSink,
    instruction_of,
    to_instruction,
)
from connectors.sdk.base import SinkRecord
from connectors.sdk.errors import ConfigError, RecordRejected
from lifecert.events import codec
from lifecert_dev.partners.payment_ledger.harness import sample_instructions

AT = datetime(2017, 8, 3, 2, 15, tzinfo=UTC)


def event(type_name: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": type_name, "event_id": "ev-1", "recorded_at": AT,
                            "source_agency": "lifecert", "retiree_id": "FS000001"}
    defaults: dict[str, dict[str, Any]] = {
        "PaymentHoldPlaced": {"effective_month": "2017-07", "reason": "NOT_CERTIFIED"},
        "PaymentHoldReleased": {"effective_month": "2017-09",
                                "backpay_months": ["2017-07", "2017-08"],
                                "backpay_amount_fen": 612_000},
        "PaymentTerminated": {"effective_month": "2017-05", "reason": "DECEASED"},
        "OverpaymentDetected": {"months": ["2017-05", "2017-06"], "amount_fen": 600_000},
        "FraudSuspected": {"certification_id": "C1", "reason": "CERTIFIED_AFTER_DEATH"},
        "PaymentReinstated": {"effective_month": "2017-11", "backpay_months": ["2017-09"],
                              "backpay_amount_fen": 306_000},
        "OverpaymentCancelled": {"months": ["2017-05", "2017-06"], "amount_fen": 600_000},
        "PaymentEstateSettled": {"months": ["2017-07"], "amount_fen": 306_000},
    }
    return {**base, **defaults[type_name], **fields}


def test_hold_is_a_suspension_from_its_month() -> None:
    assert to_instruction(event("PaymentHoldPlaced")) == Instruction(
        "ev-1", "FS000001", "SUSPEND", date(2017, 7, 1), "NOT_CERTIFIED", (), 0, AT)


def test_release_resumes_with_back_pay_for_the_held_months() -> None:
    assert to_instruction(event("PaymentHoldReleased")) == Instruction(
        "ev-1", "FS000001", "RESUME", date(2017, 9, 1), None,
        (date(2017, 7, 1), date(2017, 8, 1)), 612_000, AT)


def test_release_in_june_after_the_deadline_has_no_back_pay() -> None:
    ins = to_instruction(event("PaymentHoldReleased", effective_month="2017-07",
                               backpay_months=[], backpay_amount_fen=0))
    assert (ins.kind, ins.effective, ins.periods, ins.amount_fen) == \
        ("RESUME", date(2017, 7, 1), (), 0)


def test_termination_stops_from_its_month() -> None:
    assert to_instruction(event("PaymentTerminated")) == Instruction(
        "ev-1", "FS000001", "STOP", date(2017, 5, 1), "DECEASED", (), 0, AT)


def test_overpayment_is_recovered_for_its_months() -> None:
    assert to_instruction(event("OverpaymentDetected")) == Instruction(
        "ev-1", "FS000001", "RECOVER", None, None, (date(2017, 5, 1), date(2017, 6, 1)),
        600_000, AT)


def test_the_corrections_map_to_reinstate_cancel_recovery_and_settle_estate() -> None:
    assert to_instruction(event("PaymentReinstated")) == Instruction(
        "ev-1", "FS000001", "REINSTATE", date(2017, 11, 1), None, (date(2017, 9, 1),),
        306_000, AT)
    none = to_instruction(event("PaymentReinstated", backpay_months=[], backpay_amount_fen=0))
    assert (none.kind, none.periods, none.amount_fen) == ("REINSTATE", (), 0)
    assert to_instruction(event("OverpaymentCancelled")) == Instruction(
        "ev-1", "FS000001", "CANCEL_RECOVERY", None, None,
        (date(2017, 5, 1), date(2017, 6, 1)), 600_000, AT)
    assert to_instruction(event("PaymentEstateSettled")) == Instruction(
        "ev-1", "FS000001", "SETTLE_ESTATE", None, None, (date(2017, 7, 1),), 306_000, AT)
    with pytest.raises(RecordRejected) as caught:
        to_instruction(event("PaymentEstateSettled", months=[], amount_fen=0))
    assert "field months is empty" in caught.value.reason


def test_mapping_after_the_codec_round_trip() -> None:
    """What the runner hands the sink is ``codec.decode`` of the record."""
    for type_name in KIND_OF:
        original = event(type_name)
        assert to_instruction(codec.decode(codec.encode(original))) == to_instruction(original)


@pytest.mark.parametrize(("the_event", "words"), [
    (event("FraudSuspected"), "not a payment instruction: a FraudSuspected"),
    (event("PaymentHoldPlaced", retiree_id=""), "field retiree_id is empty"),
    (event("PaymentHoldPlaced", event_id=" "), "field event_id is empty"),
    (event("PaymentHoldPlaced", effective_month="2017-13"),
     "field effective_month is '2017-13', not a month"),
    (event("PaymentTerminated", effective_month="July"), "field effective_month is 'July'"),
    (event("PaymentTerminated", effective_month=None),
     "field effective_month is None, not a month"),
    (event("PaymentTerminated", effective_month=201707),
     "field effective_month is 201707, not a month"),
    (event("PaymentHoldReleased", backpay_months=["2017-07", "2017-7"]),
     "field backpay_months[1] is '2017-7', not a month"),
    (event("PaymentHoldReleased", backpay_months=["2017-08", "2017-07"]),
     "backpay_months[1] 2017-07 does not follow 2017-08"),
    (event("OverpaymentDetected", months=["2017-05", "2017-05"]),
     "months[1] 2017-05 does not follow 2017-05"),
    (event("PaymentHoldReleased", backpay_amount_fen=-1), "backpay_amount_fen is -1"),
    (event("OverpaymentDetected", amount_fen=-500), "amount_fen is -500, not an amount"),
    (event("PaymentHoldReleased", backpay_months=[], backpay_amount_fen=100),
     "back pay of 100 fen (backpay_amount_fen) for no months"),
    (event("OverpaymentDetected", months=[], amount_fen=0), "field months is empty"),
    (event("PaymentHoldPlaced", recorded_at=datetime(2017, 6, 21)),
     "recorded_at is not an aware time"),
])
def test_records_the_ledger_could_not_book_are_refused_with_the_field(
    the_event: dict[str, Any], words: str
) -> None:
    with pytest.raises(RecordRejected) as caught:
        to_instruction(the_event)
    assert words in caught.value.reason


def sink_record(the_event: dict[str, Any], key: bytes | None) -> SinkRecord:
    return SinkRecord("lifecert.payment-instructions", 2, 17, key, b"", the_event)


def test_record_keyed_by_another_retiree_is_refused() -> None:
    with pytest.raises(RecordRejected) as caught:
        instruction_of(sink_record(event("PaymentHoldPlaced"), b"FS000002"))
    assert "record key 'FS000002' is not the retiree id 'FS000001'" in caught.value.reason
    assert instruction_of(sink_record(event("PaymentHoldPlaced"), b"FS000001")).kind == "SUSPEND"
    assert instruction_of(sink_record(event("PaymentHoldPlaced"), None)).kind == "SUSPEND"


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="setting 'dsn' is required"):
        PaymentLedgerSink("pay", {})
    with pytest.raises(ConfigError, match="unknown setting"):
        PaymentLedgerSink("pay", {"dsn": "postgresql://x@h/db", "batch": 3})
    with pytest.raises(ConfigError, match="not a PostgreSQL connection string"):
        PaymentLedgerSink("pay", {"dsn": "host=h dbname"})
    sink = PaymentLedgerSink("pay", {"dsn": "postgresql://x@h/db"})
    assert (sink.consumer, sink.topics) == ("pay", ("payment_instructions",))


def test_sample_instructions_are_deterministic_valid_and_ordered() -> None:
    events = sample_instructions(400, seed=9)
    assert events == sample_instructions(400, seed=9)
    assert len(events) == 400 and len({e["event_id"] for e in events}) == 400
    assert [e["recorded_at"] for e in events] == sorted(e["recorded_at"] for e in events)
    per_retiree: dict[str, list[str]] = defaultdict(list)
    for e in events:
        to_instruction(codec.decode(codec.encode(e)))  # valid for the schema and the sink
        per_retiree[e["retiree_id"]].append(e["type"])
    assert 100 < len(per_retiree) < 400, "several instructions for most retirees"
    shapes = {tuple(types) for types in per_retiree.values()}
    assert ("PaymentHoldPlaced", "PaymentHoldReleased") in shapes
    assert ("PaymentTerminated", "OverpaymentDetected") in shapes
    assert ("PaymentHoldPlaced", "PaymentTerminated", "OverpaymentDetected") in shapes
