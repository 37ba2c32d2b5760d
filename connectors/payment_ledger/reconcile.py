"""Reconciliation: the payment instructions lifecert sent (the topic, read to its end)
against what the payment system's ledger applied, instruction by instruction.

Equal means: every distinct instruction sent (by ``event_id``) is in the ledger once with
the same content, the ledger holds nothing that was not sent, every record on the topic is
a payment instruction, and every account in the ledger is what its own instructions make
of it (recomputed here, independently of the ledger's intake function: an instruction
whose effect was applied twice shows as an account difference even though the instruction
table can hold its id once only).

The ledger is read first (in one snapshot), then the topic: whatever the ledger applied
was sent before, so a sink that runs meanwhile shows as "not consumed yet", never as an
instruction applied without being sent.

The sent side may also be what ``lifecert replay`` decided for the same campaign (its
``instructions.jsonl``; other instruction types in it are not the payment system's): the
end-to-end check that the ledger ends exactly as replay decides.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg2.extensions

from connectors.payment_ledger.connector import KIND_OF, Instruction, to_instruction
from connectors.payment_ledger.intake import OVERPAID_KINDS, connect, public_dsn
from connectors.sdk.errors import RecordRejected
from lifecert.events import codec
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert.pipeline import broker_clients
from lifecert.summary import yuan

MISSING = "missing_in_ledger"
NOT_SENT = "in_ledger_not_sent"
CONTENT = "content_differs"
SENT_CONFLICT = "sent_twice_differently"
NOT_INSTRUCTION = "not_a_payment_instruction"
ACCOUNT = "account_differs"

# Instruction types with an amount: the field summed in the per-type totals.
AMOUNT_OF = {"PaymentHoldReleased": "back pay", "OverpaymentDetected": "overpaid",
             "PaymentReinstated": "back pay", "OverpaymentCancelled": "given back",
             "PaymentEstateSettled": "to the estate"}


@dataclass(frozen=True)
class Where:
    """A record's place: partition and offset on a topic, or (partition None) the line of
    a file."""

    partition: int | None
    offset: int

    def __str__(self) -> str:
        if self.partition is None:
            return f"line {self.offset}"
        return f"partition {self.partition} offset {self.offset}"


@dataclass
class Difference:
    kind: str
    event_id: str | None
    retiree_id: str | None
    type: str | None
    detail: str
    partition: int | None = None
    offset: int | None = None
    line: int | None = None

    @classmethod
    def at(cls, where: Where | None, kind: str, event_id: str | None, retiree_id: str | None,
           type_name: str | None, detail: str) -> Difference:
        diff = cls(kind, event_id, retiree_id, type_name, detail)
        if where is not None and where.partition is None:
            diff.line = where.offset
        elif where is not None:
            diff.partition, diff.offset = where.partition, where.offset
        return diff

    @property
    def where(self) -> Where | None:
        if self.line is not None:
            return Where(None, self.line)
        if self.offset is not None:
            return Where(self.partition, self.offset)
        return None

    def describe(self) -> str:
        parts = [x for x in (self.type, self.event_id) if x]
        if self.retiree_id:
            parts.append(f"retiree {self.retiree_id}")
        if self.where is not None:
            parts.append(f"({self.where})")
        return f"{self.kind.replace('_', ' ')}: {' '.join(parts)}: {self.detail}"


@dataclass
class TypeTotals:
    sent: int = 0
    applied: int = 0
    sent_fen: int = 0
    applied_fen: int = 0


@dataclass
class Report:
    source: str  # where the sent instructions were read: a topic, or replay's file
    ledger: str
    types: dict[str, TypeTotals]
    records: int               # records read from the source (payment instructions or not)
    redelivered: int
    positions: dict[int, int]  # partition -> the ledger's next offset (furthest consumer)
    ends: dict[int, int]       # partition -> end offset of the topic when read
    differences: list[Difference] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        types = {}
        for name, totals in self.types.items():
            row: dict[str, Any] = asdict(totals)
            if name in AMOUNT_OF:
                row["sent_yuan"], row["applied_yuan"] = yuan(totals.sent_fen), \
                    yuan(totals.applied_fen)
            else:
                del row["sent_fen"], row["applied_fen"]
            types[name] = row
        return {
            "equal": self.equal,
            "source": self.source,
            "ledger": self.ledger,
            "records": self.records,
            "redelivered": self.redelivered,
            "types": types,
            "partitions": [
                {"partition": p, "end_offset": self.ends[p],
                 "ledger_next_offset": self.positions.get(p)} for p in sorted(self.ends)],
            "differences": [asdict(d) for d in self.differences],
            "difference_counts": dict(Counter(d.kind for d in self.differences)),
        }


# ------------------------------------------------------------------------ reading


@dataclass
class Ledger:
    instructions: dict[str, tuple[Instruction, str, Where]]  # event_id -> (it, topic, where)
    accounts: dict[str, dict[str, Any]]
    positions: dict[tuple[str, int], int]
    order: list[str]  # event ids in order of application
    refusals: dict[str, str] = field(default_factory=dict)  # event_id -> code: detail


_INSTRUCTIONS = """
SELECT event_id, retiree_id, kind, effective_period, reason_code, backpay_periods,
       backpay_fen, overpaid_periods, overpaid_fen, instructed_at, source_topic,
       source_partition, source_offset
  FROM instruction ORDER BY seq"""
_ACCOUNTS = """
SELECT retiree_id, state, suspended_from, resumed_from, stopped_from, backpay_due_fen,
       backpay_periods, recovery_due_fen, recovery_periods, instructions, last_event_id,
       estate_due_fen, estate_periods, owed_from, reinstated_periods
  FROM account"""
ACCOUNT_FIELDS = ("state", "suspended_from", "resumed_from", "stopped_from",
                  "backpay_due_fen", "backpay_periods", "recovery_due_fen",
                  "recovery_periods", "instructions", "last_event_id", "estate_due_fen",
                  "estate_periods", "owed_from", "reinstated_periods")
_PERIOD_LISTS = ("recovery_periods", "estate_periods", "reinstated_periods")


def read_ledger(conn: psycopg2.extensions.connection) -> Ledger:
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    try:
        with conn.cursor() as cur:
            cur.execute(_INSTRUCTIONS)
            instructions: dict[str, tuple[Instruction, str, Where]] = {}
            order = []
            for (event_id, retiree, kind, effective, reason, bp, bf, op, of, at, topic,
                 partition, offset) in cur:
                recover = kind in OVERPAID_KINDS
                instructions[event_id] = (
                    Instruction(event_id, retiree, kind, effective, reason,
                                tuple(op if recover else bp), of if recover else bf, at),
                    topic, Where(partition, offset))
                order.append(event_id)
            cur.execute(_ACCOUNTS)
            accounts = {}
            for row in cur:
                values = dict(zip(ACCOUNT_FIELDS, row[1:], strict=True))
                for name in _PERIOD_LISTS:
                    values[name] = tuple(values[name])
                accounts[row[0]] = values
            cur.execute('SELECT topic, "partition", max(next_offset) FROM intake_position '
                        'GROUP BY 1, 2')
            positions = {(t, p): o for t, p, o in cur.fetchall()}
            cur.execute("SELECT event_id, code, detail FROM refusal")
            refusals = {e: f"{code}: {detail}" for e, code, detail in cur.fetchall()}
    finally:
        conn.rollback()
    return Ledger(instructions, accounts, positions, order, refusals)


@dataclass
class Sent:
    instructions: dict[str, tuple[Instruction, Where]] = field(default_factory=dict)
    records: int = 0
    redelivered: int = 0
    ends: dict[int, int] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)


    def add(self, instruction: Instruction, where: Where) -> None:
        earlier = self.instructions.get(instruction.event_id)
        if earlier is None:
            self.instructions[instruction.event_id] = (instruction, where)
        elif _fields_differ(earlier[0], instruction):
            self.differences.append(Difference.at(
                where, SENT_CONFLICT, instruction.event_id, instruction.retiree_id,
                instruction.type_name, f"first sent at {earlier[1]}, again with other "
                f"content: {_fields_differ(earlier[0], instruction)}"))
        else:
            self.redelivered += 1


def read_sent(client: Any, topic: str, timeout: float) -> Sent:
    sent = Sent(ends=broker_clients.end_offsets(client, topic))
    for record in broker_clients.read_to_end(client, topic, timeout=timeout):
        sent.records += 1
        where = Where(record.partition, record.offset)
        try:
            event = codec.decode(record.value or b"")
            instruction = to_instruction(event)
        except codec.CodecError as exc:
            sent.differences.append(Difference.at(
                where, NOT_INSTRUCTION, None, _key(record.key), None,
                f"cannot be decoded: {exc}"))
            continue
        except RecordRejected as exc:
            sent.differences.append(Difference.at(
                where, NOT_INSTRUCTION, event.get("event_id"), event.get("retiree_id"),
                event.get("type"), exc.reason))
            continue
        sent.add(instruction, where)
    return sent


def read_replay(path: Path) -> Sent:
    """The payment instructions of replay's ``instructions.jsonl`` (its alerts and tasks
    are skipped: they are not sent to the payment system)."""
    sent = Sent()
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            where = Where(None, number)
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict) or obj.get("type") not in KIND_OF:
                    continue
                sent.records += 1
                instruction = to_instruction(parse_event(obj, allowed=tuple(KIND_OF)))
            except ValueError as exc:  # JSON, and MalformedEvent
                text = exc.describe() if isinstance(exc, MalformedEvent) else str(exc)
                sent.differences.append(Difference.at(
                    where, NOT_INSTRUCTION, None, None, None, f"{path}: {text}"))
                continue
            except RecordRejected as exc:
                sent.differences.append(Difference.at(
                    where, NOT_INSTRUCTION, obj.get("event_id"), obj.get("retiree_id"),
                    obj.get("type"), exc.reason))
                continue
            sent.add(instruction, where)
    return sent


def read_dead_letters(client: Any, topic: str, source_topic: str,
                      timeout: float) -> dict[Where, str]:
    """Reasons of the dead letters of records of ``source_topic``, by position."""
    out: dict[Where, str] = {}
    for record in broker_clients.read_to_end(client, topic, timeout=timeout):
        try:
            letter = codec.decode(record.value or b"")
        except codec.CodecError:
            continue
        if letter.get("source_topic") == source_topic and letter.get("source_offset") \
                is not None:
            where = Where(letter["source_partition"], letter["source_offset"])
            out[where] = f"{letter['stage']}: {letter['reason']}"
    return out


def _key(key: bytes | None) -> str | None:
    return None if key is None else key.decode("utf-8", "replace")


# -------------------------------------------------------------------- comparison


def _show(value: Any) -> str:
    if isinstance(value, date):
        return value.strftime("%Y-%m") if value.day == 1 else value.isoformat()
    if isinstance(value, tuple | list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return "-" if value is None else str(value)


def _fields_differ(a: Instruction, b: Instruction) -> str:
    names = ("retiree_id", "kind", "effective", "reason", "periods", "amount_fen",
             "instructed_at")
    return "; ".join(f"{name} {_show(getattr(a, name))} vs {_show(getattr(b, name))}"
                     for name in names if getattr(a, name) != getattr(b, name))


def recompute_accounts(instructions: Iterable[Instruction]) -> dict[str, dict[str, Any]]:
    """The accounts the payment system's rules make of applied instructions (in order of
    application), as the ledger's ``account`` table should hold them."""
    accounts: dict[str, dict[str, Any]] = {}
    for ins in instructions:
        a = accounts.setdefault(ins.retiree_id, {
            "state": "PAYING", "suspended_from": None, "resumed_from": None,
            "stopped_from": None, "backpay_due_fen": 0, "backpay_periods": 0,
            "recovery_due_fen": 0, "recovery_periods": (), "instructions": 0,
            "last_event_id": None, "estate_due_fen": 0, "estate_periods": (),
            "owed_from": None, "reinstated_periods": ()})
        if ins.kind == "SUSPEND":
            a["state"], a["suspended_from"] = "SUSPENDED", ins.effective
        elif ins.kind == "RESUME":
            a["state"], a["suspended_from"], a["resumed_from"] = "PAYING", None, ins.effective
            a["owed_from"] = None
            a["backpay_due_fen"] += ins.amount_fen
            a["backpay_periods"] += len(ins.periods)
        elif ins.kind == "STOP":
            a["state"], a["stopped_from"] = "STOPPED", ins.effective
        elif ins.kind == "REINSTATE":
            unpaid_from = a["suspended_from"] or a["stopped_from"]
            a["owed_from"] = min(d for d in (a["owed_from"], unpaid_from) if d is not None)
            a["state"], a["suspended_from"], a["stopped_from"] = "PAYING", None, None
            a["resumed_from"] = ins.effective
            a["reinstated_periods"] = tuple(sorted({*a["reinstated_periods"], *ins.periods}))
            a["backpay_due_fen"] += ins.amount_fen
            a["backpay_periods"] += len(ins.periods)
        elif ins.kind == "CANCEL_RECOVERY":
            a["recovery_due_fen"] -= ins.amount_fen
            a["recovery_periods"] = tuple(p for p in a["recovery_periods"]
                                          if p not in ins.periods)
        elif ins.kind == "SETTLE_ESTATE":
            a["estate_due_fen"] += ins.amount_fen
            a["estate_periods"] = tuple(sorted({*a["estate_periods"], *ins.periods}))
        else:
            a["recovery_due_fen"] += ins.amount_fen
            a["recovery_periods"] = tuple(sorted({*a["recovery_periods"], *ins.periods}))
        a["instructions"] += 1
        a["last_event_id"] = ins.event_id
    return accounts


