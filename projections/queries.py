"""Reads of the read models: the export files, the campaign counters, one retiree.

``export`` writes the same files as ``lifecert replay`` (same writers, same JSON
encoding): ``instructions.jsonl`` ordered by (recorded_at, retiree_id, type, event_id),
``verdicts.jsonl`` (the policy's EventRejected) in the same order, and ``status.csv``
ordered by retiree id (byte order), from one consistent snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg2.extensions

from lifecert.domain.assistance import Case, age_working_days, is_overdue
from lifecert.domain.assistance_requests import Standing
from lifecert.domain.working_days import WorkingCalendar
from lifecert.events.interchange import to_json
from lifecert.replay import jsonl_writer, write_status_csv
from lifecert.summary import CampaignCounters

Connection = psycopg2.extensions.connection

_FETCH = 10_000

_INSTRUCTIONS = """
SELECT payload FROM instruction_ledger
ORDER BY recorded_at, retiree_id COLLATE "C", type COLLATE "C", event_id COLLATE "C"
"""
_VERDICTS = """
SELECT payload FROM event_verdicts WHERE policy = %s
ORDER BY recorded_at, retiree_id COLLATE "C", event_id COLLATE "C"
"""
_STATUSES = """
SELECT retiree_id, status FROM retiree_status WHERE policy = %s
ORDER BY retiree_id COLLATE "C"
"""


class ExportError(RuntimeError):
    """The export cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class ExportResult:
    instructions: int
    statuses: int
    policy: str | None
    verdicts: int = 0


def _snapshot(cur: Any) -> None:
    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def policies(conn: Connection) -> list[str]:
    with conn, conn.cursor() as cur:
        # the counters (one row per group, kept with the statuses), not every status row
        cur.execute('SELECT policy FROM campaign_counters GROUP BY policy '
                    'ORDER BY policy COLLATE "C"')
        return [policy for (policy,) in cur.fetchall()]


def current_policy(conn: Connection) -> str | None:
    """The policy the hub runs: the one the worker stamps on the statuses it projects (its
    ``--policy``), the latest by name while the read models hold several (a new campaign
    started), None before the first status."""
    names = policies(conn)
    return names[-1] if names else None


def export(conn: Connection, out_dir: Path, policy: str | None = None) -> ExportResult:
    """Write ``out_dir/instructions.jsonl``, ``out_dir/verdicts.jsonl`` and
    ``out_dir/status.csv``. Statuses and verdicts are those of ``policy``, which may be left
    out while the read models hold only one."""
    out_dir.mkdir(parents=True, exist_ok=True)
    instructions_path = out_dir / "instructions.jsonl"
    status_path = out_dir / "status.csv"
    verdicts_path = out_dir / "verdicts.jsonl"
    tmp_instructions = _tmp(instructions_path)
    tmp_status = _tmp(status_path)
    tmp_verdicts = _tmp(verdicts_path)
    try:
        with conn:
            with conn.cursor() as cur:
                _snapshot(cur)
                policy = _choose_policy(cur, policy)
            with (
                conn.cursor(name="lifecert_export_instructions") as cur,
                tmp_instructions.open("w", encoding="utf-8") as fh,
            ):
                cur.itersize = _FETCH
                cur.execute(_INSTRUCTIONS)
                # Reordering by to_json is needed: jsonb does not keep the key order.
                write = jsonl_writer(fh, to_json)
                n_instructions = 0
                for (payload,) in cur:
                    write(payload)
                    n_instructions += 1
            n_verdicts = _write_verdicts(conn, tmp_verdicts, policy)
            counted = _Counted(_status_rows(conn, policy))
            write_status_csv(tmp_status, counted)
        os.replace(tmp_instructions, instructions_path)
        os.replace(tmp_verdicts, verdicts_path)
        os.replace(tmp_status, status_path)
    finally:
        tmp_instructions.unlink(missing_ok=True)
        tmp_status.unlink(missing_ok=True)
        tmp_verdicts.unlink(missing_ok=True)
    return ExportResult(n_instructions, counted.n, policy, n_verdicts)


