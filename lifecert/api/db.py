"""PostgreSQL for the API server: a pool of connections used from worker threads (psycopg2
blocks; the asyncio loop never waits on it), the queries of the servicers, and the audit
writer, which batches rows in the background so that auditing costs a call nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.pool
from psycopg2.extras import Json, execute_values

from lifecert.api.authz import Retiree
from lifecert.api.escape import escaped

log = logging.getLogger("lifecert.api")

T = TypeVar("T")
Connection = psycopg2.extensions.connection


class Database:
    """A thread pool of the same size as the connection pool: each task holds one
    connection for its duration."""

    def __init__(self, dsn: str, size: int = 8) -> None:
        self.dsn = dsn
        self._size = size
        # minconn = maxconn: psycopg2's pool closes every connection returned beyond
        # minconn, which would mean a new PostgreSQL backend per call under load.
        self._pool = psycopg2.pool.ThreadedConnectionPool(
            size, size, dsn, **_connect_options()
        )
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="api-db")

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._pool.getconn()
        if not conn.autocommit:
            conn.autocommit = True  # plain reads; `with conn:` still makes a transaction
        broken = False
        try:
            yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        finally:
            self._pool.putconn(conn, close=broken or conn.closed != 0)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """``fn(conn)`` on a pooled connection, in a worker thread."""

        def task() -> T:
            with self.connection() as conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._executor, task)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._pool.closeall()


class AsyncReader:
    """Connections in psycopg2's asynchronous mode, driven by the asyncio loop itself
    (no worker thread, no GIL hand-over): for the hot read of the status query. Each
    query takes a connection from the pool for its duration.

    ``prepare``: PREPARE statements run on every connection when it opens; a query
    ``EXECUTE name(%s)`` then skips PostgreSQL's parsing and planning, most of its work
    for a one-row lookup. (This needs session-level connections to PostgreSQL, as here:
    a pooler in transaction mode between them would lose the prepared statements.)

    Idle connections are reused last-in, first-out: at a steady rate one or two backends
    answer nearly every query and stay warm (caches, scheduler), the others are spares
    for bursts. Taken in turn (first-in, first-out), each backend would wake cold for
    every query and cost PostgreSQL several times the CPU."""

    def __init__(self, dsn: str, size: int = 4, prepare: Sequence[str] = ()) -> None:
        self.dsn = dsn
        self.size = size
        self.prepare = tuple(prepare)
        self._idle: list[Connection] = []  # a stack: the most recently used on top
        # Queries waiting for a connection; each gets one, or None: the slot of a
        # connection that was discarded, to open a new one in.
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._opened = 0  # connections open or being opened

    async def _connect(self) -> Connection:
        conn = psycopg2.connect(
            self.dsn, async_=True, **_connect_options("lifecert-api-status")
        )
        try:
            await _ready(conn)
            for statement in self.prepare:
                cur = conn.cursor()
                cur.execute(statement)
                await _ready(conn)
                cur.close()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        return conn

    def _hand_over(self, conn: Connection | None) -> None:
        """Give ``conn`` (None: a free slot) to the first query waiting, else keep it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is None:
            self._opened -= 1
        else:
            self._idle.append(conn)

    async def _acquire(self) -> Connection:
        if self._idle:
            return self._idle.pop()
        if self._opened < self.size:
            self._opened += 1
        else:
            waiter: asyncio.Future[Connection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._hand_over(waiter.result())  # handed over as it was cancelled
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if conn is not None:
                return conn
        try:  # in a free slot
            return await self._connect()
        except BaseException:
            self._hand_over(None)
            raise

    async def open(self) -> None:
        """Open the whole pool now (at start-up) rather than on the first queries."""
        missing = self.size - self._opened
        self._opened += missing
        results = await asyncio.gather(
            *(self._connect() for _ in range(missing)), return_exceptions=True
        )
        for result in results:
            self._hand_over(None if isinstance(result, BaseException) else result)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def fetchone(self, sql: str, params: Any) -> tuple[Any, ...] | None:
        conn = await self._acquire()
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            await _ready(conn)
            row = cur.fetchone()
            cur.close()
        except BaseException:
            # A failed or cancelled query leaves the connection in an unknown state.
            with contextlib.suppress(Exception):
                conn.close()
            self._hand_over(None)
            raise
        self._hand_over(conn)
        return row

    def close(self) -> None:
        while self._idle:
            with contextlib.suppress(Exception):
                self._idle.pop().close()


async def _ready(conn: Connection) -> None:
    """Wait until an asynchronous connection has finished its current operation."""
    loop = asyncio.get_running_loop()
    fd = conn.fileno()
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        waiter = loop.create_future()
        if state == psycopg2.extensions.POLL_READ:
            loop.add_reader(fd, _wake, waiter)
            try:
                await waiter
            finally:
                loop.remove_reader(fd)
        elif state == psycopg2.extensions.POLL_WRITE:
            loop.add_writer(fd, _wake, waiter)
            try:
                await waiter
            finally:
                loop.remove_writer(fd)
        else:  # pragma: no cover - psycopg2 raises on POLL_ERROR itself
            raise psycopg2.OperationalError(f"unexpected poll state {state}")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def connect(dsn: str, application_name: str = "lifecert-api") -> Connection:
    """A connection of the server outside its pool (the migrations' check at start, the
    CRL numbers), with the options of every other: as the API's own role, named
    ``application_name`` in pg_stat_activity."""
    return psycopg2.connect(dsn, **_connect_options(application_name))


def _connect_options(application_name: str = "lifecert-api") -> dict[str, Any]:
    """Options of every connection of the server; the application names tell its
    connections apart in pg_stat_activity (lifecert-api, -status, -audit, -directory)."""
    return {
        "application_name": application_name,
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


# ------------------------------------------------------------------------ queries


def directory(conn: Connection, retiree_ids: Sequence[str]) -> dict[str, Retiree]:
    if not retiree_ids:
        return {}
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT retiree_id, residence, managing_unit, scheme, category "
            "FROM api_retiree_directory WHERE retiree_id = ANY(%s)",
            (list(set(retiree_ids)),),
        )
        return {row[0]: Retiree(*row) for row in cur.fetchall()}


@dataclass(frozen=True)
class AssistanceCase:
    """What the API reads of an assistance case (projections' ``assistance_cases``)."""

    case_id: str
    retiree_id: str
    direction: str
    status: str
    result_id: str | None


def assistance_cases(conn: Connection, wanted: Sequence[tuple[str, str]]
                     ) -> dict[tuple[str, str], AssistanceCase]:
    """The cases named by (partner, case id), of those that exist."""
    if not wanted:
        return {}
    partners, case_ids = zip(*sorted(set(wanted)), strict=True)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT a.partner, a.case_id, a.retiree_id, a.direction, a.status, a.result_id "
            "FROM assistance_cases a JOIN unnest(%s::text[], %s::text[]) AS w(partner, case_id) "
            "ON a.partner = w.partner AND a.case_id = w.case_id",
            (list(partners), list(case_ids)),
        )
        return {(row[0], row[1]): AssistanceCase(*row[1:]) for row in cur.fetchall()}