def compare(sent: Sent, ledger: Ledger, source: str, dead_letters: Mapping[Where, str],
            ledger_name: str, *, topic: str | None = None) -> Report:
    """``topic``: the topic ``sent`` was read from (None: a file, not consumed by the
    ledger, so nothing is "not consumed yet" and no dead letters apply)."""
    types = {name: TypeTotals() for name in KIND_OF}
    positions = {p: o for (t, p), o in ledger.positions.items() if t == topic}
    report = Report(source, ledger_name, types, sent.records, sent.redelivered, positions,
                    sent.ends, list(sent.differences))
    for diff in report.differences:
        if diff.kind == NOT_INSTRUCTION and topic is not None and diff.where is not None:
            letter = dead_letters.get(diff.where)
            diff.detail += f" (dead letter: {letter})" if letter else " (no dead letter found)"
    for event_id, (ins, where) in sent.instructions.items():
        totals = types[ins.type_name]
        totals.sent += 1
        totals.sent_fen += ins.amount_fen
        applied = ledger.instructions.get(event_id)
        if applied is None:
            why = _why_missing(where, positions if topic is not None else None, dead_letters,
                               ledger.refusals.get(event_id))
            report.differences.append(Difference.at(
                where, MISSING, event_id, ins.retiree_id, ins.type_name, why))
        elif _fields_differ(ins, applied[0]):
            report.differences.append(Difference.at(
                where, CONTENT, event_id, ins.retiree_id, ins.type_name,
                f"sent vs ledger: {_fields_differ(ins, applied[0])}"))
    for event_id, (ins, source_topic, where) in ledger.instructions.items():
        totals = types[ins.type_name]
        totals.applied += 1
        totals.applied_fen += ins.amount_fen
        if event_id not in sent.instructions:
            report.differences.append(Difference.at(
                where, NOT_SENT, event_id, ins.retiree_id, ins.type_name,
                f"applied from {source_topic} {where}; {source} holds no such instruction"))
    expected = recompute_accounts(ledger.instructions[e][0] for e in ledger.order)
    for retiree in sorted(set(expected) | set(ledger.accounts)):
        want, have = expected.get(retiree), ledger.accounts.get(retiree)
        if want is None or have is None:
            detail = ("an account without instructions" if want is None
                      else "instructions applied but no account")
        else:
            detail = "; ".join(
                f"{name} is {_show(have[name])} in the ledger, {_show(want[name])} from its "
                f"instructions" for name in ACCOUNT_FIELDS if have[name] != want[name])
        if detail:
            report.differences.append(Difference(ACCOUNT, None, retiree, None, detail))
    return report