def _write_verdicts(conn: Connection, path: Path, policy: str | None) -> int:
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        if policy is None:
            return 0
        with conn.cursor(name="lifecert_export_verdicts") as cur:
            cur.itersize = _FETCH
            cur.execute(_VERDICTS, (policy,))
            write = jsonl_writer(fh, to_json)
            for (payload,) in cur:
                write(payload)
                n += 1
    return n


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _choose_policy(cur: Any, policy: str | None) -> str | None:
    if policy is not None:
        return policy
    cur.execute('SELECT policy FROM campaign_counters GROUP BY policy ORDER BY policy COLLATE "C"')
    found = [p for (p,) in cur.fetchall()]
    if len(found) > 1:
        raise ExportError(
            f"retiree_status holds several policies ({', '.join(found)}); choose one with "
            "--policy"
        )
    return found[0] if found else None


def _status_rows(conn: Connection, policy: str | None) -> Iterator[tuple[str, str]]:
    if policy is None:
        return
    with conn.cursor(name="lifecert_export_statuses") as cur:
        cur.itersize = _FETCH
        cur.execute(_STATUSES, (policy,))
        yield from cur


class _Counted:
    def __init__(self, rows: Iterator[tuple[str, str]]) -> None:
        self._rows = rows
        self.n = 0

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for row in self._rows:
            self.n += 1
            yield row


# ------------------------------------------------------------------ counters


def campaign_counters(conn: Connection, policy: str) -> CampaignCounters:
    counters = CampaignCounters(policy)
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute(
            "SELECT district, residence, status, channel, completed_day, retirees "
            "FROM campaign_counters WHERE policy = %s",
            (policy,),
        )
        for district, residence, status, channel, day, n in cur.fetchall():
            counters.add(status, district, residence, channel, day, n)
        cur.execute(
            "SELECT coalesce(sum(revocations), 0), coalesce(sum(retractions), 0) "
            "FROM retiree_status WHERE policy = %s",
            (policy,),
        )
        row = cur.fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        revocations, retractions = row
        counters.revocations, counters.retractions = int(revocations), int(retractions)
        cur.execute(
            "SELECT type, count(*), coalesce(sum(amount_fen), 0), "
            "coalesce(sum(jsonb_array_length(coalesce(payload -> 'backpay_months', "
            "payload -> 'months'))), 0), "
            "count(*) FILTER (WHERE payload ->> 'reason' = 'CERTIFICATION_REVOKED') "
            "FROM instruction_ledger GROUP BY type"
        )
        totals = counters.instructions
        for kind, n, amount, months, revoked in cur.fetchall():
            totals.counts[kind] += n
            if kind == "PaymentHoldReleased":
                totals.backpay_fen += int(amount)
                totals.backpay_months += int(months)
            elif kind == "OverpaymentDetected":
                totals.overpaid_fen += int(amount)
            elif kind == "PaymentHoldPlaced":
                totals.revocation_holds += int(revoked)
            elif kind == "PaymentReinstated":
                totals.reinstated_fen += int(amount)
                totals.reinstated_months += int(months)
            elif kind == "OverpaymentCancelled":
                totals.cancelled_fen += int(amount)
            elif kind == "PaymentEstateSettled":
                totals.estate_fen += int(amount)
                totals.estate_months += int(months)
    return counters


# ------------------------------------------------------------------ one retiree


@dataclass(frozen=True)
class CycleStatus:
    policy: str
    status: str
    district: str | None
    residence: str
    completed_by: str | None
    completed_at: datetime | None
    as_of: datetime  # recorded_at of the status record


@dataclass(frozen=True)
class RetireeView:
    retiree_id: str
    cycles: list[CycleStatus]
    open_holds: list[tuple[str, str]]  # (effective month, hold event id)
    instructions: list[dict[str, Any]]  # interchange JSON, in export order


