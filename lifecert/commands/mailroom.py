"""``lifecert mailroom``: the bureau's mailroom registers returned paper forms (forms 1-4).

    lifecert mailroom receive --certification-id C-77120 --agency CC-ZUMIAO-03 \\
        --retiree FS000104729 --form 1 --postmarked 2017-05-02 --arrived 2017-05-05 \\
        --scan /mnt/scanner/0001.pdf --documents /srv/mailroom/documents
    lifecert mailroom outstanding [--dsn DSN] [--older-than DAYS]

``receive`` checks the registration and appends it to the mailroom register
(``--register``, default ``$LIFECERT_MAILROOM_REGISTER``); the ``mailroom`` connector
publishes it as CertificationDocumentsReceived. With ``--scan`` the scan's SHA-256 is
computed and, with ``--documents``, the scan is copied there as ``<sha256>.<ext>``: the
register and the hub keep only the hash (``--scan-sha256`` gives it directly). A second
registration of the same form is refused unless ``--again``. Nothing personal is printed.

``outstanding`` prints the paper-forms read model: per agency, the certifications whose form
has not come back and the age of the oldest, then the forms that match no certification yet.

Exit codes: 0 done; 1 refused (the reason is printed) or the register or database cannot be
reached; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from connectors.mailroom import register as mr
from lifecert.commands.args import EXIT_FAILED, EXIT_OK, EXIT_USAGE, iso_date
from lifecert.events.time import SHANGHAI, isoformat_local

REGISTER_ENV = "LIFECERT_MAILROOM_REGISTER"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("mailroom", help="register returned paper forms; what is "
                                                    "outstanding")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    rec = sub.add_parser("receive", help="register one returned paper form",
                         description=__doc__.split("\n\n")[2])
    rec.add_argument("--register", type=Path, default=os.environ.get(REGISTER_ENV),
                     help=f"the mailroom register (default ${REGISTER_ENV})")
    rec.add_argument("--certification-id", required=True,
                     help="the certification reference on the form")
    rec.add_argument("--agency", help="the agency whose stamp is on the form (recommended: "
                                      "without it the form completes the earliest "
                                      "certification of the retiree with that reference)")
    rec.add_argument("--retiree", required=True, help="the pension number (养老金编号)")
    rec.add_argument("--form", type=int, required=True, choices=sorted(mr.FORMS),
                     help="; ".join(f"{k}: {v}" for k, v in mr.FORMS.items()))
    rec.add_argument("--postmarked", type=iso_date, help="postmark date (none: handed in)")
    rec.add_argument("--arrived", type=iso_date, help="the day it arrived (default today)")
    scan = rec.add_mutually_exclusive_group(required=True)
    scan.add_argument("--scan", type=Path, help="the scan of the form (its SHA-256 is kept)")
    scan.add_argument("--scan-sha256", help="the scan's SHA-256, computed elsewhere")
    rec.add_argument("--documents", type=Path,
                     help="the document folder: the scan is copied there as <sha256>.<ext>")
    rec.add_argument("--again", action="store_true",
                     help="register a second copy of a form already registered")
    rec.set_defaults(func=receive)
    out = sub.add_parser("outstanding", help="forms outstanding per agency, unmatched forms")
    out.add_argument("--dsn", help="the read models' database (default: "
                                   "$LIFECERT_POSTGRES_DSN, else the local stack)")
    out.add_argument("--older-than", type=int, default=0, metavar="DAYS",
                     help="only certifications waiting at least this many days")
    out.set_defaults(func=outstanding)


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def receive(args: argparse.Namespace) -> int:
    if args.register is None:
        print(f"lifecert mailroom receive: give --register or set ${REGISTER_ENV}",
              file=sys.stderr)
        return EXIT_USAGE
    now = datetime.now(UTC)
    try:
        sha = _hash(args.scan) if args.scan is not None else (args.scan_sha256 or "").lower()
    except OSError as exc:
        print(f"cannot read the scan {args.scan}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    arrived: date = args.arrived or now.astimezone(SHANGHAI).date()
    try:
        reg = mr.registration({
            "v": mr.VERSION, "registered_at": isoformat_local(now),
            "certification_id": args.certification_id, "agency_id": args.agency,
            "retiree_id": args.retiree, "form_number": args.form,
            "postmarked_on": args.postmarked.isoformat() if args.postmarked else None,
            "received_at": datetime.combine(arrived, time(0), SHANGHAI).isoformat(),
            "scan_sha256": sha})
        if args.scan is not None and args.documents is not None:
            _keep_scan(args.scan, args.documents, sha)
        offset = mr.append(args.register, reg, again=args.again)
    except mr.RegistrationRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(f"registered form {reg.form_number} of certification {reg.certification_id} "
          f"(agency {reg.agency_id or 'not given'}) arrived {arrived.isoformat()}, scan "
          f"sha256 {sha[:12]}..., at byte {offset} of {args.register}")
    return EXIT_OK


def _keep_scan(scan: Path, documents: Path, sha: str) -> None:
    suffix = scan.suffix.lower() if scan.suffix[1:].isalnum() else ""
    target = documents / f"{sha}{suffix}"
    if target.exists():
        return
    documents.mkdir(parents=True, exist_ok=True)
    temp = documents / f".{sha}.part"
    shutil.copyfile(scan, temp)
    if _hash(temp) != sha:
        temp.unlink()
        raise mr.RegistrationRefused(f"the scan {scan} changed while it was copied; scan again")
    os.replace(temp, target)


def outstanding(args: argparse.Namespace) -> int:
    import psycopg2

    from lifecert.endpoints import postgres_dsn
    from projections import queries  # the read models: only this action needs them
    from projections.connection import connect

    try:
        conn = connect(postgres_dsn(args.dsn))
        try:
            report = queries.paper_forms(conn, older_than_days=args.older_than)
        finally:
            conn.close()
    except psycopg2.Error as exc:
        print(f"lifecert mailroom outstanding: the read models cannot be read: "
              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}",
              file=sys.stderr)
        return EXIT_FAILED
    print(f"{'agency':<24} {'outstanding':>11} {'oldest (days)':>13}")
    for row in report.outstanding:
        print(f"{row.agency_id:<24} {row.forms:>11} {row.oldest_days:>13}")
    print(f"unmatched forms (no certification yet): {len(report.unmatched)}")
    for form in report.unmatched:
        print(f"  form {form.form_number or '?'} of {form.certification_id} (agency "
              f"{form.agency_id or 'not given'}), waiting {form.waiting_days} days")
    return EXIT_OK