@dataclass(frozen=True)
class AcceptedRow:
    event_id: str
    content_digest: str
    recorded_at: datetime
    # one digest per field (partner.field_digests); None for rows accepted before they
    # were kept
    field_digests: dict[str, str] | None = None


def accepted(conn: Connection, event_ids: Sequence[str]) -> dict[str, AcceptedRow]:
    if not event_ids:
        return {}
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_id, content_digest, recorded_at, field_digests "
            "FROM api_accepted_events "
            "WHERE event_id = ANY(%s)",
            (list(event_ids),),
        )
        return {row[0]: AcceptedRow(*row) for row in cur.fetchall()}


@dataclass(frozen=True)
class NewAccepted:
    event_id: str
    agency: str
    type: str
    idempotency_key: str
    content_digest: str
    topic: str
    partition: int
    offset: int
    recorded_at: datetime
    field_digests: dict[str, str] | None = None


def record_accepted(conn: Connection, rows: Sequence[NewAccepted]) -> set[str]:
    """Insert the rows; returns the event ids inserted now (others were there already:
    a concurrent submission of the same items won)."""
    if not rows:
        return set()
    with conn, conn.cursor() as cur:
        inserted = execute_values(
            cur,
            "INSERT INTO api_accepted_events (event_id, agency, type, idempotency_key, "
            'content_digest, topic, "partition", "offset", recorded_at, field_digests) '
            "VALUES %s ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [(*astuple(r)[:-1], None if r.field_digests is None else Json(r.field_digests))
             for r in rows],
            fetch=True,
        )
        return {event_id for (event_id,) in inserted}


