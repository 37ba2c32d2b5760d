"""The demo's web pages: what ``make demo`` calls at its end so that it can print the
URLs of the status page and the dashboard, a staff login, and retirees to try.

    from lifecert_dev.web_demo import prepare
    print(prepare(database="lifecert_demo").describe())

``prepare`` (on the local stack's PostgreSQL, the demo's database) applies the API's
migrations as the schema's owner (the staff tables among them), makes the second-factor
key when there is none (data/api), registers a made-up ID number for one retiree of each
status (the demo's campaign carries none), and (re)sets the staff account ``demo.city``
with a new random password. It starts nothing: ``lifecert web serve --database
lifecert_demo`` serves the pages, and so does ``lifecert web serve`` with no options (it
serves the local stack's ``lifecert_demo`` when there is one); the command is in
:meth:`DemoWeb.describe`."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2.extensions

STAFF_USER = "demo.city"
SHOWN = ("CERTIFIED", "PENDING_DOCUMENTS", "NOT_CERTIFIED", "SUSPENDED")


@dataclass(frozen=True)
class DemoWeb:
    listen: str
    database: str
    username: str
    password: str
    retirees: list[tuple[str, str, str]] = field(default_factory=list)  # (id, factor, status)

    def describe(self) -> str:
        from lifecert.commands.web import DEMO_DATABASE

        base = f"http://{self.listen}"
        where = "" if self.database == DEMO_DATABASE else f" --database {self.database}"
        listen = "" if self.listen == "127.0.0.1:8080" else f" --listen {self.listen}"
        lines = [
            f"Web pages: start them with  lifecert web serve{where}{listen}",
            f"  status page (retirees): {base}/",
            f"  staff dashboard:        {base}/staff   login {self.username} / {self.password}",
        ]
        lines += [f"  try retiree {rid} with the 4 characters {factor} ({status})"
                  for rid, factor, status in self.retirees]
        return "\n".join(lines)


def _id_number(retiree_id: str) -> str:
    """A made-up 18-character ID number for a demo retiree (stable per id)."""
    digits = str(int(hashlib.sha256(retiree_id.encode()).hexdigest(), 16))[:17]
    return digits.rjust(17, "0") + "0"


def prepare(database: str = "lifecert_demo", listen: str = "127.0.0.1:8080",
            owner_dsn: str | None = None, pki_dir: Path | None = None) -> DemoWeb:
    """Ready the demo's database for ``lifecert web serve`` (see the module's text)."""
    from lifecert.api import secondfactor
    from lifecert.api.migrate import migrate
    from lifecert.api.server_config import (
        create_second_factor_key,
        second_factor_dir,
        second_factor_key,
    )
    from lifecert.endpoints import postgres_dsn
    from lifecert.web import staff
    from projections.connection import connect

    dsn = owner_dsn or psycopg2.extensions.make_dsn(postgres_dsn(None, "owner"), dbname=database)
    folder = second_factor_dir(pki_dir)
    create_second_factor_key(folder)
    key = second_factor_key(folder)
    password = secrets.token_urlsafe(12)
    conn = connect(dsn)
    try:
        migrate(conn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT DISTINCT ON (status) status, retiree_id FROM retiree_status "
                        "WHERE status = ANY(%s) ORDER BY status, retiree_id", (list(SHOWN),))
            chosen = {status: rid for status, rid in cur.fetchall()}
        pairs = [(chosen[s], _id_number(chosen[s])) for s in SHOWN if s in chosen]
        secondfactor.store(conn, secondfactor.register_rows(key, pairs))
        staff.add_user(conn, STAFF_USER, password, staff.CITY, None, replace=True)
    finally:
        conn.close()
    tried = [(rid, number[-4:], s) for s, (rid, number) in
             zip([s for s in SHOWN if s in chosen], pairs, strict=True)]
    return DemoWeb(listen, database, STAFF_USER, password, tried)
