"""The pension master system connector: its transactional outbox -> RetireeEnrolled and
PensionAmountChanged on the events topic.

The master system writes an outbox row (``master.outbox``, see schema.sql) in the same
transaction as each business change. This connector reads those rows with psycopg2, maps
them (mapping.py) and lets the runner publish them; LISTEN on channel ``master_outbox``
wakes it when the master commits, and it polls every ``poll_interval`` seconds anyway (a
notification is lost while the connection is down).

**Order, and why the checkpoint is (xid, id) rather than the outbox id.** Outbox ids come
from a sequence, handed out when a row is inserted, but transactions commit in any order:
a transaction that took id 10 may commit after one that took id 11. A reader that has seen
11 and stored "after 11" would skip 10 for ever. So every outbox row also records the
writing transaction's id (``xid``, a 64-bit ``xid8`` that never wraps) and the connector

- reads only rows whose ``xid`` is below ``pg_snapshot_xmin(pg_current_snapshot())``, the
  oldest transaction still running in the cluster: every transaction below it has ended,
  and every transaction that starts writing later gets a larger xid, so the set of rows
  below that bound is final — no row can ever appear in it after it was read;
- reads them in ``(xid, id)`` order after the checkpoint ``{"xid": X, "id": N}``.

Together: nothing is skipped, and each row is read at the same place on every re-read (the
runner's event ids come from the outbox id, so a re-read publishes the same ids). The
price is latency, not loss: a row waits until every transaction older than its own has
ended, anywhere in the cluster (keep the master's transactions short). The order is the
order in which the master's transactions began writing, which keeps a person's changes in
order: a change to a person can only be written once the enrolment is committed (or is
in the same transaction, where ids keep the order).
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Sequence
from typing import Any

import psycopg2
import psycopg2.extensions

from connectors.pension_master.mapping import OutboxRow, to_events
from connectors.sdk.base import Event, PartnerRecord, Position, SourceConnector
from connectors.sdk.errors import ConfigError, PartnerUnavailable

CHANNEL = "master_outbox"

_READ = """
    SELECT id, xid::text, aggregate_id, event_kind, payload::text, occurred_at
      FROM master.outbox
     WHERE (xid, id) > (%s::text::xid8, %s)
       AND xid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY xid, id
     LIMIT %s