# The status query, prepared on each connection of the AsyncReader (``STATUS_PREPARE``).
STATUS_STATEMENT = "api_status"
_STATUS_SQL = """
SELECT sf.salt, sf.digest,
       d.residence, d.managing_unit, d.scheme, d.category,
       (SELECT coalesce(json_agg(json_build_array(
                   s.policy, s.status, s.residence, s.completed_by,
                   extract(epoch FROM s.completed_at), extract(epoch FROM s.recorded_at),
                   s.performed_on)
               ORDER BY s.policy COLLATE "C"), '[]'::json)
          FROM retiree_status s WHERE s.retiree_id = $1) AS statuses,
       (SELECT coalesce(json_agg(json_build_array(
                   h.effective_month, extract(epoch FROM h.placed_at))
               ORDER BY h.effective_month), '[]'::json)
          FROM open_holds h WHERE h.retiree_id = $1) AS holds,
       lo.failures, extract(epoch FROM lo.locked_until - now()) AS locked_for,
       b.failures, extract(epoch FROM b.refused_until - now()) AS refused_for
FROM (SELECT $1::text AS retiree_id) AS q
LEFT JOIN api_second_factors sf ON sf.retiree_id = q.retiree_id
LEFT JOIN api_retiree_directory d ON d.retiree_id = q.retiree_id
LEFT JOIN api_second_factor_lockouts lo
       ON lo.subject = $2 AND lo.agency = $3 AND lo.client = $4
LEFT JOIN api_agency_failure_budgets b ON b.agency = $3 AND b.client = $4
"""
# $1 retiree id, then the lockout key (lifecert/api/lockouts.py): $2 the retiree's keyed
# hash, $3 the calling agency, $4 the client address's keyed hash ('' for none); the
# budget is the agency's (client '') or, behind a public front, the client address's.
STATUS_PREPARE = f"PREPARE {STATUS_STATEMENT}(text, text, text, text) AS {_STATUS_SQL}"


@dataclass(frozen=True)
class StatusRow:
    policy: str
    status: str
    residence: str
    completed_by: str | None
    completed_at: float | None  # epoch seconds: when lifecert recorded the completion
    as_of: float
    # YYYY-MM-DD (Asia/Shanghai): when the completing certification was performed; None
    # for statuses projected before it was kept
    performed_on: str | None = None


@dataclass(frozen=True)
class StatusLookup:
    salt: bytes | None
    digest: bytes | None
    retiree: Retiree | None
    statuses: list[StatusRow]
    holds: list[tuple[str, float]]  # (effective month, placed at epoch seconds)
    # The caller's wrong second factors for this retiree (None: none on record) and the
    # seconds left of its lock (<= 0: not locked); the agency's failures in its budget
    # window and the seconds left of its refusal.
    key_failures: int | None = None
    locked_for: float = 0.0
    budget_failures: int = 0
    refused_for: float = 0.0