def _why_missing(where: Where, positions: Mapping[int, int] | None,
                 dead_letters: Mapping[Where, str], refusal: str | None) -> str:
    letter = dead_letters.get(where)
    if letter is not None:
        return f"refused, dead letter: {letter}"
    if refusal is not None:  # the sink stopped after the ledger's commit, before the letter
        return f"refused by the payment system ({refusal}); no dead letter found"
    if positions is None:
        return "not in the ledger"
    consumed = positions.get(where.partition) if where.partition is not None else None
    if consumed is None or where.offset >= consumed:
        return (f"not consumed yet (the ledger has read partition {where.partition} up to "
                f"offset {consumed or 0}): is the payment-ledger sink running?")
    return (f"consumed (the ledger has read partition {where.partition} up to offset "
            f"{consumed}) but neither applied nor dead-lettered")


# ------------------------------------------------------------------------ driver


def reconcile(bootstrap: str, topics: Any, ledger_dsn: str, *, timeout: float = 120.0,
              dead_letters: bool = True) -> Report:
    """Read the ledger, then the topic (and its dead letters), and compare.
    Raises psycopg2.Error or broker_errors.KafkaUnavailable / broker_errors.TopicProblem
    when one is not there."""
    ledger = _read_ledger(ledger_dsn)
    topic = topics["payment_instructions"].name
    client = broker_clients.consumer(bootstrap)
    try:
        sent = read_sent(client, topic, timeout)
        letters = read_dead_letters(client, topics["dead_letters"].name, topic, timeout) \
            if dead_letters else {}
    finally:
        client.close()
    return compare(sent, ledger, topic, letters, public_dsn(ledger_dsn), topic=topic)


