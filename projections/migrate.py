"""The read models' schema migrations (``projections/migrations``, recorded in
``schema_migrations``): a :class:`~lifecert.migrations.MigrationSet`, applied as the
schema's owner by ``lifecert projections migrate`` (lifecert/migrations.py says how)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2.extensions

from lifecert.migrations import Migration, MigrationSet

# pg_advisory_xact_lock key of the migration runs ("lifecert" + 1).
MIGRATION_LOCK = 0x6C69666563657201

READ_MODELS = MigrationSet("projections", "schema_migrations", MIGRATION_LOCK)


def available() -> list[Migration]:
    """The read models' migrations (``projections/migrations``), in order."""
    return READ_MODELS.available()


def migrate(
    conn: psycopg2.extensions.connection,
    log: Callable[[str], None] | None = None,
) -> list[Migration]:
    """Apply the read models' pending migrations; returns those applied now."""
    return READ_MODELS.migrate(conn, log)


def applied_versions(conn: psycopg2.extensions.connection) -> list[str]:
    """Versions recorded in ``schema_migrations`` (empty when it does not exist yet)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if row is None or not row[0]:
            return []
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [version for (version,) in cur.fetchall()]
