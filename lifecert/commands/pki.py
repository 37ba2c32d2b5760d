"""``lifecert pki``: the certificate authority of the partner API (mutual TLS).

    lifecert pki init [--host NAME ...]            the CA and the server's certificate
    lifecert pki issue AGENCY --role ROLE --csr FILE [--out FILE]
                                                   sign the agency's request (its key
                                                   stays with it): the certificate only
    lifecert pki issue AGENCY --role ROLE          a key and certificate made here (tests)
    lifecert pki revoke (--serial HEX ... | --agency AGENCY)
                                                   into the CRL every call is checked on
    lifecert pki roles                             the roles of the authorization matrix

The server's folder (--pki-dir, default data/pki) holds the server's key and certificate,
the CA certificate and the CRL; the CA folder (--ca-dir, default data/pki-ca, mode 0700)
holds the CA key: keep it on an offline machine (docs/pki.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
    issue.add_argument("--csr", type=Path, help="the agency's certificate signing request "
                       "(PEM or DER); its subject is ignored, the certificate names AGENCY "
                       "and ROLE")
    issue.add_argument("--out", type=Path, help="with --csr: the certificate file (default: "
                       "standard output); without: folder of the key and certificate "
                       "(default: CA_DIR/clients)")
    issue.add_argument("--force", action="store_true", help="replace an existing one")
    issue.set_defaults(func=cmd_issue)

    revoke = actions.add_parser("revoke", help="revoke certificates (the CRL the server "
                                "checks on every call)")
    _pki_dir(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--serial", action="append", dest="serials", metavar="HEX",
                       help="a certificate's serial, as `openssl x509 -noout -serial` "
                       "prints it (repeat)")
    which.add_argument("--agency", help="every certificate the CA issued to this agency")
    revoke.add_argument("--reason", default="unspecified",
                        choices=["unspecified", "key_compromise", "affiliation_changed",
                                 "superseded", "cessation_of_operation"],
                        help="recorded in the CRL (default unspecified)")
    revoke.set_defaults(func=cmd_revoke)

    roles = actions.add_parser("roles", help="list the roles and what each may do")
    roles.set_defaults(func=cmd_roles)


def _pki_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pki-dir", type=Path,
                        help="the server's folder: its key and certificate, the CA "
                        "certificate, the CRL (default: $LIFECERT_PKI_DIR, else data/pki)")
    parser.add_argument("--ca-dir", type=Path,
                        help="the CA's folder, with its private key (default: "
                        "$LIFECERT_CA_DIR, else PKI_DIR-ca, e.g. data/pki-ca); keep it "
                        "offline")


def _paths(args: argparse.Namespace) -> Any:
    from lifecert.pki import PkiPaths

    return PkiPaths.default(args.pki_dir, args.ca_dir)


def cmd_init(args: argparse.Namespace) -> int:
    from lifecert.pki import PkiError, init

    paths = _paths(args)
    existed = paths.ca_own_cert.exists()
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
          f"the server needs only {paths.root}; keep {paths.ca_dir} (the CA key) offline",
          file=sys.stderr)
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from lifecert.pki import PkiError, issue

    paths = _paths(args)
    if args.csr is not None:
        return _issue_for_csr(args, paths)
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


def _issue_for_csr(args: argparse.Namespace, paths: Any) -> int:
    from cryptography.hazmat.primitives import serialization

    from lifecert.pki import PkiError, identity_of, issue_for_csr, serial_hex

    try:
        try:
            request = args.csr.read_bytes()
        except OSError as exc:
            raise PkiError(f"cannot read the request {args.csr}: {exc.strerror}") from None
        if args.out is not None and args.out.exists() and not args.force:
            raise PkiError(f"{args.out} exists already; pass --force to replace it")
        cert = issue_for_csr(paths, args.agency, request, role=args.role, days=args.days,
                             where=str(args.csr))
    except PkiError as exc:
        print(f"lifecert pki: {exc}", file=sys.stderr)
        return EXIT_FAILED
    pem = cert.public_bytes(serialization.Encoding.PEM)
    if args.out is None:
        sys.stdout.write(pem.decode())
    else:
        args.out.write_bytes(pem)
        print(args.out)
    identity = identity_of(pem)
    print(f"lifecert pki: {identity.agency} as {identity.role}, serial "
          f"{serial_hex(cert.serial_number)}, valid until {cert.not_valid_after_utc:%Y-%m-%d}; "
          f"send the agency this certificate and {paths.ca_cert} (both public)",
          file=sys.stderr)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from cryptography import x509

    from lifecert.pki import PkiError, parse_serial, revoke, serial_hex

    paths = _paths(args)
    try:
        serials = [parse_serial(s) for s in args.serials or ()]
        revoked = revoke(paths, serials=serials, agency=args.agency,
                         reason=x509.ReasonFlags[args.reason])
    except PkiError as exc:
        print(f"lifecert pki: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for entry in revoked:
        whose = f" {entry.agency} ({entry.role})" if entry.agency else \
            " (not in the CA's record)"
        print(f"revoked {serial_hex(entry.serial)}{whose}")
    if not revoked:
        print("lifecert pki: already revoked; the CRL was signed again", file=sys.stderr)
    installed = (f"installed in {paths.crl}, which a running server re-reads on its next "
                 "call" if paths.crl.exists() else f"{paths.root} is not here")
    print(f"lifecert pki: CRL {paths.ca_crl} {installed}; copy it to every API server's "
          "PKI folder (docs/pki.md)", file=sys.stderr)
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
