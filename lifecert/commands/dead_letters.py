"""``lifecert dead-letters purge``: the dead letters' retention period, off the broker.

    lifecert dead-letters purge                      # the topic's retention (30 days)
    lifecert dead-letters purge --days 7 --dsn postgresql://...api

The dead-letter topic deletes its records after its ``retention.ms`` (topics.toml). This
applies the same period to what lies elsewhere: rows of the dead-letter tables
(``api_directory_dead_letters``, ``api_audit_dead_letters``) set aside before it are
deleted, and the keys that sealed the raw records of dead letters of the months before it
are destroyed, so that a copy kept anywhere becomes unreadable. Run it daily (cron).
Exit codes: 0 done; 1 a database cannot be reached; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
from psycopg2 import sql

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE
from lifecert.datakeys import KeyStoreError
from lifecert.events.personal import DEAD_LETTERS_SUBJECT
from lifecert.keystore.postgres import KEYS_DSN_ENV, PostgresKeyStore, resolve_keys_dsn
from lifecert.pipeline.topics import DEAD_LETTERS, layout

# Tables of dead letters and the column saying when each row was set aside.
DEAD_LETTER_TABLES: tuple[tuple[str, str], ...] = (
    ("api_directory_dead_letters", "set_aside_at"),
    ("api_audit_dead_letters", "set_aside_at"),
)


def retention_days() -> float:
    """The dead-letter topic's retention (topics.toml), in days."""
    ms = int(layout("")[DEAD_LETTERS].config.get("retention.ms", "-1"))
    if ms < 0:
        raise ValueError("topics.toml gives the dead-letter topic no retention.ms")
    return ms / 86_400_000


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dead-letters", help="the dead letters' retention: purge what is older",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    purge = sub.add_parser(
        "purge", help="delete dead-letter rows and destroy raw-record keys past retention",
        description=__doc__.split("\n\n")[2],
    )
    purge.add_argument("--days", type=float,
                       help="retention in days (default: the dead-letter topic's, 30)")
    purge.add_argument("--dsn", metavar="DSN", action="append",
                       help="a database with dead-letter tables (repeatable; default: "
                            "$LIFECERT_POSTGRES_DSN, else the local stack)")
    purge.add_argument("--keys-dsn", metavar="DSN",
                       help="the key store (default: $LIFECERT_KEYS_DSN, else the first "
                            "--dsn, else the local stack's, as lifecert_keystore)")
    purge.set_defaults(func=run)


def purge_tables(dsn: str, before: datetime) -> dict[str, int]:
    """Delete the rows of the dead-letter tables of ``dsn`` set aside before ``before``."""
    deleted: dict[str, int] = {}
    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="lifecert-purge")
    try:
        with conn, conn.cursor() as cur:
            for table, column in DEAD_LETTER_TABLES:
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                row = cur.fetchone()
                assert row is not None  # a SELECT without FROM returns one row
                if not row[0]:
                    continue
                cur.execute(sql.SQL("DELETE FROM {} WHERE {} < %s").format(
                    sql.Identifier(table), sql.Identifier(column)), (before,))
                deleted[table] = cur.rowcount
    finally:
        conn.close()
    return deleted


def purge(dsns: list[str], keys_dsn: str, days: float,
          now: datetime | None = None) -> tuple[dict[str, int], list[str]]:
    """Rows deleted per table (summed over ``dsns``) and the key subjects destroyed."""
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    deleted: dict[str, int] = {}
    for dsn in dsns:
        for table, n in purge_tables(dsn, before).items():
            deleted[table] = deleted.get(table, 0) + n
    store = PostgresKeyStore(keys_dsn, None)
    try:
        # A month's key goes once the whole month is older than the retention.
        destroyed = store.destroy_older(DEAD_LETTERS_SUBJECT, f"{before:%Y-%m}")
    finally:
        store.close()
    return deleted, destroyed


def run(args: argparse.Namespace) -> int:
    from lifecert.endpoints import postgres_dsn

    try:
        days = retention_days() if args.days is None else args.days
    except ValueError as exc:
        print(f"lifecert dead-letters purge: {exc}; give --days", file=sys.stderr)
        return EXIT_USAGE
    if days <= 0:
        print("lifecert dead-letters purge: --days must be above 0", file=sys.stderr)
        return EXIT_USAGE
    dsns = args.dsn or [postgres_dsn(None)]
    # no --dsn: the local stack's key store, as its own role
    keys_dsn = (args.keys_dsn or os.environ.get(KEYS_DSN_ENV)
                or (dsns[0] if args.dsn else resolve_keys_dsn()))
    try:
        deleted, destroyed = purge(dsns, keys_dsn, days)
    except (KeyStoreError, psycopg2.Error) as exc:
        print(f"lifecert dead-letters purge: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED
    rows = ", ".join(f"{t}: {n}" for t, n in deleted.items()) or "no dead-letter tables"
    keys = ", ".join(s[len(DEAD_LETTERS_SUBJECT):] for s in destroyed) or "none"
    print(f"retention {days:g} days: rows deleted ({rows}); raw-record keys destroyed for "
          f"months: {keys}")
    return 0