async def status_lookup(
    reader: AsyncReader, retiree_id: str, subject: str = "", agency: str = "",
    client: str = "",
) -> StatusLookup:
    """Everything a status answer needs, in one round trip and one snapshot (one
    statement in autocommit), by the statement prepared on ``reader``'s connections
    (``AsyncReader(dsn, prepare=[STATUS_PREPARE])``): with the lockout of the caller
    (``subject``, ``agency``, ``client``: see lifecert/api/lockouts.py)."""
    row = await reader.fetchone(
        f"EXECUTE {STATUS_STATEMENT}(%s, %s, %s, %s)", (retiree_id, subject, agency, client)
    )
    assert row is not None
    salt, dig, residence, unit, scheme, category, statuses, holds = row[:8]
    key_failures, locked_for, budget_failures, refused_for = row[8:]
    retiree = (
        Retiree(retiree_id, residence, unit, scheme, category) if residence is not None else None
    )
    return StatusLookup(
        bytes(salt) if salt is not None else None,
        bytes(dig) if dig is not None else None,
        retiree,
        [
            StatusRow(p, s, r, c, float(ca) if ca is not None else None, float(a), on)
            for p, s, r, c, ca, a, on in statuses
        ],
        [(m, float(at)) for m, at in holds],
        key_failures,
        float(locked_for or 0.0),
        budget_failures or 0,
        float(refused_for or 0.0),
    )


_LATEST_VERDICT = """
SELECT reason, judged_type, extract(epoch FROM coalesce(performed_at, recorded_at))
FROM event_verdicts
WHERE retiree_id = %s AND policy = %s AND judged_type = ANY(%s) AND reason = ANY(%s)
ORDER BY recorded_at DESC, event_id DESC LIMIT 1"""


async def latest_verdict(
    reader: AsyncReader, retiree_id: str, policy: str, types: Sequence[str],
    reasons: Sequence[str],
) -> tuple[str, str, float] | None:
    """The retiree's latest verdict of the cycle (projections' event_verdicts) among
    ``types`` and ``reasons``: (reason, judged type, when performed or else recorded, as
    epoch seconds), or None."""
    row = await reader.fetchone(_LATEST_VERDICT, (retiree_id, policy, list(types), list(reasons)))
    if row is None:
        return None
    return row[0], row[1], float(row[2])


def load_cursor(conn: Connection, agency: str) -> str | None:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT cursor FROM api_subscription_cursors WHERE agency = %s", (agency,))
        row = cur.fetchone()
        return row[0] if row else None


def save_cursor(conn: Connection, agency: str, cursor: str, at: datetime) -> None:
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO api_subscription_cursors (agency, cursor, acknowledged_at) "
            "VALUES (%s, %s, %s) ON CONFLICT (agency) DO UPDATE SET cursor = excluded.cursor, "
            "acknowledged_at = excluded.acknowledged_at",
            (agency, cursor, at),
        )


# ------------------------------------------------------------------------ audit


@dataclass(slots=True)
class AuditRow:
    at: datetime
    agency: str | None
    role: str | None
    peer: str | None
    method: str
    outcome: str
    detail: str | None = None
    items: int | None = None
    accepted: int | None = None
    duplicates: int | None = None
    rejected: int | None = None
    subject: str | None = None
    duration_ms: float | None = None


_AUDIT_FIELDS = tuple(f.name for f in fields(AuditRow))
_AUDIT_COPY = (
    "COPY api_audit (at, agency, role, peer, method, outcome, detail, items, accepted, "
    "duplicates, rejected, subject, duration_ms) FROM STDIN"
)
# The longest text an audit field keeps (a refusal message may quote a client's input).
AUDIT_TEXT_LIMIT = 1000
# SQLSTATE classes of a database that is down or busy rather than refusing the rows:
# connection exception, transaction rollback, insufficient resources, object not in
# prerequisite state (lock not available), operator intervention, system error.
_OUTAGE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})


