"""Schema migrations: ``migrations/NNNN_name.sql`` applied in order of their number, each
once, recorded in ``schema_migrations`` (version, name, sha-256 of the file, when).

``migrate`` is idempotent and safe to run concurrently (an advisory lock serialises the
runs); all pending migrations apply in one transaction, so a failing one leaves the
schema as it was. A recorded migration whose file has changed since is an error: write a
new migration instead of editing an applied one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import psycopg2.extensions

# pg_advisory_xact_lock key of the migration runs ("lifecert" + 1).
MIGRATION_LOCK = 0x6C69666563657201

_FILE_NAME = re.compile(r"(?P<version>[0-9]{4})_(?P<name>[A-Za-z0-9_]+)\.sql")


class MigrationError(RuntimeError):
    """The migrations cannot be applied; the message says which and why."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def available() -> list[Migration]:
    """The migrations shipped in ``projections/migrations``, in order."""
    folder = resources.files("projections") / "migrations"
    found: dict[str, Migration] = {}
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None:
            continue
        version = match["version"]
        if version in found:
            raise MigrationError(
                f"two migrations numbered {version}: {found[version].name} and {match['name']}"
            )
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def migrate(
    conn: psycopg2.extensions.connection,
    log: Callable[[str], None] | None = None,
) -> list[Migration]:
    """Apply the pending migrations; returns those applied now (none when up to date)."""
    migrations = available()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cur.execute(_CREATE_TABLE)
        cur.execute("SELECT version, name, checksum FROM schema_migrations")
        recorded = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
        pending = []
        for migration in migrations:
            if migration.version not in recorded:
                pending.append(migration)
                continue
            name, checksum = recorded[migration.version]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version}_{migration.name}.sql has changed since it "
                    f"was applied (as {migration.version}_{name}.sql); add a new migration "
                    "instead of editing an applied one"
                )
        for migration in pending:
            if log is not None:
                log(f"applying {migration.version}_{migration.name}.sql")
            cur.execute(migration.sql)
            cur.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    return pending


def applied_versions(conn: psycopg2.extensions.connection) -> list[str]:
    """Versions recorded in ``schema_migrations`` (empty when it does not exist yet)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = cur.fetchone()
        if row is None or not row[0]:
            return []
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        return [version for (version,) in cur.fetchall()]
