"""Schema migrations of the API's own tables: ``lifecert/api/migrations/NNNN_name.sql``,
applied in order, each once, recorded in ``api_schema_migrations`` — the same rules as the
projections' migrations (projections/migrate.py), as a separate set: the read models and
the API evolve independently.

``migrate`` applies the projections' migrations first (the API reads ``retiree_status``
and ``open_holds``), then its own, under an advisory lock of its own.
"""

from __future__ import annotations

import psycopg2.extensions

from lifecert.migrations import Migration, MigrationSet
from projections.migrate import migrate as migrate_projections

# pg_advisory_xact_lock key of the API's migration runs ("lifecert" + 3).
API_MIGRATION_LOCK = 0x6C69666563657203
TABLE = "api_schema_migrations"
API = MigrationSet("lifecert.api", TABLE, API_MIGRATION_LOCK, "API migration",
                   "lifecert api migrate")


def available() -> list[Migration]:
    return API.available()


def migrate(conn: psycopg2.extensions.connection) -> list[Migration]:
    """Apply the projections' pending migrations, then the API's; returns the API
    migrations applied now."""
    migrate_projections(conn)
    return API.migrate(conn)