def reconcile_replay(instructions: Path, ledger_dsn: str) -> Report:
    """Compare the ledger with what ``lifecert replay`` decided (its instructions.jsonl).
    Raises OSError when the file cannot be read, psycopg2.Error for the ledger."""
    ledger = _read_ledger(ledger_dsn)
    sent = read_replay(instructions)
    return compare(sent, ledger, str(instructions), {}, public_dsn(ledger_dsn))


def _read_ledger(ledger_dsn: str) -> Ledger:
    conn = connect(ledger_dsn)
    try:
        return read_ledger(conn)
    finally:
        conn.close()


def render(report: Report, limit: int) -> str:
    lines = [f"payment instructions sent ({report.source}, {report.records:,} records) vs "
             f"applied (ledger {report.ledger})", "",
             f"{'type':<21} {'sent':>9} {'applied':>9} {'sent (yuan)':>17} "
             f"{'applied (yuan)':>17}"]
    for name, t in report.types.items():
        amounts = (f"{yuan(t.sent_fen):>17} {yuan(t.applied_fen):>17}" if name in AMOUNT_OF
                   else f"{'-':>17} {'-':>17}")
        lines.append(f"{name:<21} {t.sent:>9,} {t.applied:>9,} {amounts}")
    if report.redelivered:
        lines.append(f"\n{report.redelivered:,} records repeat an instruction "
                     f"(same event id and content): counted once")
    if report.equal:
        lines.append("\nequal: every instruction sent is applied once with the same content, "
                     "nothing else is applied, and every account agrees with its instructions")
        return "\n".join(lines)
    counts = Counter(d.kind for d in report.differences)
    lines.append(f"\nDIFFERENT: {len(report.differences):,} difference(s): "
                 + ", ".join(f"{k.replace('_', ' ')} {n:,}" for k, n in sorted(counts.items())))
    for diff in report.differences[:limit]:
        lines.append(f"  {diff.describe()}")
    if len(report.differences) > limit:
        lines.append(f"  ... and {len(report.differences) - limit:,} more (--limit, or --json "
                     f"for all)")
    behind = [p for p, end in sorted(report.ends.items())
              if report.positions.get(p, 0) < end]
    if behind:
        lines.append("partitions the ledger has not read to the end: " + ", ".join(
            f"{p} ({report.positions.get(p, 0):,}/{report.ends[p]:,})" for p in behind))
    return "\n".join(lines)

