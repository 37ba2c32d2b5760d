"""``lifecert api``: the partner gRPC API.

    lifecert api serve [--listen HOST:PORT]               the server (until SIGTERM)
    lifecert api second-factor import FILE.csv             retiree_id,id_number rows
    lifecert api second-factor set RETIREE_ID < id-number  one retiree (read from stdin)
    lifecert api bench [--rate 500 --seconds 10]           status query latency (lifecert-dev)
    lifecert api build-protos                              regenerate lifecert/api/v1/

ID numbers are read only to keep a keyed hash of their last 4 characters (the second
factor of status queries); they are never stored, logged or passed on the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lifecert.commands.args import EXIT_FAILED
from lifecert.commands.plugins import GROUP, add_plugins


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "api", help="the partner gRPC API: serve, second factors, benchmark",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    serve = actions.add_parser("serve", help="run the gRPC server (mutual TLS)")
    from lifecert.api.options import add_serve_arguments

    add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    factor = actions.add_parser(
        "second-factor", help="register retirees' second factors (from ID numbers)"
    )
    factor_actions = factor.add_subparsers(dest="factor_action", required=True,
                                           metavar="ACTION")
    load = factor_actions.add_parser("import", help="rows retiree_id,id_number from a CSV")
    load.add_argument("file", type=Path)
    _dsn(load)
    load.set_defaults(func=cmd_factor_import)
    one = factor_actions.add_parser("set", help="one retiree; the ID number is read from stdin")
    one.add_argument("retiree_id")
    _dsn(one)
    one.set_defaults(func=cmd_factor_set)

    migrate = actions.add_parser(
        "migrate", help="apply the pending migrations of the read models and the API's "
        "tables, as the schema's owner (the server's own role may not)")
    migrate.add_argument("--dsn", help="PostgreSQL DSN (default: $LIFECERT_POSTGRES_DSN, "
                         "else the local stack's, as role lifecert_owner)")
    migrate.set_defaults(func=cmd_migrate)

    build = actions.add_parser("build-protos", help="generate lifecert/api/v1/ from proto/")
    build.set_defaults(func=cmd_build)
    add_plugins(actions, f"{GROUP}.api", prog="lifecert api")  # lifecert-dev: bench


def _dsn(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="PostgreSQL DSN (default: $LIFECERT_POSTGRES_DSN, "
                        "else the local stack)")
    parser.add_argument("--pki-dir", type=Path, help="PKI folder; the second-factor key "
                        "lives beside it in data/api (default: $LIFECERT_PKI_DIR, else "
                        "data/pki)")


def cmd_migrate(args: argparse.Namespace) -> int:
    import psycopg2

    from lifecert.api.db import connect
    from lifecert.api.migrate import migrate
    from lifecert.endpoints import postgres_dsn
    from lifecert.migrations import MigrationError

    try:
        conn = connect(postgres_dsn(args.dsn, "owner"), "lifecert-api-migrate")
        try:
            done = migrate(conn)
        finally:
            conn.close()
    except (MigrationError, psycopg2.Error) as exc:
        print(f"lifecert api migrate: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED
    for migration in done:
        print(f"applied {migration.version}_{migration.name}.sql", file=sys.stderr)
    print(f"lifecert api migrate: {len(done)} API migrations applied now", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from lifecert.api.server import run

    return run(args)


def _store(args: argparse.Namespace, pairs: list[tuple[str, str]]) -> int:
    import psycopg2

    from lifecert.api import secondfactor
    from lifecert.api.db import connect
    from lifecert.api.migrate import migrate
    from lifecert.api.server_config import second_factor_key
    from lifecert.endpoints import postgres_dsn
    from lifecert.keyfiles import MissingKeyError
    from lifecert.pki import PkiPaths

    folder = PkiPaths.default(args.pki_dir).root.parent / "api"
    try:
        key = second_factor_key(folder)
        registrations = list(secondfactor.register_rows(key, pairs))
    except (ValueError, OSError, MissingKeyError) as exc:
        print(f"lifecert api: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        conn = connect(postgres_dsn(args.dsn, "owner"), "lifecert-api-second-factors")
        try:
            migrate(conn)
            n = secondfactor.store(conn, registrations)
        finally:
            conn.close()
    except psycopg2.Error as exc:
        print(f"lifecert api: PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED
    from lifecert.api.server_config import SECOND_FACTOR_KEY_ENV, SECOND_FACTOR_KEY_FILE

    used = (f"${SECOND_FACTOR_KEY_ENV}" if os.environ.get(SECOND_FACTOR_KEY_ENV)
            else folder / SECOND_FACTOR_KEY_FILE)
    print(f"lifecert api: {n:,} second factors stored (hashed with the key {used})",
          file=sys.stderr)
    return 0


def cmd_factor_import(args: argparse.Namespace) -> int:
    from lifecert.api import secondfactor

    try:
        pairs = list(secondfactor.read_csv(args.file))
    except (secondfactor.SecondFactorError, OSError) as exc:
        print(f"lifecert api: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return _store(args, pairs)


def cmd_factor_set(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        import getpass

        id_number = getpass.getpass("ID number (not echoed): ")
    else:
        id_number = sys.stdin.readline()
    return _store(args, [(args.retiree_id, id_number.strip())])


def cmd_build(args: argparse.Namespace) -> int:
    from lifecert.api.build_protos import main

    return main([])