def retiree(conn: Connection, retiree_id: str) -> RetireeView | None:
    """What the read models know of one retiree, or None when nothing."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute(
            "SELECT policy, status, district, residence, completed_by, completed_at, "
            'recorded_at FROM retiree_status WHERE retiree_id = %s ORDER BY policy COLLATE "C"',
            (retiree_id,),
        )
        cycles = [CycleStatus(*row) for row in cur.fetchall()]
        cur.execute(
            "SELECT effective_month, hold_event_id FROM open_holds WHERE retiree_id = %s "
            "ORDER BY effective_month",
            (retiree_id,),
        )
        holds = [(month, event_id) for month, event_id in cur.fetchall()]
        cur.execute(
            "SELECT payload FROM instruction_ledger WHERE retiree_id = %s "
            'ORDER BY recorded_at, type COLLATE "C", event_id COLLATE "C"',
            (retiree_id,),
        )
        instructions = [to_json(payload) for (payload,) in cur.fetchall()]
    if not cycles and not instructions:
        return None
    return RetireeView(retiree_id, cycles, holds, instructions)


# ------------------------------------------------------------------ corrections


@dataclass(frozen=True)
class RetireeCorrections:
    """A row of the ``retiree_corrections`` view (amounts in fen)."""

    retiree_id: str
    policy: str | None
    revocations: int
    retractions: int
    reinstatements: int
    reinstated_fen: int
    estate_settlements: int
    estate_fen: int
    overpayments_cancelled: int
    cancelled_fen: int


def corrections(conn: Connection, retiree_id: str | None = None) -> list[RetireeCorrections]:
    """The corrections view, for one retiree or all (ordered by retiree id)."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        where = "" if retiree_id is None else " WHERE retiree_id = %s"
        cur.execute(
            "SELECT retiree_id, policy, revocations, retractions, reinstatements, "
            "reinstated_fen, estate_settlements, estate_fen, overpayments_cancelled, "
            f"cancelled_fen FROM retiree_corrections{where} ORDER BY retiree_id, policy",
            () if retiree_id is None else (retiree_id,),
        )
        return [RetireeCorrections(*row) for row in cur.fetchall()]


# ------------------------------------------------------------------ contacts


@dataclass(frozen=True)
class RetireeContact:
    """A row of the contact read model: phone and address as sealed on the log (open them
    with ``lifecert.events.personal.reveal`` and the key store; None when not given)."""

    retiree_id: str
    phone_sealed: str | None
    address_sealed: str | None
    channel: str
    agency_id: str
    recorded_at: datetime


