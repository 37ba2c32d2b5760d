"""``lifecert web``: the people's web pages.

    lifecert web serve [--listen 127.0.0.1:8080] [--cert C --key K]   until interrupted
    lifecert web user add USERNAME --role CITY|DISTRICT [--district D] (password on stdin)
    lifecert web bench [--rate 200 --seconds 10]                    (lifecert-dev)

``serve`` answers the retirees' status page (``/``) and its JSON (``POST /api/v1/status``)
and the staff dashboard (``/staff``), from the PostgreSQL read models, as the web's own
role ``lifecert_web`` (lifecert/dbroles.py). With no options it serves the local stack's
demo database (``lifecert_demo``, ``make demo``'s campaign) when there is one, else the
stack's own database. ``/healthz`` for probes.

``user add`` reads the password from stdin (never from the command line); ``--generate``
makes one and prints it once. Passwords are kept as argon2id hashes only.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

from lifecert.commands.args import EXIT_FAILED, EXIT_USAGE
from lifecert.commands.plugins import GROUP, add_plugins

# The third-party packages of the `web` extra (lifecert/cli.py's EXTRA_OF names them too).
WEB_PACKAGES = ("starlette", "uvicorn", "jinja2", "argon2", "multipart")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "web", help="the retirees' status page and the staff dashboard (HTTP)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the status page and the dashboard")
    serve.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default "
                       "127.0.0.1:8080)")
    serve.add_argument("--cert", help="TLS certificate (PEM): serve HTTPS, Secure cookies")
    serve.add_argument("--key", help="the certificate's private key (PEM)")
    serve.add_argument("--secure-cookies", action="store_true", help="Secure cookies even "
                       "without --cert (TLS ends at a proxy in front)")
    serve.add_argument("--forwarded-allow-ips", help="proxies whose X-Forwarded-For is "
                       "trusted (the visitor's address keys the lockouts)")
    serve.add_argument("--cycle", help="campaign shown on the dashboard (default: the "
                       "latest in the read models)")
    serve.add_argument("--poll-seconds", type=int, default=15, help="dashboard refresh")
    _databases(serve)
    serve.set_defaults(func=cmd_serve)

    user = actions.add_parser("user", help="staff accounts of the dashboard")
    user_actions = user.add_subparsers(dest="user_action", required=True, metavar="ACTION")
    add = user_actions.add_parser("add", help="add (or --replace) a staff account")
    add.add_argument("username")
    add.add_argument("--role", choices=("CITY", "DISTRICT"), required=True)
    add.add_argument("--district", help="the district of a DISTRICT account")
    add.add_argument("--generate", action="store_true", help="make a password, print it once")
    add.add_argument("--replace", action="store_true", help="reset an existing account")
    add.add_argument("--dsn", help="PostgreSQL DSN of the schema's owner (default: "
                     "$LIFECERT_POSTGRES_DSN, else the local stack's)")
    add.add_argument("--database", help="a database of the local stack (e.g. lifecert_demo)")
    add.set_defaults(func=cmd_user_add)
    add_plugins(actions, f"{GROUP}.web", prog="lifecert web")  # lifecert-dev: bench


# The demo's database (lifecert_dev's `lifecert demo`): what `web serve` shows by default.
DEMO_DATABASE = "lifecert_demo"


def _databases(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="PostgreSQL DSN as the web's role, lifecert_web "
                        "(default: $LIFECERT_POSTGRES_DSN, else the local stack's)")
    parser.add_argument("--database", help="a database of the local stack instead of the "
                        f"DSN's own (default with neither: {DEMO_DATABASE} when the local "
                        "stack has it)")
    parser.add_argument("--pki-dir", type=Path, help="PKI folder; the API's second-factor "
                        "key lives beside it in data/api (default: $LIFECERT_PKI_DIR)")


def _missing(exc: ModuleNotFoundError) -> int:
    top = (exc.name or "").partition(".")[0]
    if top not in WEB_PACKAGES:
        raise exc
    print(f"lifecert web: needs the Python package {top!r}, which comes with lifecert's "
          "'web' extra: pip install 'lifecert[live,api,web]'", file=sys.stderr)
    return EXIT_FAILED


def cmd_serve(args: argparse.Namespace) -> int:
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or (args.cert is None) != (args.key is None):
        print("lifecert web serve: --listen HOST:PORT, and --cert with --key or neither",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        from lifecert.web.server import preflight, serve
        from lifecert.web.web_config import WebConfig
    except ModuleNotFoundError as exc:
        return _missing(exc)
    from lifecert.keyfiles import MissingKeyError

    try:
        config = WebConfig.resolve(
            _dsn(args), args.pki_dir, secure_cookies=args.secure_cookies
            or args.cert is not None, poll_seconds=max(2, args.poll_seconds), cycle=args.cycle)
    except (ValueError, OSError, MissingKeyError) as exc:
        print(f"lifecert web serve: {exc}", file=sys.stderr)
        return EXIT_FAILED
    problem = preflight(config)
    if problem is not None:
        print(f"lifecert web serve: {problem}", file=sys.stderr)
        return EXIT_FAILED
    import psycopg2.extensions

    database = psycopg2.extensions.parse_dsn(config.dsn).get("dbname", "?")
    print(f"lifecert web: status page http{'s' if args.cert else ''}://{args.listen}/ , "
          f"dashboard /staff (database {database})", file=sys.stderr)
    serve(config, host.strip("[]"), int(port), args.cert, args.key, args.forwarded_allow_ips)
    return 0


def _dsn(args: argparse.Namespace) -> str:
    """The web role's DSN: ``--dsn`` (or $LIFECERT_POSTGRES_DSN), on ``--database`` when
    given; with neither, the local stack's demo database when it has one."""
    import os

    import psycopg2.extensions

    from lifecert.endpoints import DSN_ENV, postgres_dsn

    dsn = postgres_dsn(args.dsn, "web")
    if args.database:
        return psycopg2.extensions.make_dsn(dsn, dbname=args.database)
    if args.dsn or os.environ.get(DSN_ENV):
        return dsn
    demo = psycopg2.extensions.make_dsn(dsn, dbname=DEMO_DATABASE)
    return demo if _exists(demo) else dsn


def _exists(dsn: str) -> bool:
    """The database of ``dsn`` exists (any other trouble is preflight's to tell)."""
    import psycopg2

    try:
        psycopg2.connect(dsn, connect_timeout=10).close()
    except psycopg2.OperationalError as exc:
        return "does not exist" not in str(exc)
    return True


def cmd_user_add(args: argparse.Namespace) -> int:
    try:
        from lifecert.web import staff
    except ModuleNotFoundError as exc:
        return _missing(exc)
    import psycopg2
    import psycopg2.extensions

    from lifecert.api.migrate import migrate
    from lifecert.endpoints import postgres_dsn
    from projections.connection import connect

    if args.generate:
        password = secrets.token_urlsafe(12)
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.username}: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        dsn = postgres_dsn(args.dsn, "owner")
        if args.database:
            dsn = psycopg2.extensions.make_dsn(dsn, dbname=args.database)
        conn = connect(dsn)
        try:
            migrate(conn)
            staff.add_user(conn, args.username, password, args.role, args.district,
                           replace=args.replace)
        finally:
            conn.close()
    except staff.StaffError as exc:
        print(f"lifecert web user add: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except psycopg2.Error as exc:
        print(f"lifecert web user add: PostgreSQL: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED
    print(f"lifecert web: account {args.username} ({args.role}) ready", file=sys.stderr)
    if args.generate:
        print(password)
    return 0
