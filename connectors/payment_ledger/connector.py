"""The payment system's sink: lifecert's payment instructions applied to its ledger.

Each record of ``lifecert.payment-instructions`` becomes one instruction in the payment
system's terms (:data:`KIND_OF`): PaymentHoldPlaced -> SUSPEND from the effective month,
PaymentHoldReleased -> RESUME from the effective month with back pay for the held months,
PaymentTerminated -> STOP from the effective month, OverpaymentDetected -> RECOVER the
overpaid months. A batch goes to the ledger's intake function in one transaction together
with the offsets it accounts for (``_stored_offsets`` reads them back, so the runner
resumes exactly after the last batch the ledger committed), and the ledger applies each
instruction once by its ``event_id`` (a redelivered record changes nothing).

Refused for good, and dead-lettered by the runner with the reason:
- by this connector, before the ledger sees it: a record that is not a payment instruction
  (another event type), whose key is not its retiree id, or whose months or amounts the
  ledger could not book (a month that is not YYYY-MM, months not in ascending order,
  negative amounts, back pay without months, an overpayment without months);
- by the ledger, on the account's state: see :mod:`connectors.payment_ledger.intake`
  (CONFLICTING_DUPLICATE, ACCOUNT_STOPPED, ALREADY_SUSPENDED, NOT_SUSPENDED,
  BACKPAY_PERIODS_MISMATCH, NOT_STOPPED, NOT_OVERPAID).

Settings: ``dsn`` (the ledger database, as the role the payment system gives this sink,
which needs only to run the intake: ``init --connector-role`` of the simulator shows the
grants; put a password in the environment, ``dsn = { env = "PAYMENT_LEDGER_DSN" }``, or
name a libpq password file, ``passfile=``), ``consumer`` (the name the ledger keeps this
sink's positions under; default: the instance name).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import psycopg2
import psycopg2.extensions

from connectors.payment_ledger.intake import INTAKE_FUNCTION, public_dsn
from connectors.sdk.base import SinkConnector, SinkRecord
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from lifecert.events.time import parse_month

# lifecert's payment instruction -> the payment system's instruction kind.
KIND_OF: dict[str, str] = {
    "PaymentHoldPlaced": "SUSPEND",
    "PaymentHoldReleased": "RESUME",
    "PaymentTerminated": "STOP",
    "OverpaymentDetected": "RECOVER",
    "PaymentReinstated": "REINSTATE",
    "OverpaymentCancelled": "CANCEL_RECOVERY",
    "PaymentEstateSettled": "SETTLE_ESTATE",
}
# Kinds without an effective month, whose periods and amount are ``months``/``amount_fen``.
LISTED_KINDS = frozenset({"RECOVER", "CANCEL_RECOVERY", "SETTLE_ESTATE"})
TYPE_OF: dict[str, str] = {kind: type_name for type_name, kind in KIND_OF.items()}


@dataclass(frozen=True, slots=True)
class Instruction:
    """A payment instruction in the payment system's terms. ``periods`` and
    ``amount_fen`` are the back pay of a RESUME or the overpayment of a RECOVER (empty and
    0 for the other kinds); periods are months, as the date of their first day."""

    event_id: str
    retiree_id: str
    kind: str
    effective: date | None
    reason: str | None
    periods: tuple[date, ...]
    amount_fen: int
    instructed_at: datetime

    @property
    def type_name(self) -> str:
        return TYPE_OF[self.kind]

    def content(self) -> tuple[Any, ...]:
        """What must be equal for two deliveries to be the same instruction."""
        return (self.retiree_id, self.kind, self.effective, self.reason, self.periods,
                self.amount_fen)


def period(month: str) -> date:
    """``"2017-07"`` -> ``date(2017, 7, 1)``; ValueError for anything else."""
    number = parse_month(month)
    return date(number // 12, number % 12 + 1, 1)


def to_instruction(event: Mapping[str, Any]) -> Instruction:
    """The instruction of a decoded payment-instruction event; RecordRejected (naming the
    field and what is wrong) when the ledger could not book it."""
    type_name = event.get("type")
    kind = KIND_OF.get(str(type_name))
    if kind is None:
        raise RecordRejected(
            f"not a payment instruction: a {type_name} event; the payment system takes "
            f"{', '.join(KIND_OF)} only (it was published to the wrong topic)")
    for name in ("event_id", "retiree_id"):
        if not isinstance(event.get(name), str) or not event[name].strip():
            raise RecordRejected(f"{type_name}: field {name} is empty")
    instructed_at = event.get("recorded_at")
    if not isinstance(instructed_at, datetime) or instructed_at.tzinfo is None:
        raise RecordRejected(f"{type_name}: field recorded_at is not an aware time: "
                             f"{instructed_at!r}")
    effective = None if kind in LISTED_KINDS else _month_field(event, "effective_month")
    periods: tuple[date, ...] = ()
    amount = 0
    if kind in ("RESUME", "REINSTATE"):
        periods = _months_field(event, "backpay_months")
        amount = _amount_field(event, "backpay_amount_fen")
        if not periods and amount:
            raise RecordRejected(f"{type_name}: back pay of {amount} fen "
                                 f"(backpay_amount_fen) for no months (backpay_months is empty)")
    elif kind in LISTED_KINDS:
        periods = _months_field(event, "months")
        amount = _amount_field(event, "amount_fen")
        if not periods:
            raise RecordRejected(f"{type_name}: field months is empty; it is for at least "
                                 f"one month")
    reason = event.get("reason") if kind in ("SUSPEND", "STOP") else None
    return Instruction(event["event_id"], event["retiree_id"], kind, effective, reason,
                       periods, amount, instructed_at)


def _month_field(event: Mapping[str, Any], name: str) -> date:
    value = event.get(name)
    try:
        if isinstance(value, str):
            return period(value)
    except ValueError:
        pass
    raise RecordRejected(f"{event['type']}: field {name} is {value!r}, not a month (YYYY-MM)")


def _months_field(event: Mapping[str, Any], name: str) -> tuple[date, ...]:
    value = event.get(name)
    if not isinstance(value, list):
        raise RecordRejected(f"{event['type']}: field {name} is {value!r}, not a list of "
                             f"months")
    out: list[date] = []
    for index, month in enumerate(value):
        try:
            out.append(period(month))
        except (TypeError, ValueError):
            raise RecordRejected(f"{event['type']}: field {name}[{index}] is {month!r}, not "
                                 f"a month (YYYY-MM)") from None
        if len(out) > 1 and out[-1] <= out[-2]:
            raise RecordRejected(f"{event['type']}: field {name}[{index}] {month} does not "
                                 f"follow {value[index - 1]}; months must ascend, each once")
    return tuple(out)


def _amount_field(event: Mapping[str, Any], name: str) -> int:
    value = event.get(name)
    if type(value) is not int or value < 0:
        raise RecordRejected(f"{event['type']}: field {name} is {value!r}, not an amount in "
                             f"fen (an integer >= 0)")
    return value


def instruction_of(record: SinkRecord) -> Instruction:
    """The instruction of a consumed record (see :func:`to_instruction`), whose key must
    be its retiree id: one retiree's instructions keep their order only in one partition."""
    instruction = to_instruction(record.event)
    if record.key is not None and record.key != instruction.retiree_id.encode("utf-8"):
        raise RecordRejected(
            f"record key {record.key.decode('utf-8', 'replace')!r} is not the retiree id "
            f"{instruction.retiree_id!r}: instructions must be keyed by retiree id, or "
            f"those of one retiree may be applied out of order")
    return instruction


