"""The consular system (China Consular app's back end), as a real process: it signs the
certification cases of Foshan retirees abroad and serves them on the bureau's HTTPS feed
(:mod:`connectors.consular_app.protocol`; docs/partners/consular-app.md).

::

    python -m lifecert_dev.partners.consular_app.simulator init --state DIR
    python -m lifecert_dev.partners.consular_app.simulator push --state DIR FILE.jsonl
        [--malform CASE:FIELD ...] [--bad-signature CASE ...]
    python -m lifecert_dev.partners.consular_app.simulator population --state DIR \\
        --population EVENTS.jsonl [--certifications] [--seed N] [--start 2017-04-05]
    python -m lifecert_dev.partners.consular_app.simulator serve --state DIR \\
        --tls-cert CERT --tls-key KEY [--port P] [--token-env VAR]

``init`` makes the signing key pair (``DIR/signing-key.pem``, and the public key the bureau
pins, ``DIR/verify-key.pem``). ``push`` signs and appends cases from ConsularCaseReceived
JSON lines (interchange form; ``recorded_at`` is the push time) to ``DIR/cases.jsonl``, the
feed's store: ``--malform 2:caseNo`` damages a field of the 2nd case (``json`` for bytes
that are not JSON), ``--bad-signature 3`` signs the 3rd with another key. Pushing a line
again pushes the same case twice (a new seq). ``population`` makes one case for every
retiree living ABROAD in a generated population (``lifecert_dev.generate`` output), most of
them complete, some without the residence permit or the face check (for the staff to
reject); with ``--certifications``, one complete case per CONSULATE certification of the
log instead (same id, retiree and times: the demo then publishes the rest of the log).
``serve`` answers the feed until SIGTERM; it re-reads the store on every request, so cases
pushed meanwhile are served.

Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import random
import signal
import ssl
import sys
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from connectors.consular_app import protocol as cp
from lifecert.events.interchange import MalformedEvent, parse_event
from lifecert.events.time import SHANGHAI

KEY_ID = "consular-feed-1"
MALFORMED = {"caseNo": "LS 2017\x01", "pensionNo": "", "mission.type": "PALACE",
             "mission.country": "Canada", "documentsChecked": ["PASSPORT", "VISA"],
             "faceCheck.passed": "yes", "faceCheck.at": "2017-05-03 22:15",
             "pushedAt": "9999-12-31T23:59:59-10:00"}
MISSIONS = (("EMBASSY", "CN-EMB-US", "US"), ("CONSULATE_GENERAL", "CN-CG-VANCOUVER", "CA"),
            ("CONSULATE", "CN-CO-PERTH", "AU"), ("TRADE_OFFICE", "CN-TO-PORTMORESBY", "PG"),
            ("CARETAKER_EMBASSY", "CT-CH-FOR-CN-TUVALU", "TV"))


class InputError(Exception):
    """The input or options are not what the command takes (exit code 2)."""


# -- the store ------------------------------------------------------------------------------


def signing_key(state: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key((state / "signing-key.pem").read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def init(state: Path) -> Path:
    state.mkdir(parents=True, exist_ok=True)
    public = state / "verify-key.pem"
    if not (state / "signing-key.pem").exists():
        key = Ed25519PrivateKey.generate()
        (state / "signing-key.pem").write_bytes(key.private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(Encoding.PEM,
                                                         PublicFormat.SubjectPublicKeyInfo))
    return public


def append(state: Path, items: Iterable[tuple[bytes, bytes]]) -> int:
    """Append signed (payload, signature) pairs under the next seqs; returns how many."""
    store = state / "cases.jsonl"
    count = 0
    with store.open("a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        seq = sum(1 for line in f if line.strip())
        for payload, signature in items:
            seq += 1
            count += 1
            f.write(json.dumps({"seq": seq, "key_id": KEY_ID,
                                "payload": base64.b64encode(payload).decode(),
                                "signature": base64.b64encode(signature).decode()}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return count


def read_store(state: Path) -> list[dict[str, Any]]:
    try:
        with (state / "cases.jsonl").open(encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def sign_payloads(state: Path, payloads: Sequence[bytes], bad: frozenset[int] = frozenset()
                  ) -> list[tuple[bytes, bytes]]:
    key, other = signing_key(state), Ed25519PrivateKey.generate()
    return [(p, (other if n in bad else key).sign(p)) for n, p in enumerate(payloads, 1)]


def payload_bytes(case: dict[str, Any]) -> bytes:
    return json.dumps(case, ensure_ascii=False, separators=(",", ":")).encode()


def _malformed(case: dict[str, Any], field: str) -> bytes:
    if field == "json":
        return b'{"caseNo": "LS-1", '
    value = MALFORMED[field]
    target = case
    *outer, last = field.split(".")
    for part in outer:
        target = target[part]
    target[last] = value
    return payload_bytes(case)


def cases_of(lines: Iterable[str], source: str) -> list[dict[str, Any]]:
    cases = []
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            event = parse_event(json.loads(text), allowed=("ConsularCaseReceived",))
        except json.JSONDecodeError as exc:
            raise InputError(f"{source} line {number}: not JSON ({exc.msg})") from None
        except MalformedEvent as exc:
            raise InputError(f"{source} {exc.at_line(number).describe()}") from None
        cases.append(cp.event_to_case(event))
    return cases


def push(state: Path, cases: Sequence[dict[str, Any]], malform: dict[int, str],
         bad: frozenset[int]) -> int:
    for n in [*malform, *bad]:
        if not 1 <= n <= len(cases):
            raise InputError(f"case {n}: there are only {len(cases)} cases")
    payloads = [_malformed(c, malform[n]) if n in malform else payload_bytes(c)
                for n, c in enumerate(cases, 1)]
    return append(state, sign_payloads(state, payloads, bad))


# -- the population --------------------------------------------------------------------------


def certification_cases(lines: Iterable[str], seed: int) -> list[dict[str, Any]]:
    """One complete case per CONSULATE CertificationRecorded of a campaign log: the same
    id (the case number), retiree and times (performed when the face was checked,
    pushed when the log recorded it), a mission drawn at random. The demo publishes the
    rest of the log itself and lets staff approve these."""
    rng = random.Random(seed)
    cases = []
    for text in lines:
        obj = json.loads(text) if text.strip() else None
        if not isinstance(obj, dict) or obj.get("type") != "CertificationRecorded" \
                or obj.get("channel") != "CONSULATE":
            continue
        kind, mission, country = rng.choice(MISSIONS)
        cases.append(cp.event_to_case({
            "case_id": obj["certification_id"], "retiree_id": obj["retiree_id"],
            "mission_id": mission, "mission_kind": kind, "country": country,
            "passport_checked": True, "residence_permit_checked": True,
            "face_checked": True, "performed_at": obj["performed_at"],
            "recorded_at": obj["recorded_at"]}))
    return cases


def population_cases(lines: Iterable[str], seed: int, start: date) -> list[dict[str, Any]]:
    """One case per retiree living ABROAD, in time order from ``start``."""
    rng = random.Random(seed)
    at = datetime(start.year, start.month, start.day, 9, 0, tzinfo=SHANGHAI)
    cases: list[dict[str, Any]] = []
    for text in lines:
        obj = json.loads(text) if text.strip() else None
        if not isinstance(obj, dict) or obj.get("type") != "RetireeEnrolled" \
                or obj.get("residence") != "ABROAD":
            continue
        at += timedelta(minutes=rng.randint(5, 600))
        kind, mission, country = rng.choice(MISSIONS)
        country = obj.get("country") or country
        event = {"case_id": f"LS{start.year}-{len(cases) + 1:06d}",
                 "retiree_id": obj["retiree_id"], "mission_id": mission,
                 "mission_kind": kind, "country": country, "passport_checked": True,
                 "residence_permit_checked": rng.random() < 0.95,
                 "face_checked": rng.random() < 0.97,
                 "performed_at": at - timedelta(hours=rng.randint(2, 30)),
                 "recorded_at": at}
        cases.append(cp.event_to_case(event))
    return cases


# -- the feed ---------------------------------------------------------------------------------


class Feed(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: Path, token: str | None,
                 tls: ssl.SSLContext) -> None:
        super().__init__(address, Handler)
        self.state, self.token, self.tls = state, token, tls

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        return self.tls.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ConsularFeed/1.0"
    timeout = 60

    def setup(self) -> None:
        super().setup()
        self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        server = self.server
        assert isinstance(server, Feed)
        parts = urlsplit(self.path)
        if parts.path == cp.HEALTH_PATH:
            return self._answer(200, {"status": "UP"})
        if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
            return self._answer(401, {"message": "missing or wrong bearer token"})
        if not parts.path.startswith("/v1/bureaus/") or not parts.path.endswith("/cases"):
            return self._answer(404, {"message": f"no such resource {parts.path}"})
        query = parse_qs(parts.query)
        try:
            after = int(query.get("after", ["0"])[0])
            limit = min(1000, max(1, int(query.get("limit", ["200"])[0])))
        except ValueError:
            return self._answer(400, {"message": "after and limit must be integers",
                                      "field": "after"})
        cases = read_store(server.state)
        page = [c for c in cases if c["seq"] > after][:limit]
        self._answer(200, {"cases": page, "last_seq": len(cases)})


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def serve(host: str, port: int, state: Path, token: str | None, tls: ssl.SSLContext) -> None:
    server = Feed((host, port), state, token, tls)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"listening on https://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# -- command line -------------------------------------------------------------------------------


def _parse_malform(spec: str) -> tuple[int, str]:
    case, sep, field = spec.partition(":")
    if not sep or not case.isdigit() or field not in {*MALFORMED, "json"}:
        raise InputError(f"--malform {spec!r}: expected CASE:FIELD, FIELD one of "
                         f"{', '.join(MALFORMED)}, json")
    return int(case), field


def _run(args: argparse.Namespace) -> int:
    state = Path(args.state)
    if args.command == "init":
        print(init(state))
        return 0
    if args.command == "push":
        malform = dict(_parse_malform(s) for s in args.malform)
        if args.file == "-":
            cases = cases_of(sys.stdin, "stdin")
        else:
            with open(args.file, encoding="utf-8") as f:
                cases = cases_of(f, args.file)
        count = push(state, cases, malform, frozenset(args.bad_signature))
        print(f"pushed {count} cases")
        return 0
    if args.command == "population":
        with open(args.population, encoding="utf-8") as f:
            cases = certification_cases(f, args.seed) if args.certifications \
                else population_cases(f, args.seed, date.fromisoformat(args.start))
        what = "CONSULATE certifications" if args.certifications else "retirees abroad"
        print(f"pushed {push(state, cases, {}, frozenset())} cases ({what})")
        return 0
    token = os.environ.get(args.token_env) if args.token_env else None
    serve(args.host, args.port, state, token, server_context(Path(args.tls_cert),
                                                             Path(args.tls_key)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lifecert_dev.partners.consular_app.simulator",
        description="The consular system: signs cases and serves the bureau's case feed.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="make the signing key pair; print the public key's path")
    p.add_argument("--state", required=True)
    p = sub.add_parser("push", help="sign and append cases (ConsularCaseReceived JSON lines)")
    p.add_argument("--state", required=True)
    p.add_argument("--malform", action="append", default=[], metavar="CASE:FIELD")
    p.add_argument("--bad-signature", action="append", type=int, default=[], metavar="CASE")
    p.add_argument("file", help="interchange JSON lines, or - for stdin")
    p = sub.add_parser("population", help="one case per retiree abroad of a population")
    p.add_argument("--state", required=True)
    p.add_argument("--population", required=True, help="generated events (JSON lines)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--start", default="2017-04-05", help="first push date (YYYY-MM-DD)")
    p.add_argument("--certifications", action="store_true",
                   help="one case per CONSULATE CertificationRecorded of the log instead")
    p = sub.add_parser("serve", help="serve the feed over HTTPS until SIGTERM")
    p.add_argument("--state", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert", required=True)
    p.add_argument("--tls-key", required=True)
    p.add_argument("--token-env", help="environment variable holding the bearer token")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (InputError, OSError, ValueError, KeyError) as exc:
        print(f"consular simulator {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
