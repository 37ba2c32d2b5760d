"""Schema migrations of the API's own tables: ``lifecert/api/migrations/NNNN_name.sql``,
applied in order, each once, recorded in ``api_schema_migrations`` — the same rules as the
projections' migrations (projections/migrate.py), as a separate set: the read models and
the API evolve independently.

``migrate`` applies the projections' migrations first (the API reads ``retiree_status``
and ``open_holds``), then its own, under an advisory lock of its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg2.extensions

from projections.migrate import MigrationError
from projections.migrate import migrate as migrate_projections

# pg_advisory_xact_lock key of the API's migration runs ("lifecert" + 3).
API_MIGRATION_LOCK = 0x6C69666563657203
TABLE = "api_schema_migrations"

_FILE_NAME = re.compile(r"(?P<version>[0-9]{4})_(?P<name>[A-Za-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available() -> list[Migration]:
    folder = resources.files("lifecert.api") / "migrations"
    found: dict[str, Migration] = {}
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            continue
        version = match["version"]
        if version in found:
            raise MigrationError(f"two API migrations numbered {version}")
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def migrate(conn: psycopg2.extensions.connection) -> list[Migration]:
    """Apply the projections' pending migrations, then the API's; returns the API
    migrations applied now."""
    migrate_projections(conn)
    migrations = available()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (API_MIGRATION_LOCK,))
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (version text PRIMARY KEY, name text NOT NULL, "
            "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute(f"SELECT version, checksum FROM {TABLE}")
        recorded = dict(cur.fetchall())
        pending = []
        for migration in migrations:
            if migration.version not in recorded:
                pending.append(migration)
            elif recorded[migration.version] != migration.checksum:
                raise MigrationError(
                    f"API migration {migration.version}_{migration.name}.sql has changed since "
                    "it was applied; add a new migration instead of editing an applied one"
                )
        for migration in pending:
            cur.execute(migration.sql)
            cur.execute(
                f"INSERT INTO {TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    return pending
