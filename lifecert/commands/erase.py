"""``lifecert erase RETIREE_ID --yes``: crypto-shred a retiree's personal data.

    lifecert erase 440604195003150012 --yes
    lifecert erase R1 --yes --keys-dsn postgresql://...  --scrub-dsn postgresql://api...

Destroys every data key of the retiree in the key store: each sealed copy of their
personal fields (the name on the events topic, in the worker's changelogs, dead letters,
backups, read models) becomes unreadable at once; readers show ``[erased]``. The read
models' sealed copies are cleared too (``--scrub-dsn``, default the key store's
database), and so are the API's face reference of the retiree (their encoding), their
challenges and the biometric evidence of their face decisions (the decisions stay, for
the audit; found by the API's key, ``$LIFECERT_SECOND_FACTOR_KEY`` or the one beside the
PKI folder). Every run is recorded in ``personal_data_erasures`` (who, when, what it did);
running it again is harmless and says that nothing was left. Exit codes: 0 done (or
nothing left to do); 1 the key store or a database cannot be reached; 2 bad arguments or
no ``--yes``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from typing import Any

import psycopg2

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE
from lifecert.datakeys import KeyStoreError
from lifecert.keystore.postgres import KEYS_DSN_ENV, PostgresKeyStore, resolve_keys_dsn

log = logging.getLogger("lifecert.erase")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "erase",
        help="crypto-shred a retiree's personal data (destroys their data key)",
        description=(
            "Destroy the retiree's data keys, so that their sealed personal fields are "
            "unreadable everywhere (topics, changelogs, dead letters, read models, "
            "backups), and clear the read models' sealed copies. Irreversible: give --yes."
        ),
    )
    parser.add_argument("retiree_id", metavar="RETIREE_ID", help="the retiree to erase")
    parser.add_argument("--yes", action="store_true",
                        help="confirm: the erasure cannot be undone")
    parser.add_argument(
        "--keys-dsn", metavar="DSN",
        help="PostgreSQL DSN of the key store (default: $LIFECERT_KEYS_DSN, else "
             "$LIFECERT_POSTGRES_DSN, else the local stack)",
    )
    parser.add_argument(
        "--scrub-dsn", metavar="DSN", action="append",
        help="a database whose read models to scrub (repeatable; default: the key store's)",
    )
    parser.set_defaults(func=run)


def scrub(dsn: str, retiree_id: str, subject: str | None = None) -> int:
    """Clear the retiree's sealed copies in the read models of ``dsn``, and their face
    reference and face evidence (``subject``: their keyed hash in the API's tables, None
    when the API's key is unknown); rows changed."""
    from lifecert.api import challenges
    from lifecert.api.directory import scrub_name

    conn = psycopg2.connect(dsn, connect_timeout=10, application_name="lifecert-erase")
    try:
        with conn, conn.cursor() as cur:
            changed = challenges.erase(conn, retiree_id, subject)
            cur.execute("SELECT to_regclass('api_retiree_directory') IS NOT NULL")
            row = cur.fetchone()
            assert row is not None  # a SELECT without FROM returns one row
            if not row[0]:
                return changed
            cur.execute("SELECT 1 FROM information_schema.columns WHERE table_name = "
                        "'api_retiree_directory' AND column_name = 'name_sealed'")
            if cur.fetchone() is None:
                return changed
            return changed + scrub_name(conn, retiree_id)
    finally:
        conn.close()


def api_subject(retiree_id: str) -> str | None:
    """The retiree's keyed hash in the API's tables (``subject``), None without the API's
    key ($LIFECERT_SECOND_FACTOR_KEY, else the one beside the PKI folder)."""
    from lifecert.api.secondfactor import subject_ref
    from lifecert.api.server_config import existing_second_factor_key

    try:
        key = existing_second_factor_key()
    except ValueError as exc:  # a malformed $LIFECERT_SECOND_FACTOR_KEY
        log.warning("%s", exc)
        return None
    return None if key is None else subject_ref(key, retiree_id)


def erase(retiree_id: str, keys_dsn: str, scrub_dsns: list[str],
          requested_by: str) -> tuple[int, int, str | None]:
    """Destroy, scrub, record. Returns (keys destroyed, rows scrubbed, when the retiree was
    first erased if it already had been)."""
    store = PostgresKeyStore(keys_dsn, None)
    try:
        destroyed = store.destroy(retiree_id)
    finally:
        store.close()
    subject = api_subject(retiree_id)
    if subject is None:
        log.warning("the API's key was not found ($%s, or data/api/second-factor.key): the "
                    "face reference is deleted, but face decision evidence keyed by it is "
                    "not cleared; run again with the key", "LIFECERT_SECOND_FACTOR_KEY")
    scrubbed = sum(scrub(dsn, retiree_id, subject) for dsn in scrub_dsns)
    conn = psycopg2.connect(keys_dsn, connect_timeout=10, application_name="lifecert-erase")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT min(destroyed_at)::text FROM personal_data_keys "
                        "WHERE subject = %s", (retiree_id,))
            row = cur.fetchone()
            assert row is not None  # an aggregate without GROUP BY returns one row
            first = row[0]
            outcome = ("erased" if destroyed or scrubbed
                       else "nothing left" if first is not None else "no key")
            cur.execute(
                "INSERT INTO personal_data_erasures (subject, requested_by, keys_destroyed, "
                "rows_scrubbed, outcome) VALUES (%s, %s, %s, %s, %s)",
                (retiree_id, requested_by, destroyed, scrubbed, outcome),
            )
    finally:
        conn.close()
    return destroyed, scrubbed, first if not destroyed else None


def run(args: argparse.Namespace) -> int:
    rid = args.retiree_id
    if not rid or not rid.isprintable() or len(rid) > 128:
        print("lifecert erase: RETIREE_ID must be 1-128 printable characters", file=sys.stderr)
        return EXIT_USAGE
    if not args.yes:
        print(f"lifecert erase: nothing done. Erasing {rid!r} destroys their data keys for "
              "good (their name becomes unreadable everywhere); add --yes to confirm",
              file=sys.stderr)
        return EXIT_USAGE
    keys_dsn = resolve_keys_dsn(args.keys_dsn)
    # the read models and the API's tables, as before the key store had its own role (which
    # may touch nothing but its keys): the key store's database
    from lifecert.endpoints import postgres_dsn

    scrub_dsns = args.scrub_dsn or [args.keys_dsn or os.environ.get(KEYS_DSN_ENV)
                                    or postgres_dsn(None)]
    try:
        destroyed, scrubbed, before = erase(rid, keys_dsn, scrub_dsns, getpass.getuser())
    except (KeyStoreError, psycopg2.Error) as exc:
        print(f"lifecert erase: {str(exc).strip()}; nothing is certain to be erased: run it "
              "again once the database is reachable", file=sys.stderr)
        return EXIT_FAILED
    log.info("erase %r: %d key(s) destroyed, %d read-model row(s) scrubbed", rid, destroyed,
             scrubbed)
    if destroyed:
        print(f"erased {rid}: {destroyed} data key(s) destroyed, {scrubbed} read-model "
              "row(s) scrubbed; their personal fields are unreadable from now on")
    elif before is not None:
        print(f"{rid} was already erased (keys destroyed {before}); {scrubbed} read-model "
              "row(s) scrubbed now")
    else:
        print(f"{rid} has no data key: nothing of theirs was sealed in this key store "
              f"({scrubbed} read-model row(s) scrubbed)")
    return 0
