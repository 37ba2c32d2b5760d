"""What the staff dashboard shows, read from the read models (as ``lifecert_reader``)
in one snapshot: progress by district, channel and day, face against manual, holds,
releases and back-pay, forms outstanding, assistance and consular cases overdue, the
projections' position, each connector's lag and the dead letters; and one retiree's
detail. A district account sees its district
only (``district``); the city sees all."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg2.extensions

from lifecert.domain.policy import PolicyError, load_policy
from lifecert.events.time import local_date, local_wall_time
from lifecert.summary import CampaignCounters
from projections import queries
from projections.health import ConnectorRow, connector_rows

Connection = psycopg2.extensions.connection

FACE_PREFIX = "FACE_"
# The instruction types the dashboard counts (the ledger's, as lifecert/summary.py names them).
SHOWN_INSTRUCTIONS = ("PaymentHoldPlaced", "PaymentHoldReleased", "PaymentTerminated",
                      "HomeVisitDue", "OverpaymentDetected", "FraudAlert")


@dataclass
class Dashboard:
    policy: str | None
    district: str | None  # None: the whole city
    as_of: str  # when read, local time
    counters: CampaignCounters | None = None
    open_holds: int = 0
    instructions: dict[str, int] = field(default_factory=dict)
    backpay_fen: int = 0
    forms: list[queries.AgencyForms] = field(default_factory=list)
    unmatched_forms: int = 0
    assistance: list[queries.OpenCasesByAge] = field(default_factory=list)
    consular_open: int = 0
    consular_overdue: int = 0
    projection_partitions: int = 0
    projection_offset_total: int = 0
    # records of the events topic the API's directory set aside (api_directory_dead_letters)
    dead_letters: dict[str, int] = field(default_factory=dict)
    # each connector's lag and last heartbeat, and the dead letters of every stage (the
    # city's: connector_health and dead_letter_index)
    connectors: list[ConnectorRow] = field(default_factory=list)

    @property
    def stale_connectors(self) -> int:
        return sum(1 for row in self.connectors if row.stale)

    @property
    def face(self) -> int:
        if self.counters is None:
            return 0
        return sum(n for ch, n in self.counters.channels.items() if ch.startswith(FACE_PREFIX))

    @property
    def manual(self) -> int:
        if self.counters is None:
            return 0
        return sum(self.counters.channels.values()) - self.face

    @property
    def assistance_overdue(self) -> int:
        return sum(row.overdue for row in self.assistance)


def latest_policy(conn: Connection) -> str | None:
    names = queries.policies(conn)
    return names[-1] if names else None


def read(conn: Connection, policy: str | None, district: str | None,
         now: datetime | None = None) -> Dashboard:
    """The dashboard of ``policy`` (None: the latest in the read models)."""
    at = now or datetime.now(UTC)
    policy = policy or latest_policy(conn)
    board = Dashboard(policy, district, local_wall_time(at).strftime("%Y-%m-%d %H:%M:%S"))
    if policy is None:
        return board
    today = local_date(at)
    with conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        _counters(cur, board, policy, district)
        _payments(cur, board, policy, district)
        cur.execute("SELECT count(*) FILTER (WHERE decision IS NULL), count(*) FILTER "
                    "(WHERE decision IS NULL AND due_on < %s) FROM consular_cases c "
                    "WHERE %s::text IS NULL OR EXISTS (SELECT 1 FROM retiree_status s "
                    "WHERE s.retiree_id = c.retiree_id AND s.policy = %s AND s.district = %s)",
                    (today, district, policy, district))
        board.consular_open, board.consular_overdue = _pair(cur.fetchone())
        cur.execute("SELECT count(*), coalesce(sum(next_offset), 0) FROM projection_offsets")
        board.projection_partitions, board.projection_offset_total = _pair(cur.fetchone())
        if district is None:
            board.connectors = _connectors(cur, at)
    if district is None:  # forms and assistance cases are the city's (by agency, partner)
        forms = queries.paper_forms(conn)
        board.forms, board.unmatched_forms = forms.outstanding, len(forms.unmatched)
        try:
            calendar = load_policy(policy).working_days
        except (PolicyError, OSError):
            calendar = None
        if calendar is not None:
            board.assistance = queries.open_cases_by_age(
                queries.assistance_cases(conn), today, calendar)
    return board


def _connectors(cur: Any, now: datetime) -> list[ConnectorRow]:
    cur.execute("SELECT connector, kind, lag, measured_at FROM connector_health")
    beats = [(name, kind, None if lag is None else int(lag), at)
             for name, kind, lag, at in cur.fetchall()]
    cur.execute("SELECT stage, count(*), max(recorded_at) FROM dead_letter_index "
                "GROUP BY stage")
    letters = [(stage, int(n), newest) for stage, n, newest in cur.fetchall()]
    return connector_rows(beats, letters, now)


def local_time(at: datetime | None) -> str:
    """A time as the dashboard shows it: local wall time to the second, '—' for none."""
    return "—" if at is None else local_wall_time(at).strftime("%Y-%m-%d %H:%M:%S")


def _pair(row: Any) -> tuple[int, int]:
    return (int(row[0] or 0), int(row[1] or 0)) if row else (0, 0)


def _counters(cur: Any, board: Dashboard, policy: str, district: str | None) -> None:
    counters = CampaignCounters(policy)
    cur.execute("SELECT district, residence, status, channel, completed_day, retirees "
                "FROM campaign_counters WHERE policy = %s "
                "AND (%s::text IS NULL OR district = %s)", (policy, district, district))
    for d, residence, status, channel, day, n in cur.fetchall():
        counters.add(status, d, residence, channel, day, int(n))
    board.counters = counters


def _payments(cur: Any, board: Dashboard, policy: str, district: str | None) -> None:
    scope = ("(%s::text IS NULL OR retiree_id IN (SELECT retiree_id FROM retiree_status "
             "WHERE policy = %s AND district = %s))")
    args = (district, policy, district)
    cur.execute(f"SELECT count(*) FROM open_holds WHERE {scope}", args)
    board.open_holds = int(cur.fetchone()[0])
    cur.execute(f"SELECT type, count(*), coalesce(sum(amount_fen), 0) FROM instruction_ledger "
                f"WHERE type = ANY(%s) AND {scope} GROUP BY type",
                (list(SHOWN_INSTRUCTIONS), *args))
    for kind, n, amount in cur.fetchall():
        board.instructions[kind] = int(n)
        if kind == "PaymentHoldReleased":
            board.backpay_fen = int(amount)


def api_dead_letters(conn: Connection) -> dict[str, int]:
    """Records the API's directory set aside, read as the API's role (the reader sees
    none of its tables; the audit's dead letters the API may only append to)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM api_directory_dead_letters")
        row = cur.fetchone()
        return {"directory": int(row[0]) if row else 0}


# ------------------------------------------------------------------ one retiree


@dataclass(frozen=True)
class RetireeDetail:
    retiree_id: str
    statuses: list[tuple[str, str, str | None, str | None, str | None]]
    # (policy, status, district, channel, completed on)
    holds: list[tuple[str, str]]  # (effective month, placed on)
    instructions: list[tuple[str, str, str | None, int | None]]
    # (recorded on, type, effective month, amount fen)
    verdicts: list[tuple[str, str, str]]  # (recorded on, judged type, reason)

    @property
    def districts(self) -> set[str | None]:
        return {s[2] for s in self.statuses}


def _day(value: datetime | None) -> str | None:
    return local_date(value).isoformat() if value is not None else None


def retiree(conn: Connection, retiree_id: str) -> RetireeDetail | None:
    """Everything the read models hold on one retiree (None: nothing)."""
    with conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SELECT policy, status, district, completed_by, completed_at "
                    "FROM retiree_status WHERE retiree_id = %s ORDER BY policy", (retiree_id,))
        statuses = [(p, s, d, c, _day(at)) for p, s, d, c, at in cur.fetchall()]
        if not statuses:
            return None
        cur.execute("SELECT effective_month, placed_at FROM open_holds WHERE retiree_id = %s "
                    "ORDER BY effective_month", (retiree_id,))
        holds = [(m, _day(at) or "") for m, at in cur.fetchall()]
        cur.execute("SELECT recorded_at, type, effective_month, amount_fen FROM "
                    "instruction_ledger WHERE retiree_id = %s ORDER BY recorded_at, event_id",
                    (retiree_id,))
        instructions = [(_day(at) or "", t, m, a) for at, t, m, a in cur.fetchall()]
        cur.execute("SELECT recorded_at, judged_type, reason FROM event_verdicts "
                    "WHERE retiree_id = %s ORDER BY recorded_at, event_id", (retiree_id,))
        verdicts = [(_day(at) or "", t, r) for at, t, r in cur.fetchall()]
    return RetireeDetail(retiree_id, statuses, holds, instructions, verdicts)


def fen(amount: int) -> str:
    """Fen as yuan, e.g. 123456 -> '1,234.56'."""
    sign = "-" if amount < 0 else ""
    yuan, cents = divmod(abs(amount), 100)
    return f"{sign}{yuan:,}.{cents:02d}"


def today_local() -> date:
    return local_date(datetime.now(UTC))