def contact(conn: Connection, retiree_id: str) -> RetireeContact | None:
    """The latest contact details of a retiree, sealed; None when none were given."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute(
            "SELECT retiree_id, phone_sealed, address_sealed, channel, agency_id, recorded_at "
            "FROM retiree_contacts WHERE retiree_id = %s",
            (retiree_id,),
        )
        row = cur.fetchone()
    return None if row is None else RetireeContact(*row)


# ------------------------------------------------------------------ paper forms


@dataclass(frozen=True)
class AgencyForms:
    """Forms outstanding for one agency and channel: how many, and the age in whole days
    of the oldest (since the hub recorded its certification)."""

    agency_id: str
    channel: str
    forms: int
    oldest_days: int


@dataclass(frozen=True)
class UnmatchedForm:
    """A returned form that matches no certification yet, and how long it has waited."""

    retiree_id: str
    certification_id: str
    agency_id: str | None
    form_number: int | None
    received_at: datetime
    waiting_days: int


@dataclass(frozen=True)
class PaperForms:
    outstanding: list[AgencyForms]
    unmatched: list[UnmatchedForm]


def paper_forms(conn: Connection, *, older_than_days: int = 0,
                now: datetime | None = None) -> PaperForms:
    """The paper-forms read model: forms outstanding per agency (those waiting at least
    ``older_than_days``), oldest first, and the unmatched forms, oldest first; ages are
    counted to ``now`` (default: the database's now())."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute("SELECT coalesce(%s, now())", (now,))
        row = cur.fetchone()
        assert row is not None
        at = row[0]
        cur.execute(
            "SELECT agency_id, channel, count(*), "
            "floor(extract(epoch FROM %s - min(recorded_at)) / 86400)::int "
            "FROM forms_outstanding WHERE recorded_at <= %s - make_interval(days => %s) "
            "GROUP BY agency_id, channel ORDER BY min(recorded_at), agency_id COLLATE \"C\"",
            (at, at, older_than_days))
        outstanding = [AgencyForms(*r) for r in cur.fetchall()]
        cur.execute(
            "SELECT retiree_id, certification_id, agency_id, form_number, received_at, "
            "floor(extract(epoch FROM %s - recorded_at) / 86400)::int "
            "FROM forms_unmatched ORDER BY recorded_at, event_id COLLATE \"C\"", (at,))
        unmatched = [UnmatchedForm(*r) for r in cur.fetchall()]
    return PaperForms(outstanding, unmatched)


_CASE_COLUMNS = ("partner, case_id, retiree_id, direction, status, requested_at, due_on, "
                 "acknowledged_at, answered_at, outcome, result_id, received_at, receipt")


def standings(conn: Connection, policy: str) -> list[Standing]:
    """(retiree id, residence, status) of every retiree of ``policy``'s campaign: what
    Foshan's outbound assistance requests are decided from."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute("SELECT retiree_id, residence, status FROM retiree_status "
                    'WHERE policy = %s ORDER BY retiree_id COLLATE "C"', (policy,))
        return [Standing(*row) for row in cur.fetchall()]


def assistance_cases(conn: Connection, partner: str | None = None) -> list[Case]:
    """The assistance cases of the read model (of one partner, or all), by partner and
    case id. Open ones by age: :func:`open_cases_by_age`."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute(f"SELECT {_CASE_COLUMNS} FROM assistance_cases "
                    "WHERE %(p)s::text IS NULL OR partner = %(p)s ORDER BY partner, case_id",
                    {"p": partner})
        return [Case(*row) for row in cur.fetchall()]


@dataclass(frozen=True)
class OpenCasesByAge:
    partner: str
    direction: str
    ages: dict[str, int]  # "0-5", "6-10", "11-20", "21+" working days, "unknown" -> cases
    overdue: int


_AGE_BUCKETS = ((5, "0-5"), (10, "6-10"), (20, "11-20"))


def open_cases_by_age(cases: list[Case], today: date,
                      calendar: WorkingCalendar) -> list[OpenCasesByAge]:
    """Open cases (no result yet) by partner and age in working days of ``calendar``."""
    rows: dict[tuple[str, str], OpenCasesByAge] = {}
    for case in cases:
        if not case.is_open:
            continue
        row = rows.setdefault((case.partner, case.direction),
                              OpenCasesByAge(case.partner, case.direction, {}, 0))
        age = age_working_days(case, today, calendar)
        bucket = "unknown" if age is None else next(
            (name for limit, name in _AGE_BUCKETS if age <= limit), "21+")
        row.ages[bucket] = row.ages.get(bucket, 0) + 1
        rows[case.partner, case.direction] = OpenCasesByAge(
            row.partner, row.direction, row.ages, row.overdue + is_overdue(case, today))
    return [rows[k] for k in sorted(rows)]


