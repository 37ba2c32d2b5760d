"""Schema migrations: ``migrations/NNNN_name.sql`` of a package (a :class:`MigrationSet`:
the read models', lifecert/api's, lifecert/keystore's) applied in order of their number, each
once, recorded in ``schema_migrations`` (version, name, sha-256 of the file, when). The
migrations run as the schema's owner (role ``lifecert_owner``); each run also applies the
component roles' grants (lifecert/dbroles.py) in the same transaction. A component's own
role (the projections', the API's) calls ``migrate`` at start too: with nothing pending it
changes nothing and needs no right to; with something pending it is refused, saying so.

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

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from lifecert.dbroles import apply_grants

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


@dataclass(frozen=True)
class MigrationSet:
    """A folder of migrations of a package and the table recording them. The read models
    (``projections/migrations``, ``schema_migrations``) are one set; the partner API's own
    tables are another (lifecert/api/migrate.py): they evolve independently."""

    package: str
    table: str
    lock: int  # pg_advisory_xact_lock key serialising the runs of this set
    label: str = "migration"
    command: str = "lifecert projections migrate"  # applies them as the schema's owner

    def available(self) -> list[Migration]:
        """The migrations shipped in ``<package>/migrations``, in order."""
        folder = resources.files(self.package) / "migrations"
        found: dict[str, Migration] = {}
        for entry in folder.iterdir():
            match = _FILE_NAME.fullmatch(entry.name)
            if match is None:
                continue
            version = match["version"]
            if version in found:
                raise MigrationError(
                    f"two {self.label}s numbered {version}: {found[version].name} and "
                    f"{match['name']}"
                )
            found[version] = Migration(version, match["name"],
                                       entry.read_text(encoding="utf-8"))
        return [found[v] for v in sorted(found)]

    def migrate(
        self, conn: psycopg2.extensions.connection, log: Callable[[str], None] | None = None
    ) -> list[Migration]:
        """Apply the pending migrations; returns those applied now (none when up to date)."""
        migrations = self.available()
        try:
            return self._migrate(conn, migrations, log)
        except psycopg2.errors.InsufficientPrivilege as exc:
            raise MigrationError(
                f"{self.label}s pending and PostgreSQL role {conn.info.user!r} may not "
                f"apply them ({exc.diag.message_primary}): run them as the schema's owner "
                f"(`{self.command}`, role lifecert_owner), then start this component again"
            ) from None

    def _migrate(
        self, conn: psycopg2.extensions.connection, migrations: list[Migration],
        log: Callable[[str], None] | None,
    ) -> list[Migration]:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock,))
            # A component's own role may read but not change the schema: up to date, it
            # runs no DDL at all.
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table,))
            row = cur.fetchone()
            if not (row and row[0]):
                cur.execute(_CREATE_TABLE.format(table=self.table))
            cur.execute(f"SELECT version, name, checksum FROM {self.table}")
            recorded = {version: (name, checksum) for version, name, checksum in cur.fetchall()}
            pending = []
            for migration in migrations:
                if migration.version not in recorded:
                    pending.append(migration)
                    continue
                name, checksum = recorded[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"{self.label} {migration.version}_{migration.name}.sql has changed "
                        f"since it was applied (as {migration.version}_{name}.sql); add a new "
                        "migration instead of editing an applied one"
                    )
            for migration in pending:
                if log is not None:
                    log(f"applying {migration.version}_{migration.name}.sql")
                cur.execute(migration.sql)
                cur.execute(
                    f"INSERT INTO {self.table} (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            if pending or _may_grant(cur, self.table):
                apply_grants(cur)  # in the migrations' transaction: never one without
        return pending


def _may_grant(cur: psycopg2.extensions.cursor, table: str) -> bool:
    """The session's role may grant on the schema's tables: a superuser, or a member of
    the role owning ``table``."""
    cur.execute(
        "SELECT r.rolsuper OR pg_has_role(current_user, t.tableowner, 'USAGE') "
        "FROM pg_roles r, pg_tables t "
        "WHERE r.rolname = current_user AND t.schemaname = current_schema() "
        "AND t.tablename = %s", (table,))
    row = cur.fetchone()
    return bool(row and row[0])


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    version    text        PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""
