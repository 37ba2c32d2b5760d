"""The simulated pension master system: a PostgreSQL database (schema.sql) whose write
functions change the business tables and write the transactional outbox in one
transaction, with a ``pg_notify``.

    python -m lifecert_dev.partners.pension_master.simulator init  --dsn DSN
    python -m lifecert_dev.partners.pension_master.simulator apply --dsn DSN events.jsonl \
        [--batch N]
    python -m lifecert_dev.partners.pension_master.simulator refuse --dsn DSN  # outage
    python -m lifecert_dev.partners.pension_master.simulator accept --dsn DSN  # end of the outage

``apply`` plays lifecert interchange events (a replay file, e.g. `lifecert generate`'s) into
the master as the master's own changes: a RetireeEnrolled becomes an enrolment, a
PensionAmountChanged an amount change, at the event's ``recorded_at``; lines of other
types are skipped (the master does not hold them) and counted. ``--batch 1`` (default)
commits each change in its own transaction; larger batches go faster.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from importlib.resources import files
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from connectors.pension_master import codes
from lifecert.events.interchange import MalformedEvent, parse_event

CARRIED = ("RetireeEnrolled", "PensionAmountChanged")
_TO_SCHEME = codes.inverse(codes.SCHEME)
_TO_CATEGORY = codes.inverse(codes.CATEGORY)
_TO_RESIDENCE = codes.inverse(codes.RESIDENCE)
_TO_DISTRICT = codes.inverse(codes.DISTRICT)


def schema_sql() -> str:
    return files("connectors.pension_master").joinpath("schema.sql").read_text("utf-8")


def connect(dsn: str) -> Any:
    return psycopg2.connect(dsn, connect_timeout=10, application_name="pension-master-sim")


def init(dsn: str, connector_role: str | None = None) -> None:
    """Create (or bring up to date) the master's schema in the database ``dsn``; with
    ``connector_role``, close the database to PUBLIC and let that role (lifecert's
    connector) connect and read the outbox, and nothing else."""
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SET client_min_messages = warning")
        cur.execute(schema_sql())
        if connector_role is not None:
            role = sql.Identifier(connector_role)
            cur.execute("SELECT current_database()")
            database = sql.Identifier(cur.fetchone()[0])
            for statement in (
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA master TO {role}",
                "GRANT SELECT ON master.outbox TO {role}",
            ):
                cur.execute(sql.SQL(statement).format(db=database, role=role))
    conn.close()


def master_change(event: Mapping[str, Any]) -> dict[str, Any]:
    """The master-system change that carries ``event`` (a RetireeEnrolled or
    PensionAmountChanged in interchange form). Raises MalformedEvent for an invalid event
    or one of another type."""
    parsed = parse_event(dict(event), allowed=CARRIED)
    at = parsed["recorded_at"].isoformat()
    if parsed["type"] == "PensionAmountChanged":
        return {"op": "change_amount", "at": at, "person_no": parsed["retiree_id"],
                "amount_fen": parsed["monthly_amount_fen"],
                "effective_month": parsed["effective_month"].replace("-", "")}
    district = parsed["district"]
    return {"op": "enroll", "at": at, "record": {
        "person_no": parsed["retiree_id"],
        "full_name": parsed["name"],
        "birth_date": _yyyymmdd(parsed["birth_date"]),
        "insurance_type": _TO_SCHEME[parsed["scheme"]],
        "personnel_class": _TO_CATEGORY[parsed["category"]],
        "residence_type": _TO_RESIDENCE[parsed["residence"]],
        "district_code": None if district is None else _TO_DISTRICT[district],
        "country_code": parsed["country"],
        "start_date": _yyyymmdd(parsed["pension_start"]),
        "monthly_amount_fen": parsed["monthly_amount_fen"],
        "disability_flag": "1" if parsed["disabled"] else "0",
        "unit_name": parsed["managing_unit"],
    }}


def _yyyymmdd(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def apply_changes(conn: Any, changes: Iterable[Mapping[str, Any]], batch: int = 1) -> int:
    """Apply master changes through ``master.apply_changes``, ``batch`` per transaction,
    committing each; returns how many were applied. If ``changes`` raises
    MalformedEvent, every change before the bad one is applied first."""
    done = 0
    chunk: list[Mapping[str, Any]] = []
    with conn.cursor() as cur:

        def send() -> None:
            nonlocal done, chunk
            cur.execute("SELECT master.apply_changes(%s::jsonb)",
                        (json.dumps(chunk, ensure_ascii=False),))
            conn.commit()
            done += len(chunk)
            chunk = []

        try:
            for change in changes:
                chunk.append(change)
                if len(chunk) >= batch:
                    send()
        except MalformedEvent:
            if chunk:
                send()
            raise
        if chunk:
            send()
    return done


def changes_of_file(path: Path, skipped: dict[str, int]) -> Iterator[dict[str, Any]]:
    """The master changes of a JSON-lines event file (``-``: stdin); other event types
    are counted in ``skipped``. Raises MalformedEvent naming the line."""
    with path.open("rb") if str(path) != "-" else sys.stdin.buffer as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as exc:
                raise MalformedEvent(f"not valid JSON: {exc}", line=number) from None
            kind = event.get("type") if isinstance(event, dict) else None
            if isinstance(kind, str) and kind not in CARRIED:
                skipped[kind] = skipped.get(kind, 0) + 1
                continue
            try:
                yield master_change(event)
            except MalformedEvent as exc:
                raise exc.at_line(number) from None


def set_connections(dsn: str, allowed: bool, admin_db: str = "postgres") -> None:
    """Let the master database accept connections again, or refuse them and end the
    sessions it has (an outage of the master; the cluster itself keeps running)."""
    name = psycopg2.extensions.parse_dsn(dsn).get("dbname")
    if not name:
        raise ValueError(f"the DSN names no database (dbname): {dsn!r}")
    admin = psycopg2.connect(psycopg2.extensions.make_dsn(dsn, dbname=admin_db),
                             connect_timeout=10)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            ident = psycopg2.extensions.quote_ident(name, cur)
            cur.execute(f"ALTER DATABASE {ident} ALLOW_CONNECTIONS {str(allowed).lower()}")
            if not allowed:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    finally:
        admin.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lifecert_dev.partners.pension_master.simulator",
        description="The simulated Foshan pension master system (a PostgreSQL database).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("init", "create the master's schema in the database"),
                       ("refuse", "outage: refuse connections, end current sessions"),
                       ("accept", "end the outage: accept connections again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dsn", required=True, help="the master database")
        if name == "init":
            p.add_argument("--connector-role", help="the PostgreSQL role of lifecert's "
                           "connector: may connect and read master.outbox, nothing else")
        else:
            p.add_argument("--admin-db", default="postgres",
                           help="database to connect to for ALTER DATABASE (default postgres)")
    apply = sub.add_parser("apply", help="apply the enrolments and amount changes of an "
                                         "event file (JSON lines, - for stdin)")
    apply.add_argument("--dsn", required=True, help="the master database")
    apply.add_argument("file", type=Path)
    apply.add_argument("--batch", type=int, default=1,
                       help="changes per transaction (default 1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            init(args.dsn, args.connector_role)
        elif args.command in ("refuse", "accept"):
            set_connections(args.dsn, args.command == "accept", args.admin_db)
        else:
            if args.batch < 1:
                parser.error("--batch must be 1 or more")
            skipped: dict[str, int] = {}
            conn = connect(args.dsn)
            try:
                done = apply_changes(conn, changes_of_file(args.file, skipped), args.batch)
            finally:
                conn.close()
            others = ", ".join(f"{n} {t}" for t, n in sorted(skipped.items())) or "none"
            print(f"applied {done} changes; skipped events the master does not hold: {others}")
    except MalformedEvent as exc:
        print(f"error: {args.file} {exc}; the lines before it were applied, fix the line "
              f"and apply the rest", file=sys.stderr)
        return 1
    except psycopg2.Error as exc:
        print(f"error: the master database refused: {str(exc).strip()}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
