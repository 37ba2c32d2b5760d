"""The mailroom clerk, as a real process: registers returned paper forms in the register.

::

    python -m lifecert_dev.partners.mailroom.simulator receive --register FILE \
        [--documents DIR] EVENTS.jsonl

For each CertificationDocumentsReceived of the JSON lines (``-`` = stdin) it "scans" the
form (:func:`fake_scan`: a small PDF naming the certification, no person), keeps the scan
in ``--documents`` under its SHA-256 and appends the registration to the register with the
register's own writer (:mod:`connectors.mailroom.register`), ``registered_at`` being the
event's ``recorded_at``: a clerk's backlog replayed at its own times, which the CLI
(``lifecert mailroom receive``, stamped now) does not do. An event's ``scan_sha256``, when
given, must be the fake scan's.

Exit codes: 0 done, 1 the register cannot be written, 2 bad input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connectors.mailroom import register as mr


def fake_scan(certification_id: str) -> bytes:
    """A scan of a form: a minimal PDF naming the certification only."""
    body = f"BT /F1 12 Tf 72 720 Td (form of certification {certification_id}) Tj ET"
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\n"
            + f"2 0 obj<</Length {len(body)}>>stream\n{body}\nendstream endobj\n".encode()
            + b"%%EOF\n")


def scan_sha256(certification_id: str) -> str:
    return hashlib.sha256(fake_scan(certification_id)).hexdigest()


def registration_of(n: int, event: dict[str, Any], documents: Path | None) -> mr.Registration:
    """The register line of the ``n``-th event (its scan kept in ``documents``)."""
    if event.get("type") != "CertificationDocumentsReceived":
        raise ValueError(f"event {n}: not a CertificationDocumentsReceived")
    scan = fake_scan(event["certification_id"])
    sha = hashlib.sha256(scan).hexdigest()
    if event.get("scan_sha256") not in (None, sha):
        raise ValueError(f"event {n}: scan_sha256 is not the fake scan's")
    reg = mr.registration({
        "v": mr.VERSION, "registered_at": event["recorded_at"],
        "certification_id": event["certification_id"],
        "agency_id": event.get("agency_id"), "retiree_id": event["retiree_id"],
        "form_number": event.get("form_number") or 1,
        "postmarked_on": event.get("postmarked_on"), "received_at": event["received_at"],
        "scan_sha256": sha})
    if documents is not None:
        documents.mkdir(parents=True, exist_ok=True)
        (documents / f"{sha}.pdf").write_bytes(scan)
    return reg


def receive(register: Path, documents: Path | None, events: Sequence[dict[str, Any]]) -> None:
    for n, event in enumerate(events, start=1):
        mr.append(register, registration_of(n, event, documents), again=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailroom-simulator")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("receive", help="register forms from JSON lines")
    r.add_argument("--register", type=Path, required=True)
    r.add_argument("--documents", type=Path)
    r.add_argument("events")
    args = parser.parse_args(argv)
    source = args.events
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    try:
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        receive(args.register, args.documents, events)
    except (ValueError, KeyError) as exc:
        print(f"bad input: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot write the register: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