class _Escaped(str):
    """Text escaped and capped already (by ``AuditWriter.write``)."""


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        # Escaped first: no NUL, control character or lone surrogate reaches COPY, nor a
        # tab or newline; the backslashes of the escapes are COPY's to double.
        text = value if isinstance(value, _Escaped) else escaped(value, AUDIT_TEXT_LIMIT)
        return text.replace("\\", "\\\\")
    return str(value)


def _audit_line(row: AuditRow) -> str:
    """One line of COPY's text format (cheaper than an INSERT per row at hundreds of
    calls per second)."""
    return "\t".join(_copy_field(getattr(row, name)) for name in _AUDIT_FIELDS) + "\n"


def _safe_row(row: AuditRow) -> str:
    """The row as JSON of escaped text, for a dead letter or the server log."""
    return json.dumps(
        {name: v if isinstance(v, int | _Escaped) else escaped(v, AUDIT_TEXT_LIMIT)
         for name in _AUDIT_FIELDS if (v := getattr(row, name)) is not None},
        ensure_ascii=False, separators=(",", ":"),
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()}"


def _error_text(exc: BaseException) -> str:
    """The error as stored (escaped and capped: PostgreSQL may quote the refused line)."""
    return escaped(_describe(exc), AUDIT_TEXT_LIMIT)


def is_outage(exc: BaseException, conn: Connection | None) -> bool:
    """Is ``exc`` the database being unreachable or busy (try again later), rather than
    the database refusing what was sent (trying again would fail again)?"""
    if isinstance(exc, psycopg2.InterfaceError) or conn is None or conn.closed:
        return True
    if not isinstance(exc, psycopg2.Error):
        return False
    code = exc.pgcode
    if code is None:  # no answer from the server: the connection failed
        return isinstance(exc, psycopg2.OperationalError)
    return code[:2] in _OUTAGE_CLASSES


class _Outage(Exception):
    def __init__(self, cause: BaseException, left: list[AuditRow]) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause
        self.left = left  # the rows neither written nor set aside, in order


