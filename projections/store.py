"""The projections' writes: one batch of rows and the offsets it accounts for, in one
PostgreSQL transaction.

Rows are bulk-loaded with COPY into temporary tables, then merged: the ledger with
``ON CONFLICT (event_id) DO NOTHING`` (its ``RETURNING`` says which instructions are new,
and only those change ``open_holds``), statuses with ``ON CONFLICT DO UPDATE`` guarded by
the source offset. Every transaction first takes an advisory lock and checks that the
stored offsets are still where this writer left them, so two writers (or a writer and a
rebuild) never interleave.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
from psycopg2.extras import execute_values

from lifecert.domain import assistance
from projections.records import (
    Batch,
    ConsularRow,
    ContactRow,
    LedgerRow,
    StatusRow,
    TopicPartitionKey,
    VerdictRow,
    hold_changes,
)

log = logging.getLogger("lifecert.projections")

# pg_advisory_xact_lock key taken by every write transaction ("lifecert" + 2).
WRITER_LOCK = 0x6C69666563657202

READ_MODELS = ("retiree_status", "instruction_ledger", "open_holds", "retiree_contacts",
               "consular_cases", "assistance_cases", "assistance_refusals", "projection_offsets",
               "form_certifications", "paper_forms", "event_verdicts", "home_visit_reports",
               "campaign_counts",
               "connector_health", "dead_letter_index",
               "home_visit_dismissals")


class OffsetsMoved(RuntimeError):
    """The stored offsets are not where this writer left them (another writer, or a
    rebuild, ran meanwhile): nothing was written; read them again and seek there."""


@dataclass(frozen=True)
class Applied:
    new_instructions: int
    statuses: int


_LEDGER_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS projection_ledger_in
    (LIKE instruction_ledger INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""
_STATUS_TEMP = """
CREATE TEMP TABLE IF NOT EXISTS projection_status_in
    (LIKE retiree_status INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""

_LEDGER_COLUMNS = (
    "event_id, type, retiree_id, recorded_at, effective_month, amount_fen, payload, "
    "source_topic, source_partition, source_offset"
)
_STATUS_COLUMNS = (
    "retiree_id, policy, status, district, residence, completed_by, completed_at, "
    "revocations, retractions, event_id, recorded_at, source_topic, source_partition, "
    "source_offset, performed_on, death_source, death_recorded_at"
)
_STATUS_MERGE = f"""
INSERT INTO retiree_status AS s ({_STATUS_COLUMNS})
SELECT {_STATUS_COLUMNS} FROM projection_status_in
ON CONFLICT (retiree_id, policy) DO UPDATE SET
    status = excluded.status, district = excluded.district, residence = excluded.residence,
    completed_by = excluded.completed_by, completed_at = excluded.completed_at,
    performed_on = excluded.performed_on,
    revocations = excluded.revocations, retractions = excluded.retractions,
    death_source = excluded.death_source, death_recorded_at = excluded.death_recorded_at,
    event_id = excluded.event_id, recorded_at = excluded.recorded_at,
    source_topic = excluded.source_topic, source_partition = excluded.source_partition,
    source_offset = excluded.source_offset
WHERE s.source_topic <> excluded.source_topic
   OR s.source_partition <> excluded.source_partition
   OR s.source_offset < excluded.source_offset"""
_OFFSETS_UPSERT = """
INSERT INTO projection_offsets (topic, "partition", next_offset) VALUES %s
ON CONFLICT (topic, "partition") DO UPDATE SET next_offset = excluded.next_offset"""


@contextlib.contextmanager
def transaction(conn: psycopg2.extensions.connection) -> Iterator[Any]:
    """A cursor in a transaction: committed on success, else rolled back. Unlike ``with
    conn``, a failed rollback on a dead connection does not hide the original error."""
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise


class Store:
    """Writes of one connection. Any psycopg2 error leaves the transaction rolled back
    (or the connection dead): the caller reconnects and starts again from
    :meth:`offsets`."""

    def __init__(self, conn: psycopg2.extensions.connection) -> None:
        self.conn = conn

    def offsets(self, topics: Iterable[str]) -> dict[TopicPartitionKey, int]:
        with transaction(self.conn) as cur:
            return _read_offsets(cur, list(topics))

    def apply(self, batch: Batch, expected: Mapping[TopicPartitionKey, int]) -> Applied:
        """Write ``batch`` and its offsets in one transaction; ``expected`` holds the
        offsets this writer believes stored."""
        with transaction(self.conn) as cur:
            _lock_and_check(cur, batch.next_offsets, expected)
            new_ids = _merge_ledger(cur, batch.ledger)
            if new_ids:
                _apply_holds(cur, [row for row in batch.ledger if row.event_id in new_ids])
            if batch.statuses:
                _copy(cur, _STATUS_TEMP, "projection_status_in", _STATUS_COLUMNS,
                      map(_status_line, batch.statuses.values()))
                cur.execute(_STATUS_MERGE)
            if batch.contacts:
                _merge_contacts(cur, list(batch.contacts.values()))
            if batch.consular:
                _merge_consular(cur, batch.consular)
            if batch.home_visits:
                _merge_home_visits(cur, batch.home_visits)
            _merge_forms(cur, batch)
            if batch.verdicts:
                _merge_verdicts(cur, batch.verdicts)
            if batch.cases:
                _fold_cases(cur, batch.cases)
            _merge_health(cur, batch)
            _write_offsets(cur, batch.next_offsets)
        return Applied(len(new_ids), len(batch.statuses))

    def advance(
        self, offsets: Mapping[TopicPartitionKey, int], expected: Mapping[TopicPartitionKey, int]
    ) -> None:
        """Move offsets on without rows (past control records, or to the start of an
        empty or compacted partition)."""
        with transaction(self.conn) as cur:
            _lock_and_check(cur, offsets, expected)
            _write_offsets(cur, offsets)

    def reset(self) -> None:
        """Empty the read models and forget every offset (a rebuild starts here)."""
        with transaction(self.conn) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
            cur.execute("TRUNCATE " + ", ".join(READ_MODELS))


def _read_offsets(cur: Any, topics: list[str]) -> dict[TopicPartitionKey, int]:
    cur.execute(
        'SELECT topic, "partition", next_offset FROM projection_offsets WHERE topic = ANY(%s)',
        (topics,),
    )
    return {(topic, partition): offset for topic, partition, offset in cur.fetchall()}


def _lock_and_check(
    cur: Any, offsets: Mapping[TopicPartitionKey, int], expected: Mapping[TopicPartitionKey, int]
) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
    stored = _read_offsets(cur, sorted({topic for topic, _ in offsets}))
    moved = [tp for tp in offsets if stored.get(tp) != expected.get(tp)]
    if moved:
        topic, partition = moved[0]
        raise OffsetsMoved(
            f"stored offset of {topic}[{partition}] is {stored.get(moved[0])}, this writer "
            f"expected {expected.get(moved[0])}"
        )


def _merge_ledger(cur: Any, rows: list[LedgerRow]) -> set[str]:
    if not rows:
        return set()
    _copy(cur, _LEDGER_TEMP, "projection_ledger_in", _LEDGER_COLUMNS,
          map(_ledger_line, rows))
    cur.execute(
        f"INSERT INTO instruction_ledger ({_LEDGER_COLUMNS}) "
        f"SELECT {_LEDGER_COLUMNS} FROM projection_ledger_in "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    return {event_id for (event_id,) in cur.fetchall()}


def _apply_holds(cur: Any, new_rows: list[LedgerRow]) -> None:
    ended, placed = hold_changes(new_rows)
    if ended:
        cur.execute("DELETE FROM open_holds WHERE retiree_id = ANY(%s)", (sorted(ended),))
    if placed:
        execute_values(
            cur,
            "INSERT INTO open_holds (retiree_id, effective_month, hold_event_id, placed_at) "
            "VALUES %s ON CONFLICT (retiree_id, effective_month) DO NOTHING",
            [(r.retiree_id, r.effective_month, r.event_id, r.recorded_at) for r in placed],
        )


_CONTACT_MERGE = """
INSERT INTO retiree_contacts AS c (retiree_id, phone_sealed, address_sealed, channel,
    agency_id, event_id, recorded_at, source_topic, source_partition, source_offset)
VALUES %s
ON CONFLICT (retiree_id) DO UPDATE SET
    phone_sealed = excluded.phone_sealed, address_sealed = excluded.address_sealed,
    channel = excluded.channel, agency_id = excluded.agency_id, event_id = excluded.event_id,
    recorded_at = excluded.recorded_at, source_topic = excluded.source_topic,
    source_partition = excluded.source_partition, source_offset = excluded.source_offset
WHERE c.source_topic <> excluded.source_topic
   OR c.source_partition <> excluded.source_partition
   OR c.source_offset < excluded.source_offset"""


def _merge_contacts(cur: Any, rows: list[ContactRow]) -> None:
    execute_values(cur, _CONTACT_MERGE, [
        (r.retiree_id, r.phone_sealed, r.address_sealed, r.channel, r.agency_id, r.event_id,
         r.recorded_at, r.topic, r.partition, r.offset) for r in rows])


_CONSULAR_INSERT = """
INSERT INTO consular_cases AS c (case_id, retiree_id, mission_id, mission_kind, country,
    passport_checked, residence_permit_checked, face_checked, performed_at, received_at,
    event_id, source_topic, source_partition, source_offset)
VALUES %s
ON CONFLICT (case_id) DO UPDATE SET deliveries = c.deliveries + 1
WHERE c.event_id <> excluded.event_id"""
# The first review of a case counts (the review command refuses a second; a retried
# publication has the same event id and changes nothing).
_CONSULAR_REVIEW = """
UPDATE consular_cases SET decision = %s, reason = %s, reviewer = %s, reviewed_at = %s,
    due_on = %s, overdue_review = %s, review_event_id = %s
WHERE case_id = %s AND decision IS NULL"""


def _merge_consular(cur: Any, rows: list[ConsularRow]) -> None:
    """Cases and reviews in log order (a case's review follows it on its partition).
    A redelivered record (same event id) leaves the row as it is; the same case pushed
    again by the consular system (another event id) counts one more delivery."""
    for row in rows:
        e = row.event
        if row.type == "ConsularCaseReceived":
            execute_values(cur, _CONSULAR_INSERT, [(
                e["case_id"], e["retiree_id"], e["mission_id"], e["mission_kind"],
                e["country"], e["passport_checked"], e["residence_permit_checked"],
                e["face_checked"], e["performed_at"], e["recorded_at"], e["event_id"],
                row.topic, row.partition, row.offset)])
        else:
            cur.execute(_CONSULAR_REVIEW, (e["decision"], e.get("reason"), e["reviewer"],
                                       e["reviewed_at"], e["due_on"], e["overdue"],
                                       e["event_id"], e["case_id"]))


_HOME_VISIT_INSERT = """
INSERT INTO home_visit_reports (team_id, visit_id, retiree_id, visited_on, outcome, event_id,
    recorded_at, source_topic, source_partition, source_offset)
VALUES %s
ON CONFLICT (team_id, visit_id) DO NOTHING"""


_HOME_VISIT_DISMISSED = """
INSERT INTO home_visit_dismissals (team_id, visit_id, retiree_id, review_id, event_id,
    recorded_at, source_topic, source_partition, source_offset)
VALUES %s
ON CONFLICT (team_id, visit_id) DO NOTHING"""


def _merge_home_visits(cur: Any, rows: list[ConsularRow]) -> None:
    """The first report of each (team, visit id) counts: the same file delivered again,
    or a record read again, changes nothing; likewise its dismissal by staff."""
    reports = [r for r in rows if r.type == "HomeVisitReported"]
    dismissals = [r for r in rows if r.type == "HomeVisitDeathDismissed"]
    if reports:
        execute_values(cur, _HOME_VISIT_INSERT, [(
            r.event["team_id"], r.event["visit_id"], r.event["retiree_id"],
            r.event["visited_on"], r.event["outcome"], r.event["event_id"],
            r.event["recorded_at"], r.topic, r.partition, r.offset) for r in reports])
    if dismissals:
        execute_values(cur, _HOME_VISIT_DISMISSED, [(
            r.event["team_id"], r.event["visit_id"], r.event["retiree_id"],
            r.event["review_id"], r.event["event_id"], r.event["recorded_at"], r.topic,
            r.partition, r.offset) for r in dismissals])


def _merge_health(cur: Any, batch: Batch) -> None:
    """The connectors' latest heartbeats (a tombstone forgets one) and the dead letters'
    index, once per dead letter id (a dead letter published twice counts once)."""
    gone = [name for name, beat in batch.heartbeats.items() if beat is None]
    if gone:
        cur.execute("DELETE FROM connector_health WHERE connector = ANY(%s)", (gone,))
    beats = [beat for beat in batch.heartbeats.values() if beat is not None]
    if beats:
        execute_values(cur, """
INSERT INTO connector_health (connector, kind, lag, measured_at) VALUES %s
ON CONFLICT (connector) DO UPDATE SET kind = excluded.kind, lag = excluded.lag,
    measured_at = excluded.measured_at""",
                       [(b.connector, b.kind, b.lag, b.measured_at) for b in beats])
    if batch.dead_letters:
        execute_values(cur, """
INSERT INTO dead_letter_index (letter_id, stage, source_topic, recorded_at) VALUES %s
ON CONFLICT (letter_id) DO NOTHING""", [
            (e.letter_id, e.stage, e.source_topic, e.recorded_at)
            for e in batch.dead_letters.values()])


def _merge_forms(cur: Any, batch: Batch) -> None:
    """The paper-forms read model: first recording wins, a form once by event id."""
    if batch.form_certifications:
        execute_values(cur, """
INSERT INTO form_certifications (agency_id, certification_id, retiree_id, channel,
    performed_at, recorded_at, event_id, source_topic, source_partition, source_offset)
VALUES %s ON CONFLICT (agency_id, certification_id) DO NOTHING""", [
            (r.agency_id, r.certification_id, r.retiree_id, r.channel, r.performed_at,
             r.recorded_at, r.event_id, r.topic, r.partition, r.offset)
            for r in batch.form_certifications.values()])
    if batch.paper_forms:
        execute_values(cur, """
INSERT INTO paper_forms (event_id, retiree_id, certification_id, agency_id, form_number,
    postmarked_on, received_at, scan_sha256, recorded_at, source_agency, source_topic,
    source_partition, source_offset)
VALUES %s ON CONFLICT (event_id) DO NOTHING""", [
            (r.event_id, r.retiree_id, r.certification_id, r.agency_id, r.form_number,
             r.postmarked_on, r.received_at, r.scan_sha256, r.recorded_at, r.source_agency,
             r.topic, r.partition, r.offset) for r in batch.paper_forms.values()])


_VERDICT_COLUMNS = (
    "event_id, retiree_id, policy, reason, judged_type, judged_event_id, reported_by, "
    "certification_id, agency_id, performed_at, recorded_at, payload, source_topic, "
    "source_partition, source_offset"
)


def _merge_verdicts(cur: Any, rows: list[VerdictRow]) -> None:
    """Each verdict once, by event id (a worker that decided a record again re-sent it)."""
    execute_values(
        cur,
        f"INSERT INTO event_verdicts ({_VERDICT_COLUMNS}) VALUES %s "
        "ON CONFLICT (event_id) DO NOTHING",
        [(r.event_id, r.retiree_id, r.policy, r.reason, r.judged_type, r.judged_event_id,
          r.reported_by, r.certification_id, r.agency_id, r.performed_at, r.recorded_at,
          r.payload_text, r.topic, r.partition, r.offset) for r in rows],
    )


_CASE_COLUMNS = ("partner", "case_id", "retiree_id", "direction", "status", "requested_at",
                 "due_on", "acknowledged_at", "answered_at", "outcome", "result_id",
                 "received_at", "receipt")


def _fold_cases(cur: Any, events: list[dict[str, Any]]) -> None:
    """The batch's case events folded onto the stored cases (lifecert.domain.assistance:
    the same :func:`~lifecert.domain.assistance.apply` replay and the tests call)."""
    keys = sorted({assistance.case_key(e) for e in events})
    cur.execute(f"SELECT {', '.join(_CASE_COLUMNS)}, refused, last_event_id "
                "FROM assistance_cases WHERE (partner, case_id) IN %s FOR UPDATE",
                (tuple(keys),))
    cases: dict[tuple[str, str], assistance.Case] = {}
    extra: dict[tuple[str, str], list[Any]] = {}
    for row in cur.fetchall():
        case = assistance.Case(*row[:len(_CASE_COLUMNS)])
        cases[case.key] = case
        extra[case.key] = list(row[len(_CASE_COLUMNS):])
    touched: set[tuple[str, str]] = set()
    refusals: list[tuple[str, str, str, str, str, Any]] = []
    for event in events:
        key = assistance.case_key(event)
        decision = assistance.apply(cases.get(key), event)
        if decision.rejected is not None:
            log.warning("assistance case %s/%s refused %s (event %s): %s", key[0], key[1],
                        event["type"], event["event_id"], decision.rejected)
            refusals.append((event["event_id"], key[0], key[1], event["type"],
                             decision.rejected, event["recorded_at"]))
        if decision.case is None:
            continue
        cases[key] = decision.case
        state = extra.setdefault(key, [0, event["event_id"]])
        state[0] += decision.rejected is not None
        if decision.changed:
            state[1] = event["event_id"]
        touched.add(key)
    rows = [tuple(getattr(cases[k], c) for c in _CASE_COLUMNS) + tuple(extra[k])
            for k in sorted(touched)]
    execute_values(cur, f"""
INSERT INTO assistance_cases ({', '.join(_CASE_COLUMNS)}, refused, last_event_id) VALUES %s
ON CONFLICT (partner, case_id) DO UPDATE SET
{', '.join(f"{c} = excluded.{c}" for c in _CASE_COLUMNS[2:])},
refused = excluded.refused, last_event_id = excluded.last_event_id""", rows)
    if refusals:
        execute_values(cur, "INSERT INTO assistance_refusals (event_id, partner, case_id, "
                       "event_type, reason, recorded_at) VALUES %s ON CONFLICT DO NOTHING",
                       refusals)


def _write_offsets(cur: Any, offsets: Mapping[TopicPartitionKey, int]) -> None:
    if offsets:
        execute_values(
            cur, _OFFSETS_UPSERT, [(t, p, o) for (t, p), o in sorted(offsets.items())]
        )


# Lines of COPY's text format. Enum values (type, status, district, residence, channel)
# and months are plain symbols; free strings are escaped.


def _ledger_line(row: LedgerRow) -> str:
    amount = "\\N" if row.amount_fen is None else row.amount_fen
    return (
        f"{_text(row.event_id)}\t{row.type}\t{_text(row.retiree_id)}\t"
        f"{row.recorded_at.isoformat()}\t{_optional(row.effective_month)}\t{amount}\t"
        f"{_text(row.payload_text)}\t{_text(row.topic)}\t{row.partition}\t{row.offset}\n"
    )


def _status_line(row: StatusRow) -> str:
    completed_at = "\\N" if row.completed_at is None else row.completed_at.isoformat()
    performed_on = "\\N" if row.performed_on is None else row.performed_on.isoformat()
    died_at = "\\N" if row.death_recorded_at is None else row.death_recorded_at.isoformat()
    return (
        f"{_text(row.retiree_id)}\t{_text(row.policy)}\t{row.status}\t"
        f"{_optional(row.district)}\t{row.residence}\t{_optional(row.completed_by)}\t"
        f"{completed_at}\t{row.revocations}\t{row.retractions}\t{_text(row.event_id)}\t"
        f"{row.recorded_at.isoformat()}\t"
        f"{_text(row.topic)}\t{row.partition}\t{row.offset}\t{performed_on}\t"
        f"{_optional(row.death_source)}\t{died_at}\n"
    )


def _copy(cur: Any, create: str, table: str, columns: str, lines: Iterable[str]) -> None:
    cur.execute(create)
    buffer = io.StringIO("".join(lines))
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buffer)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text(value: str) -> str:
    # Tab, newline and carriage return are not printable: one C-speed test for the
    # common case of nothing to escape.
    if "\\" in value or not value.isprintable():
        return value.translate(_COPY_ESCAPES)
    return value


def _optional(value: str | None) -> str:
    return "\\N" if value is None else _text(value)
