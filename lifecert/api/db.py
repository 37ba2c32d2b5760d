"""PostgreSQL for the API server: a pool of connections used from worker threads (psycopg2
blocks; the asyncio loop never waits on it), the queries of the servicers, and the audit
writer, which batches rows in the background so that auditing costs a call nothing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.pool
from psycopg2.extras import execute_values

from lifecert.api.authz import Retiree

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
    query takes a connection from the pool for its duration."""

    def __init__(self, dsn: str, size: int = 4) -> None:
        self.dsn = dsn
        self.size = size
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._opened = 0

    async def _connect(self) -> Connection:
        conn = psycopg2.connect(self.dsn, async_=True, **_connect_options())
        await _ready(conn)
        return conn

    async def fetchone(self, sql: str, params: Any) -> tuple[Any, ...] | None:
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            try:
                conn = await self._connect()
            except BaseException:
                self._opened -= 1
                raise
        else:
            conn = await self._idle.get()
        try:
            cur = conn.cursor()
            cur.execute(sql, params)
            await _ready(conn)
            row = cur.fetchone()
            cur.close()
        except BaseException:
            # A failed or cancelled query leaves the connection in an unknown state.
            self._opened -= 1
            with contextlib.suppress(Exception):
                conn.close()
            raise
        self._idle.put_nowait(conn)
        return row

    def close(self) -> None:
        while not self._idle.empty():
            with contextlib.suppress(Exception):
                self._idle.get_nowait().close()


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


def _connect_options() -> dict[str, Any]:
    return {
        "application_name": "lifecert-api",
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
class AcceptedRow:
    event_id: str
    content_digest: str
    recorded_at: datetime


def accepted(conn: Connection, event_ids: Sequence[str]) -> dict[str, AcceptedRow]:
    if not event_ids:
        return {}
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT event_id, content_digest, recorded_at FROM api_accepted_events "
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


def record_accepted(conn: Connection, rows: Sequence[NewAccepted]) -> set[str]:
    """Insert the rows; returns the event ids inserted now (others were there already:
    a concurrent submission of the same items won)."""
    if not rows:
        return set()
    with conn, conn.cursor() as cur:
        inserted = execute_values(
            cur,
            "INSERT INTO api_accepted_events (event_id, agency, type, idempotency_key, "
            'content_digest, topic, "partition", "offset", recorded_at) VALUES %s '
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [astuple(r) for r in rows],
            fetch=True,
        )
        return {event_id for (event_id,) in inserted}


_STATUS_SQL = """
SELECT sf.salt, sf.digest,
       d.residence, d.managing_unit, d.scheme, d.category,
       (SELECT coalesce(json_agg(json_build_array(
                   s.policy, s.status, s.residence, s.completed_by,
                   extract(epoch FROM s.completed_at), extract(epoch FROM s.recorded_at))
               ORDER BY s.policy COLLATE "C"), '[]'::json)
          FROM retiree_status s WHERE s.retiree_id = %(id)s) AS statuses,
       (SELECT coalesce(json_agg(json_build_array(
                   h.effective_month, extract(epoch FROM h.placed_at))
               ORDER BY h.effective_month), '[]'::json)
          FROM open_holds h WHERE h.retiree_id = %(id)s) AS holds
FROM (SELECT %(id)s::text AS retiree_id) AS q
LEFT JOIN api_second_factors sf ON sf.retiree_id = q.retiree_id
LEFT JOIN api_retiree_directory d ON d.retiree_id = q.retiree_id
"""


@dataclass(frozen=True)
class StatusRow:
    policy: str
    status: str
    residence: str
    completed_by: str | None
    completed_at: float | None  # epoch seconds
    as_of: float


@dataclass(frozen=True)
class StatusLookup:
    salt: bytes | None
    digest: bytes | None
    retiree: Retiree | None
    statuses: list[StatusRow]
    holds: list[tuple[str, float]]  # (effective month, placed at epoch seconds)


async def status_lookup(reader: AsyncReader, retiree_id: str) -> StatusLookup:
    """Everything a status answer needs, in one round trip and one snapshot (one
    statement in autocommit)."""
    row = await reader.fetchone(_STATUS_SQL, {"id": retiree_id})
    assert row is not None
    salt, dig, residence, unit, scheme, category, statuses, holds = row
    retiree = (
        Retiree(retiree_id, residence, unit, scheme, category) if residence is not None else None
    )
    return StatusLookup(
        bytes(salt) if salt is not None else None,
        bytes(dig) if dig is not None else None,
        retiree,
        [
            StatusRow(p, s, r, c, float(ca) if ca is not None else None, float(a))
            for p, s, r, c, ca, a in statuses
        ],
        [(m, float(at)) for m, at in holds],
    )


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
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).translate(_COPY_ESCAPES)


def _audit_line(row: AuditRow) -> str:
    """One line of COPY's text format (cheaper than an INSERT per row at hundreds of
    calls per second)."""
    return "\t".join(_copy_field(getattr(row, name)) for name in _AUDIT_FIELDS) + "\n"


class AuditWriter:
    """Audit rows written in batches by a background thread (every ``interval`` seconds
    or ``batch`` rows). ``close`` writes what is left. A database outage keeps the rows
    in memory (up to ``max_pending``) and retries; rows beyond that are counted as lost
    in the server log."""

    def __init__(
        self, dsn: str, *, interval: float = 0.2, batch: int = 1000, max_pending: int = 100_000
    ) -> None:
        self._dsn = dsn
        self._interval = interval
        self._batch = batch
        self._queue: queue.Queue[AuditRow] = queue.Queue(maxsize=max_pending)
        self._stop = threading.Event()
        self._written = 0
        self._lost = 0
        self._thread = threading.Thread(target=self._run, name="api-audit", daemon=True)
        self._thread.start()

    def write(self, row: AuditRow) -> None:
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._lost += 1
            if self._lost in (1, 100, 10_000):
                log.error("audit queue full: %d audit rows lost so far", self._lost)

    @property
    def written(self) -> int:
        return self._written

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        conn: Connection | None = None
        pending: list[AuditRow] = []
        while True:
            stopping = self._stop.is_set()
            # Gather for up to ``interval`` after the first row: one transaction (one WAL
            # flush) per batch, not per call.
            deadline = time.monotonic() + (0.0 if stopping else self._interval)
            try:
                while len(pending) < self._batch:
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        pending.append(self._queue.get_nowait())
                    else:
                        pending.append(self._queue.get(timeout=wait))
            except queue.Empty:
                pass
            if pending:
                try:
                    if conn is None or conn.closed:
                        conn = psycopg2.connect(self._dsn, **_connect_options())
                    with conn, conn.cursor() as cur:
                        cur.copy_expert(_AUDIT_COPY,
                                        io.StringIO("".join(map(_audit_line, pending))))
                    self._written += len(pending)
                    pending = []
                except psycopg2.Error as exc:
                    log.warning("audit rows not written yet (%s); retrying",
                                type(exc).__name__)
                    if conn is not None:
                        with contextlib.suppress(psycopg2.Error):
                            conn.close()
                    conn = None
                    if stopping:
                        log.error("%d audit rows lost at shutdown", len(pending))
                        break
                    time.sleep(1.0)
            if stopping and self._queue.empty() and not pending:
                break
        if conn is not None:
            conn.close()