"""
_LAG = "SELECT count(*) FROM master.outbox WHERE (xid, id) > (%s::text::xid8, %s)"


class PensionMasterSource(SourceConnector):
    kind = "pension-master"
    description = ("Foshan pension master system (PostgreSQL transactional outbox): "
                   "enrolments and pension amount changes")
    source_agency = "FOSHAN-PENSION-MASTER"

    def _configure(self, settings: dict[str, Any]) -> None:
        self.dsn: str = self._setting(settings, "dsn", str)
        self.password: str | None = self._setting(settings, "password", str, None)
        self.idle_interval = self._setting(settings, "poll_interval", float, 1.0)
        self.connect_timeout: int = self._setting(settings, "connect_timeout", int, 5)
        if self.idle_interval <= 0:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting "
                              f"'poll_interval' must be > 0 seconds, got {self.idle_interval}")
        try:
            params = psycopg2.extensions.parse_dsn(self.dsn)
        except psycopg2.ProgrammingError as exc:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): setting 'dsn' is not "
                              f"a PostgreSQL connection string: {exc}") from None
        # Where the master is, for messages: never the password.
        self.where = (f"database {params.get('dbname', '?')} on "
                      f"{params.get('host', 'localhost')}:{params.get('port', 5432)}")
        self._reader: Any = None
        self._listener: Any = None

    # -- connections ---------------------------------------------------------------
    def _connect(self) -> Any:
        extra: dict[str, Any] = {} if self.password is None else {"password": self.password}
        try:
            conn = psycopg2.connect(
                self.dsn, connect_timeout=self.connect_timeout,
                application_name=f"lifecert-connector-{self.name}"[:63],
                options="-c timezone=UTC -c default_transaction_read_only=on",
                keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
                **extra)
        except psycopg2.Error as exc:
            raise self._unavailable("cannot connect to", exc) from None
        conn.autocommit = True
        return conn

    def _unavailable(self, doing: str, exc: BaseException) -> PartnerUnavailable:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return PartnerUnavailable(f"pension master: {doing} {self.where}: {text}")

    def _open(self) -> None:
        self._close()
        try:
            self._reader = self._connect()
            self._listener = self._connect()
            with self._listener.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
        except psycopg2.Error as exc:
            self._close()
            raise self._unavailable("cannot LISTEN on", exc) from None
        except PartnerUnavailable:
            self._close()  # the runner calls _close only after a successful _open
            raise

    def _close(self) -> None:
        for conn in (self._reader, self._listener):
            if conn is not None:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
        self._reader = self._listener = None

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._reader is None:
            raise PartnerUnavailable(f"pension master: not connected to {self.where}")
        try:
            with self._reader.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        except psycopg2.ProgrammingError as exc:
            raise ConfigError(
                f"connector {self.name!r} ({self.kind}): {self.where} does not hold the "
                f"master's outbox as expected ({str(exc).strip().splitlines()[0]}); point "
                f"'dsn' at the master database, or run `python -m "
                f"lifecert_dev.partners.pension_master.simulator init --dsn ...` for the simulator"
            ) from None
        except psycopg2.Error as exc:
            raise self._unavailable("lost", exc) from None

    # -- the hooks -----------------------------------------------------------------
    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        xid, last_id = self._after(position)
        rows = self._query(_READ, (str(xid), last_id, max_records))
        records = []
        for id_, xid_text, aggregate_id, event_kind, payload, occurred_at in rows:
            row = OutboxRow(id_, int(xid_text), aggregate_id, event_kind, payload, occurred_at)
            records.append(PartnerRecord(key=str(id_), position={"xid": row.xid, "id": id_},
                                         raw=row.raw(), data=row))
        return records

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        return to_events(record.data)

    def _wait(self, timeout: float) -> None:
        """Until the master notifies a commit, at most ``timeout`` s. Never raises: a
        broken listener is dropped (the next poll finds out and the runner retries)."""
        conn = self._listener
        if conn is None:
            time.sleep(timeout)
            return
        start = time.monotonic()
        try:
            if not conn.notifies:
                ready, _, _ = select.select([conn], [], [], timeout)
                if ready:
                    conn.poll()
            conn.notifies.clear()
        except (psycopg2.Error, OSError, ValueError):
            self.log.warning("pension master: LISTEN connection to %s lost; polling",
                             self.where)
            self._listener = None
            time.sleep(max(0.0, timeout - (time.monotonic() - start)))

    def _lag(self, position: Position | None) -> int | None:
        xid, last_id = self._after(position)
        return int(self._query(_LAG, (str(xid), last_id))[0][0])

    def _check(self) -> list[str]:
        try:
            self._open()
            found = self._query(
                "SELECT to_regclass('master.outbox') IS NOT NULL AND EXISTS ("
                " SELECT 1 FROM information_schema.columns WHERE table_schema = 'master'"
                " AND table_name = 'outbox' AND column_name = 'xid')", ())
        except PartnerUnavailable as exc:
            return [f"{self.name}: {exc}; check 'dsn' and that the database accepts "
                    f"connections"]
        finally:
            self._close()
        if not found[0][0]:
            return [f"{self.name}: {self.where} has no table master.outbox with an xid column; "
                    f"point 'dsn' at the master database, or run `python -m "
                    f"lifecert_dev.partners.pension_master.simulator init --dsn ...` for "
                    f"the simulator (lifecert-dev)"]
        return []

    def _after(self, position: Position | None) -> tuple[int, int]:
        if position is None:
            return 0, 0
        if (isinstance(position, dict) and set(position) == {"xid", "id"}
                and all(type(v) is int for v in position.values())):
            return position["xid"], position["id"]
        raise ConfigError(
            f"connector {self.name!r} ({self.kind}): checkpoint {position!r} is not "
            f'{{"xid": <int>, "id": <int>}}; was the instance name used by another kind of '
            f"connector? Give this instance a new name to start from the beginning")