class AuditWriter:
    """Audit rows written in batches by a background thread (every ``interval`` seconds,
    up to ``batch`` rows per transaction). ``close`` writes what is left.

    Text fields are escaped (:func:`lifecert.api.escape.escaped`) and capped, so no
    client's text can break COPY. Two kinds of failure are told apart (:func:`is_outage`):
    a database outage keeps the rows in memory (up to ``max_pending``) and retries; rows
    beyond that are counted as lost in the server log. A batch the database refuses is
    split in halves until the refused rows are found; each is set aside in
    ``api_audit_dead_letters`` with the error, the others are written. The writer never
    retries a refused row, so one row cannot hold up those after it.

    ``write`` only appends to a deque (atomic under the GIL): it never wakes the writer
    thread, which would then compete with the event loop for the GIL on every call. The
    writer wakes on its own every ``interval`` and takes what has accumulated."""

    def __init__(
        self, dsn: str, *, interval: float = 0.2, batch: int = 1000, max_pending: int = 100_000,
        retry_seconds: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._interval = interval
        self._batch = batch
        self._max_pending = max_pending
        self._retry_seconds = retry_seconds
        self._rows: deque[AuditRow] = deque()
        self._stop = threading.Event()
        self._written = 0
        self._set_aside = 0
        self._lost = 0
        self._outages = 0
        self._thread = threading.Thread(target=self._run, name="api-audit", daemon=True)
        self._thread.start()

    def write(self, row: AuditRow) -> None:
        if len(self._rows) >= self._max_pending:
            self._lost += 1
            if self._lost in (1, 100, 10_000):
                log.error("audit queue full: %d audit rows lost so far", self._lost)
            return
        detail = row.detail
        if detail is not None and len(detail) > AUDIT_TEXT_LIMIT:
            # Cut now: a pending row must not hold a client's megabytes in memory.
            row.detail = _Escaped(escaped(detail, AUDIT_TEXT_LIMIT))
        self._rows.append(row)

    @property
    def written(self) -> int:
        return self._written

    @property
    def set_aside(self) -> int:
        """Rows the database refused, kept in ``api_audit_dead_letters``."""
        return self._set_aside

    @property
    def lost(self) -> int:
        return self._lost

    @property
    def outages(self) -> int:
        """Writes that failed because the database was unreachable (and were retried)."""
        return self._outages

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _take(self) -> list[AuditRow]:
        rows = self._rows
        taken: list[AuditRow] = []
        with contextlib.suppress(IndexError):
            while len(taken) < self._batch:
                taken.append(rows.popleft())
        return taken

    def _run(self) -> None:
        conn: Connection | None = None
        pending: list[AuditRow] = []
        stopping = False
        while True:
            if not pending and len(self._rows) < self._batch and not stopping:
                # Gather for ``interval``: one transaction (one WAL flush) per batch, not
                # per call.
                stopping = self._stop.wait(self._interval)
            stopping = stopping or self._stop.is_set()
            if not pending:
                pending = self._take()
            if pending:
                try:
                    if conn is None or conn.closed:
                        conn = self._connect(pending)
                    self._flush(conn, pending)
                    pending = []
                except _Outage as outage:
                    self._outages += 1
                    pending = outage.left
                    log.warning("audit rows not written yet (database unavailable: %s); "
                                "retrying", _describe(outage.cause))
                    if conn is not None:
                        with contextlib.suppress(psycopg2.Error):
                            conn.close()
                    conn = None
                    if stopping:
                        log.error("%d audit rows lost at shutdown",
                                  len(pending) + len(self._rows))
                        self._lost += len(pending) + len(self._rows)
                        break
                    self._stop.wait(self._retry_seconds)
            if stopping and not pending and not self._rows:
                break
        if conn is not None:
            conn.close()

    def _connect(self, pending: list[AuditRow]) -> Connection:
        try:
            return psycopg2.connect(self._dsn, **_connect_options("lifecert-api-audit"))
        except psycopg2.Error as exc:
            raise _Outage(exc, pending) from exc

    def _flush(self, conn: Connection, rows: list[AuditRow]) -> None:
        """Write ``rows``, or set aside those the database refuses. Raises ``_Outage``
        (with the rows left) when the database cannot be reached."""
        chunks: deque[list[AuditRow]] = deque([rows])
        while chunks:
            chunk = chunks.popleft()
            try:
                with conn, conn.cursor() as cur:
                    cur.copy_expert(_AUDIT_COPY, io.StringIO("".join(map(_audit_line, chunk))))
            except Exception as exc:
                if is_outage(exc, conn):
                    raise _Outage(exc, [*chunk, *itertools.chain.from_iterable(chunks)]) \
                        from exc
                if len(chunk) > 1:  # which rows? halves, first half first
                    mid = len(chunk) // 2
                    chunks.extendleft((chunk[mid:], chunk[:mid]))
                    continue
                try:
                    self._dead_letter(conn, chunk[0], exc)
                except Exception as again:
                    if is_outage(again, conn):
                        raise _Outage(again, [*chunk, *itertools.chain.from_iterable(chunks)]) \
                            from again
                    # Refused as a dead letter too: the server log is the last place.
                    self._lost += 1
                    log.error("audit row refused by the database (%s) and not set aside "
                              "(%s): %s", _describe(exc), _describe(again),
                              _safe_row(chunk[0]))
            else:
                self._written += len(chunk)

    def _dead_letter(self, conn: Connection, row: AuditRow, exc: BaseException) -> None:
        sqlstate = getattr(exc, "pgcode", None)
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO api_audit_dead_letters (sqlstate, error, row) "
                "VALUES (%s, %s, %s)",
                (sqlstate, _error_text(exc), _safe_row(row)),
            )
        self._set_aside += 1
        log.error("an audit row was refused by the database and set aside in "
                  "api_audit_dead_letters: %s", _describe(exc))
