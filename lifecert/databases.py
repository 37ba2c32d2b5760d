"""PostgreSQL databases that lifecert makes and drops for a run: the demo's and the
benchmark's read models, the API sandbox, the simulated partner databases, the tests'.

Each call connects to ``admin_dsn`` (any database of the server, with the right to create
databases) in autocommit mode, as CREATE / DROP DATABASE require."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
from psycopg2 import sql


def create_database(admin_dsn: str, name: str) -> str:
    """Create database ``name``; the DSN that reaches it (``admin_dsn`` with its name)."""
    _admin(admin_dsn, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg2.extensions.make_dsn(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database ``name``, ending its sessions first; no error when it is absent."""
    _admin(admin_dsn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
        sql.Identifier(name)))


def _admin(admin_dsn: str, statement: sql.Composable) -> None:
    conn = psycopg2.connect(admin_dsn, connect_timeout=10)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
