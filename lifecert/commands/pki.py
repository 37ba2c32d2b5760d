"""``lifecert pki``: the certificate authority of the partner API (mutual TLS).

    lifecert pki init [--host NAME ...]            the CA and the server's certificate
    lifecert pki issue AGENCY --role ROLE          an agency's client key and certificate
    lifecert pki roles                             the roles of the authorization matrix
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifecert.commands.args import EXIT_FAILED


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pki", help="certificates of the partner API: init the CA, issue agency certificates",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    init = actions.add_parser("init", help="create the CA (once) and the server certificate")
    _pki_dir(init)
    init.add_argument(
        "--host", action="append", dest="hosts",
        help="a DNS name or IP address of the server (repeat; default: localhost, "
        "127.0.0.1, ::1)",
    )
    init.add_argument("--force", action="store_true",
                      help="make a new CA even if one exists (every issued certificate "
                      "stops working)")
    init.set_defaults(func=cmd_init)

    issue = actions.add_parser("issue", help="issue an agency's client certificate")
    _pki_dir(issue)
    issue.add_argument("agency", metavar="AGENCY", help="agency id, e.g. MO-SSF")
    issue.add_argument("--role", required=True, help="its role (see `lifecert pki roles`)")
    issue.add_argument("--days", type=int, default=397, help="validity (default 397 days)")
    issue.add_argument("--out", type=Path, help="folder of the key and certificate "
                       "(default: PKI_DIR/clients)")
    issue.add_argument("--force", action="store_true", help="replace an existing one")
    issue.set_defaults(func=cmd_issue)

    roles = actions.add_parser("roles", help="list the roles and what each may do")
    roles.set_defaults(func=cmd_roles)


def _pki_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pki-dir", type=Path,
                        help="folder of the CA (default: $LIFECERT_PKI_DIR, else data/pki)")


def cmd_init(args: argparse.Namespace) -> int:
    from lifecert.pki import PkiError, PkiPaths, init

    paths = PkiPaths.default(args.pki_dir)
    existed = paths.ca_cert.exists()
    try:
        written = init(paths, hosts=args.hosts or ("localhost", "127.0.0.1", "::1"),
                       force=args.force)
    except PkiError as exc:
        print(f"lifecert pki: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if existed and not args.force:
        print(f"lifecert pki: CA kept ({paths.ca_cert}); server certificate renewed",
              file=sys.stderr)
    for path in written:
        print(path)
    print(f"lifecert pki: give partners {paths.ca_cert} (public) to trust the server; "
          f"keep {paths.ca_key} secret", file=sys.stderr)
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from lifecert.pki import PkiError, PkiPaths, issue

    paths = PkiPaths.default(args.pki_dir)
    try:
        issued = issue(paths, args.agency, role=args.role, days=args.days, force=args.force,
                       out_dir=args.out)
    except PkiError as exc:
        print(f"lifecert pki: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(issued.key)
    print(issued.cert)
    print(f"lifecert pki: {issued.identity.agency} as {issued.identity.role}, valid until "
          f"{issued.not_after:%Y-%m-%d}; send the agency its key and certificate over a "
          "secure channel, with the CA certificate", file=sys.stderr)
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    from lifecert.api.authz import MATRIX

    for role, rules in MATRIX.items():
        scope = rules.scope
        where = ("any retiree" if scope.everyone else
                 "retirees of its own unit" if scope.own_unit else
                 "retirees residing in " + "/".join(sorted(scope.residences or ())))
        does = []
        if rules.channels:
            does.append("certifies by " + "/".join(sorted(rules.channels)))
        if rules.face_channel:
            does.append(f"face verification ({rules.face_channel})")
        if rules.documents:
            does.append("returned forms")
        if rules.deaths:
            does.append("deaths")
        if rules.feed:
            does.append("subscribes")
        if rules.status_query:
            does.append("status queries")
        if rules.face_enroll:
            does.append("face enrollment")
        print(f"{role:<20} {rules.description}\n{'':<20} {', '.join(does)}; {where}")
    return 0