def assistance_refusals(conn: Connection) -> list[tuple[str, str, str, str, str]]:
    """(event_id, partner, case_id, event_type, reason) of the case events the domain
    refused, oldest first."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute("SELECT event_id, partner, case_id, event_type, reason "
                    "FROM assistance_refusals ORDER BY recorded_at, event_id")
        return [tuple(row) for row in cur.fetchall()]


# ------------------------------------------------------------------ campaign report


@dataclass(frozen=True)
class ReportRows:
    """What the campaign report counts (``lifecert report``): retirees grouped by (status,
    district, residence, completing channel, Asia/Shanghai day of completion) with their
    number, and instructions grouped by (type, reason, recorded_at) with their number,
    amount (fen) and months; the deceased grouped by who reported the standing death and
    the Asia/Shanghai day it was recorded (migration 0013; None in statuses written before)."""

    retirees: list[tuple[str, str | None, str, str | None, date | None, int]]
    instructions: list[tuple[str, str | None, datetime, int, int, int]]
    deaths: list[tuple[str | None, date | None, int]] = field(default_factory=list)


def report_rows(conn: Connection, policy: str) -> ReportRows:
    """The report's rows for ``policy`` from one snapshot. The instruction ledger is not
    kept per policy: it holds every policy's instructions (as the campaign counters do)."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute(
            "SELECT status, district, residence, channel, completed_day, sum(retirees)::bigint "
            "FROM campaign_counters WHERE policy = %s "
            "GROUP BY status, district, residence, channel, completed_day",
            (policy,),
        )
        retirees = [(s, d, r, c, day, int(n)) for s, d, r, c, day, n in cur.fetchall()]
        cur.execute(
            "SELECT type, payload ->> 'reason', recorded_at, count(*), "
            "coalesce(sum(amount_fen), 0), "
            "coalesce(sum(jsonb_array_length(coalesce(payload -> 'backpay_months', "
            "payload -> 'months'))), 0) "
            "FROM instruction_ledger GROUP BY 1, 2, 3 ORDER BY 3"
        )
        instructions = [(t, reason, at, int(n), int(fen), int(months))
                        for t, reason, at, n, fen, months in cur.fetchall()]
        cur.execute(
            "SELECT death_source, (death_recorded_at AT TIME ZONE 'Asia/Shanghai')::date, "
            "count(*) FROM retiree_status WHERE policy = %s AND status = 'DECEASED' "
            "GROUP BY 1, 2",
            (policy,),
        )
        deaths = [(source, day, int(n)) for source, day, n in cur.fetchall()]
    return ReportRows(retirees, instructions, deaths)


# ------------------------------------------------------------------ home-visit tasks


@dataclass(frozen=True)
class HomeVisitTask:
    """One HomeVisitDue task (the view ``home_visit_tasks``, migrations 0011, 0016,
    0017)."""

    retiree_id: str
    team_id: str
    district: str | None
    due_date: date
    # OPEN, NOT_FOUND, DEATH_DISMISSED, CERTIFIED, DECEASED_REVIEW (the team's report, under
    # review), DECEASED (a death recorded: the review confirmed it, or another source)
    state: str
    visit_id: str | None
    visited_on: date | None


@dataclass(frozen=True)
class TeamTasks:
    """A team's tasks on a day: still to do and due (not yet past due), still to do and
    overdue, and the done ones by state."""

    team_id: str
    due: int
    overdue: int
    not_found: int
    certified: int
    deceased_review: int
    deceased: int


def home_visit_task_list(conn: Connection) -> list[HomeVisitTask]:
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute("SELECT retiree_id, team_id, district, due_date, state, visit_id, "
                    "visited_on FROM home_visit_tasks ORDER BY team_id, due_date, retiree_id")
        return [HomeVisitTask(*row) for row in cur.fetchall()]


def home_visit_tasks_by_team(conn: Connection, as_of: date) -> list[TeamTasks]:
    """Per team on ``as_of`` (a local date): tasks still to do (OPEN, NOT_FOUND or
    DEATH_DISMISSED) due on or after it, and those past due; NOT_FOUND counts among them
    and on its own."""
    with conn, conn.cursor() as cur:
        _snapshot(cur)
        cur.execute(
            "SELECT team_id,"
            " count(*) FILTER (WHERE state IN %(todo)s AND due_date >= %(d)s),"
            " count(*) FILTER (WHERE state IN %(todo)s AND due_date < %(d)s),"
            " count(*) FILTER (WHERE state = 'NOT_FOUND'),"
            " count(*) FILTER (WHERE state = 'CERTIFIED'),"
            " count(*) FILTER (WHERE state = 'DECEASED_REVIEW'),"
            " count(*) FILTER (WHERE state = 'DECEASED')"
            " FROM home_visit_tasks GROUP BY team_id ORDER BY team_id",
            {"d": as_of, "todo": ("OPEN", "NOT_FOUND", "DEATH_DISMISSED")})
        return [TeamTasks(*row) for row in cur.fetchall()]