def _intake_row(n: int, record: SinkRecord, ins: Instruction) -> dict[str, Any]:
    return {
        "n": n, "event_id": ins.event_id, "retiree_id": ins.retiree_id, "kind": ins.kind,
        "effective": None if ins.effective is None else ins.effective.isoformat(),
        "reason": ins.reason, "periods": [p.isoformat() for p in ins.periods],
        "amount_fen": ins.amount_fen, "instructed_at": ins.instructed_at.isoformat(),
        "topic": record.topic, "partition": record.partition, "offset": record.offset,
    }


class PaymentLedgerSink(SinkConnector):
    kind: ClassVar[str] = "payment-ledger"
    description: ClassVar[str] = (
        "applies payment instructions to the payment system's ledger (PostgreSQL), "
        "exactly once in effect")
    topics: ClassVar[tuple[str, ...]] = ("payment_instructions",)

    def _configure(self, settings: dict[str, Any]) -> None:
        self.dsn: str = self._setting(settings, "dsn", str)
        try:
            psycopg2.extensions.parse_dsn(self.dsn)
        except psycopg2.ProgrammingError:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting 'dsn' is not "
                              f"a PostgreSQL connection string or URI") from None
        self.consumer: str = self._setting(settings, "consumer", str, self.name)
        self.conn: psycopg2.extensions.connection | None = None
        self.counts: dict[str, int] = {}

    # -- connection ---------------------------------------------------------------
    def _unavailable(self, exc: psycopg2.Error, doing: str) -> PartnerUnavailable:
        self._close()
        text = " ".join(str(exc).split()) or type(exc).__name__
        return PartnerUnavailable(f"payment ledger {public_dsn(self.dsn)}: {doing}: {text}")

    def _open(self) -> None:
        if self.conn is not None:
            return
        try:
            conn = psycopg2.connect(
                self.dsn, application_name=f"lifecert-connector/{self.name}",
                connect_timeout=10, keepalives=1, keepalives_idle=10, keepalives_interval=5,
                keepalives_count=3)
        except psycopg2.OperationalError as exc:
            raise self._unavailable(exc, "cannot connect") from exc
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT to_regprocedure(%s) IS NOT NULL", (INTAKE_FUNCTION,))
                row = cur.fetchone()
                assert row is not None  # a SELECT without FROM returns one row
                ready = row[0]
            conn.rollback()
        except psycopg2.OperationalError as exc:
            conn.close()
            raise self._unavailable(exc, "connection lost") from exc
        if not ready:
            conn.close()
            raise ConfigError(
                f"connector {self.name!r} ({self.kind}): {public_dsn(self.dsn)} is not a "
                f"payment ledger (it has no {INTAKE_FUNCTION}); set it up with "
                f"`python -m lifecert_dev.partners.payment_ledger.simulator init --dsn DSN`")
        self.conn = conn

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def _check(self) -> list[str]:
        try:
            self._open()
        except PartnerUnavailable as exc:
            return [f"{self.name}: partner system unavailable: {exc}"]
        except ConfigError as exc:
            return [str(exc)]
        finally:
            self._close()
        return []

    # -- the sink -----------------------------------------------------------------
    def _stored_offsets(self) -> Mapping[tuple[str, int], int]:
        self._open()
        assert self.conn is not None
        try:
            with self.conn.cursor() as cur:
                cur.execute('SELECT topic, "partition", next_offset FROM intake_position '
                            'WHERE consumer = %s', (self.consumer,))
                rows = cur.fetchall()
            self.conn.rollback()
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            raise self._unavailable(exc, "reading the intake positions") from exc
        return {(topic, partition): offset for topic, partition, offset in rows}

    def _apply(self, records: Sequence[SinkRecord]) -> Sequence[tuple[SinkRecord, str]]:
        positions: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            positions[key] = max(positions.get(key, 0), record.offset + 1)
        return self._apply_through(records, positions)

    def _apply_through(
        self, records: Sequence[SinkRecord], next_offsets: Mapping[tuple[str, int], int]
    ) -> Sequence[tuple[SinkRecord, str]]:
        """The batch and ``next_offsets`` (past the runner's own dead letters too) in one
        ledger transaction."""
        rejected: list[tuple[SinkRecord, str]] = []
        batch: list[dict[str, Any]] = []
        sent: list[SinkRecord] = []
        positions = dict(next_offsets)
        for record in records:
            try:
                instruction = instruction_of(record)
            except RecordRejected as exc:
                rejected.append((record, exc.reason))
                continue
            batch.append(_intake_row(len(batch), record, instruction))
            sent.append(record)
        outcomes = self._intake(batch, positions)
        if len(outcomes) != len(sent):
            raise RuntimeError(f"the ledger answered {len(outcomes)} outcomes for "
                               f"{len(sent)} instructions")
        for record, (event_id, outcome, code, detail) in zip(sent, outcomes, strict=True):
            if event_id != record.event.get("event_id"):
                raise RuntimeError(f"the ledger answered for {event_id}, expected "
                                   f"{record.event.get('event_id')}")
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if outcome == "REFUSED":
                rejected.append((record, f"the payment system refused it ({code}): {detail}"))
        rejected.sort(key=lambda item: (item[0].topic, item[0].partition, item[0].offset))
        return rejected

    def _intake(
        self, batch: list[dict[str, Any]], positions: Mapping[tuple[str, int], int]
    ) -> list[tuple[str, str, str | None, str | None]]:
        """One transaction: the batch's instructions and the positions they account for."""
        self._open()
        assert self.conn is not None
        position_rows = [{"topic": t, "partition": p, "next_offset": o}
                         for (t, p), o in sorted(positions.items())]
        try:
            with self.conn.cursor() as cur:
                cur.execute("SELECT event_id, outcome, code, detail "
                            "FROM apply_instructions(%s, %s::jsonb, %s::jsonb)",
                            (self.consumer, json.dumps(batch), json.dumps(position_rows)))
                outcomes = cur.fetchall()
            self.conn.commit()
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            # Also a commit whose outcome is unknown: the retry finds the instructions
            # applied (same event ids) or the positions moved on.
            raise self._unavailable(exc, "applying a batch") from exc
        except psycopg2.Error:
            self.conn.rollback()
            raise
        return outcomes
