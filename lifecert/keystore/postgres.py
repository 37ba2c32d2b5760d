"""The key store in PostgreSQL: ``personal_data_keys`` (migrations in
``lifecert/keystore/migrations``, recorded in ``keystore_schema_migrations``).

A data key is 32 random bytes made here, stored wrapped (AES-256-GCM, the primitives of
:mod:`lifecert.sealing`) under the master key, the associated data binding it to its
subject and key id: a wrapped key copied onto another subject's row does not open.
Destroying clears the wrapped bytes and vacuums the table, so that the dead row versions
go too (the master key alone, without the wrapped key, opens nothing).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2.extras import execute_values

from lifecert.datakeys import DataKey, KeyStoreError, UnknownKey
from lifecert.keystore import CachedKeyStore
from lifecert.keystore.master import master_key
from lifecert.migrations import MigrationSet
from lifecert.sealing import KEY_BYTES, SealError, seal, unseal

# pg_advisory_xact_lock key of the key store's migration runs ("lifecert" + 5).
KEYSTORE_MIGRATION_LOCK = 0x6C69666563657205
KEYSTORE = MigrationSet("lifecert.keystore", "keystore_schema_migrations",
                        KEYSTORE_MIGRATION_LOCK, "key store migration")


def migrate(conn: psycopg2.extensions.connection) -> None:
    KEYSTORE.migrate(conn)


def _aad(subject: str, key_id: str) -> bytes:
    return b"lifecert.keystore\x00" + subject.encode("utf-8") + b"\x00" + key_id.encode("ascii")


class PostgresKeyStore:
    """:class:`~lifecert.datakeys.KeyStore` in the database of ``dsn``; one connection,
    used by one thread at a time. Without a ``master`` key it can only destroy
    (``lifecert erase`` needs no key to shred)."""

    def __init__(self, dsn: str, master: bytes | None, *, migrate_schema: bool = True) -> None:
        if master is not None and len(master) != KEY_BYTES:
            raise KeyStoreError(f"the master key must be {KEY_BYTES} bytes, not {len(master)}")
        self._master = master
        self._dsn = dsn
        self._lock = threading.Lock()
        self._conn: Any = None
        if migrate_schema:
            with self._lock:
                migrate(self._connection())

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(self._dsn, connect_timeout=10,
                                              application_name="lifecert-keystore")
            except psycopg2.Error as exc:
                raise KeyStoreError(f"cannot reach the key store: {exc}".strip()) from None
        return self._conn

    def _run(self, fn: Any) -> Any:
        with self._lock:
            conn = self._connection()
            try:
                with conn, conn.cursor() as cur:
                    return fn(cur)
            except psycopg2.OperationalError as exc:
                with contextlib.suppress(psycopg2.Error):
                    conn.close()
                raise KeyStoreError(f"the key store is unavailable: {exc}".strip()) from None

    def _need_master(self) -> bytes:
        if self._master is None:
            raise KeyStoreError("this key store was opened without the master key: it can "
                                "destroy keys, not make or open them")
        return self._master

    def _unwrap(self, subject: str, key_id: str, wrapped: bytes) -> DataKey:
        master = self._need_master()
        try:
            secret = unseal(bytes(wrapped), master, _aad(subject, key_id))
        except SealError:
            raise KeyStoreError(
                f"the data key {key_id} of one subject does not open with this master key: "
                f"wrong $LIFECERT_PERSONAL_KEY / personal-data.key, or a tampered row"
            ) from None
        return DataKey(subject, key_id, secret)

    def create(self, subject: str) -> DataKey:
        key_id = os.urandom(8).hex()
        secret = os.urandom(KEY_BYTES)
        wrapped = seal(secret, self._need_master(), _aad(subject, key_id))

        def create(cur: Any) -> tuple[str, bytes]:
            cur.execute(
                "INSERT INTO personal_data_keys (subject, key_id, wrapped) VALUES (%s, %s, %s) "
                "ON CONFLICT (subject) WHERE wrapped IS NOT NULL DO NOTHING",
                (subject, key_id, wrapped),
            )
            if cur.rowcount == 1:
                return key_id, wrapped
            cur.execute(  # another process made it first: theirs is the live key
                "SELECT key_id, wrapped FROM personal_data_keys "
                "WHERE subject = %s AND wrapped IS NOT NULL", (subject,))
            return cur.fetchone()

        found_id, found = self._run(create)
        if found_id == key_id:
            return DataKey(subject, key_id, secret)
        return self._unwrap(subject, found_id, found)

    def create_many(self, subjects: Iterable[str]) -> list[DataKey]:
        """:meth:`create` for many subjects in one transaction (what ``lifecert publish``
        does ahead of a chunk of lines: one commit, not one per retiree)."""
        wanted = list(dict.fromkeys(subjects))
        if not wanted:
            return []
        made = {}
        for subject in wanted:
            key_id, secret = os.urandom(8).hex(), os.urandom(KEY_BYTES)
            made[subject] = (key_id, secret,
                             seal(secret, self._need_master(), _aad(subject, key_id)))

        def create(cur: Any) -> tuple[set[str], list[tuple[str, str, bytes]]]:
            inserted = execute_values(
                cur,
                "INSERT INTO personal_data_keys (subject, key_id, wrapped) VALUES %s "
                "ON CONFLICT (subject) WHERE wrapped IS NOT NULL DO NOTHING "
                "RETURNING subject",
                [(s, k, w) for s, (k, _, w) in made.items()], page_size=1000, fetch=True)
            new = {row[0] for row in inserted}
            cur.execute("SELECT subject, key_id, wrapped FROM personal_data_keys "
                        "WHERE subject = ANY(%s) AND wrapped IS NOT NULL",
                        ([s for s in wanted if s not in new],))
            return new, cur.fetchall()

        new, existing = self._run(create)
        keys = [DataKey(s, made[s][0], made[s][1]) for s in wanted if s in new]
        keys += [self._unwrap(s, k, w) for s, k, w in existing]
        return keys

    def get(self, subject: str, key_id: str) -> DataKey | None:
        def get(cur: Any) -> Any:
            cur.execute("SELECT wrapped FROM personal_data_keys WHERE subject = %s AND "
                        "key_id = %s", (subject, key_id))
            return cur.fetchone()

        row = self._run(get)
        if row is None:
            raise UnknownKey(f"no key {key_id!r} for this subject in the key store")
        return None if row[0] is None else self._unwrap(subject, key_id, row[0])

    def destroy(self, subject: str) -> int:
        def destroy(cur: Any) -> int:
            cur.execute("UPDATE personal_data_keys SET wrapped = NULL, destroyed_at = now() "
                        "WHERE subject = %s AND wrapped IS NOT NULL", (subject,))
            return int(cur.rowcount)

        destroyed = self._run(destroy)
        if destroyed:
            self.vacuum()
        return destroyed

    def destroy_older(self, prefix: str, before: str) -> list[str]:
        """Destroy the live keys of subjects ``prefix + X`` with ``X < before`` (dead-letter
        months: ``destroy_older("dead-letters/", "2017-05")``); returns their subjects."""
        def destroy(cur: Any) -> list[str]:
            cur.execute(
                "UPDATE personal_data_keys SET wrapped = NULL, destroyed_at = now() "
                "WHERE wrapped IS NOT NULL AND starts_with(subject, %s) "
                "AND substr(subject, %s) < %s RETURNING subject",
                (prefix, len(prefix) + 1, before),
            )
            return sorted(r[0] for r in cur.fetchall())

        gone = self._run(destroy)
        if gone:
            self.vacuum()
        return gone

    def vacuum(self) -> None:
        """VACUUM the key table: the row versions that still held a destroyed wrapped key
        are removed from its data files (WAL and backups age out on their own schedule)."""
        with self._lock:
            conn = self._connection()
            old = conn.autocommit
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute("VACUUM personal_data_keys")
            except psycopg2.Error:
                pass  # autovacuum will do it; the key is destroyed either way
            finally:
                conn.autocommit = old

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(psycopg2.Error):
                    self._conn.close()


KEYS_DSN_ENV = "LIFECERT_KEYS_DSN"


def resolve_keys_dsn(explicit: str | None = None) -> str:
    """``explicit`` (``--keys-dsn``), else ``$LIFECERT_KEYS_DSN``, else the read models'
    database (``$LIFECERT_POSTGRES_DSN``, else the local stack's, as the key store's own
    role ``lifecert_keystore``, which owns the key tables and may read nothing else)."""
    if explicit or os.environ.get(KEYS_DSN_ENV):
        return explicit or os.environ[KEYS_DSN_ENV]
    from lifecert.endpoints import postgres_dsn

    return postgres_dsn(None, "keystore")


def migrate_as(admin_dsn: str) -> None:
    """Apply the key store's migrations as ``admin_dsn``'s role (a superuser: it hands the
    key tables to ``lifecert_keystore``, lifecert/dbroles.py), so that the key store's own
    role, which may not change the schema, finds them in place."""
    conn = psycopg2.connect(admin_dsn, connect_timeout=10)
    try:
        migrate(conn)
    finally:
        conn.close()


def open_keystore(dsn: str | None = None, *, ttl: float = 30.0) -> CachedKeyStore:
    """The key store of ``dsn`` (see :func:`resolve_keys_dsn`), its master key from
    :func:`~lifecert.keystore.master.master_key`, cached in the process for ``ttl`` s."""
    return CachedKeyStore(PostgresKeyStore(resolve_keys_dsn(dsn), master_key()), ttl=ttl)
