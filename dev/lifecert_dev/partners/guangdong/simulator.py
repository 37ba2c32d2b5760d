"""A simulator of the Guangdong provincial cross-region collaboration system: a real
HTTPS JSON service, run as its own process::

    python -m lifecert_dev.partners.guangdong.simulator serve --port 8471 --data-dir /var/tmp/gd \
        --tls-cert server.pem --tls-key server.key
    python -m lifecert_dev.partners.guangdong.simulator feed --url https://127.0.0.1:8471 \
        --ca-file ca.pem campaign.jsonl

It serves TLS only, with the certificate and key it is given (the test kit's harness makes
them with a throwaway CA, :mod:`lifecert_dev.testkit.tls`, whose certificate the connector
pins in its ``ca_file`` setting).

Partner API (what a city's connector uses; record shapes in :mod:`.province`):

- ``GET /api/v1/certifications?city=440600&cursor=C&limit=N``: the certifications of the
  city's retirees reported by other cities, oldest first, after the opaque cursor ``C``
  (none: from the start): ``{"items": [{"cursor": ..., "record": {...}}], "next_cursor":
  ..., "has_more": bool, "remaining": int}``. ``limit`` is capped at 1000.
- ``POST /api/v1/assistance-results`` with header ``Idempotency-Key``: a city's result of
  certifying another city's retiree. 201 ``{"ackId", "duplicate": false, "receivedAt"}``;
  the same key again: 200 with the same ``ackId`` and ``"duplicate": true``; the same key
  with another body: 409; an invalid body: 422 naming the field.
- ``POST /api/v1/assistance-cases`` with ``Idempotency-Key``: a city registers a case about
  its retiree living elsewhere in the province (``{"caseNo", "insuredId", "insuredCity",
  "registerTime", "dueDate"}``). 201 ``{"ackId": <receipt number>, "duplicate": false,
  "receivedAt"}``; the same key, or the same caseNo for the same person: 200, the same
  receipt, ``"duplicate": true`` (applied once); the caseNo for another person, or the key
  for another case: 409; an invalid body: 422. The receipt also goes on the city's feed
  (``ASSIST_CASE_RECEIPT``), and the answer later (``ASSIST_CASE_ANSWER``).
- ``POST /api/v1/assistance-cases/{caseNo}/answer`` with ``Idempotency-Key``: the assisting
  city's answer to a case routed to it (``{"result", "certNo", "assistCity",
  "assistMethod", "handlerOrgCode", "certTime", "deathDate"}``). 201 ``{"ackId",
  "duplicate": false, "receivedAt"}``; the same answer again (any key): 200, duplicate;
  another answer to an answered case: 409; a case not routed to ``assistCity``: 404.
- ``GET /api/v1/health``.

Admin API (tests and the demo; never faulted): ``POST /admin/feed`` ``{"city", "items"}``
appends records to the feed (one transaction); ``GET /admin/results``;
``POST /admin/cases`` ``{"cases": [{"caseNo", "insuredId", "insuredCity",
"registerTime"}], "assistCity"}``: other cities register cases with ``assistCity``
(default Foshan), on its feed; ``POST /admin/answer-cases`` ``{"at", "result"}``: the
local offices answer the cities' open cases (sim_state); ``GET /admin/cases``;
``POST /admin/faults`` ``{"mode": "503"|"close", "count": N|null, "after": M}`` makes
the partner API answer 503 or drop connections (``count`` times, or until mended) once
``M`` more requests (default 0) succeeded; ``DELETE /admin/faults`` mends;
``GET /admin/stats``.

With ``--token-env VAR`` set to a variable holding a secret, every request needs
``Authorization: Bearer <secret>`` (the secret is never logged). State lives in
``DATA_DIR/province.sqlite3`` (WAL), so a restart keeps the feed and the results. Once
listening, the process prints one line ``listening on https://HOST:PORT`` on stdout; its
access log goes to stderr (a client that refuses the certificate is one line there).
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connectors.guangdong import province as gd
from lifecert_dev.partners.guangdong.sim_state import (
    Faults,
    Refused,
    Store,
    decode_cursor,
    encode_cursor,
    validate_answer,
    validate_case,
    validate_result,
)

log = logging.getLogger("guangdong.simulator")


class Province(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Store, token: str | None,
                 tls: ssl.SSLContext) -> None:
        super().__init__(address, Handler)
        self.store = store
        self.token = token
        self.faults = Faults()
        self.tls = tls

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        # the handshake happens in the request's own thread (Handler.setup): a slow or
        # refusing client never holds up the accepting loop
        return self.tls.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            log.info("%s TLS handshake failed: %s", client_address[0],
                     getattr(exc, "reason", None) or exc)
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GDXRegion/1.0"
    timeout = 60  # idle keep-alive connections are dropped after this many seconds
    # Headers and body go out in two writes; with Nagle's algorithm the body then waits for
    # the client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
    server: Province
    case_no = ""  # the case of an answer's path

    def setup(self) -> None:
        super().setup()  # sets the socket's timeout first
        self.request.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
            self._authorize()
            if url.path.startswith("/api/"):
                fault = self.server.faults.take()
                if fault == "close":
                    self.close_connection = True
                    return
                if fault == "503":
                    raise Refused(503, "UNAVAILABLE", "the provincial system is under "
                                  "maintenance; retry later")
            route = _ROUTES.get((method, url.path))
            prefix, suffix = gd.CASES_PATH + "/", "/answer"
            if route is None and method == "POST" and url.path.startswith(prefix) \
                    and url.path.endswith(suffix) and len(url.path) > len(prefix + suffix):
                self.case_no = unquote(url.path[len(prefix):-len(suffix)])
                route = Handler.case_answer
            if route is None:
                raise Refused(404, "NOT_FOUND", f"no {method} {url.path}")
            status, answer = route(self, parse_qs(url.query), body)
        except Refused as refused:
            status, answer = refused.status, refused.body()
        self._send(status, answer)

    def _read_body(self) -> bytes:
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            self.close_connection = True  # the rest of the stream cannot be framed
            raise Refused(400, "INVALID_CONTENT_LENGTH", f"Content-Length {text!r} is not a "
                          "number of bytes")
        length = int(text)
        return self.rfile.read(length) if length else b""

    def _authorize(self) -> None:
        token = self.server.token
        if token is None:
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Refused(401, "UNAUTHORIZED", "a valid 'Authorization: Bearer' token is "
                          "required")

    def _send(self, status: int, answer: Any) -> None:
        data = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="gd-xregion"')
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    # -- partner API -------------------------------------------------------------------
    def health(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"status": "UP"}

    def certifications(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        city = _one(query, "city")
        if city is None:
            raise Refused(400, "MISSING_PARAMETER", "city is required (division code, "
                          "e.g. 440600 for Foshan)", "city")
        city = gd.CITY_CODES.get(city, city)  # a name is accepted for a code
        if city not in gd.CITY_NAMES:
            raise Refused(400, "UNKNOWN_CITY", f"city {city!r} is not a Guangdong city", "city")
        limit_text = _one(query, "limit") or "100"
        if not limit_text.isdigit() or int(limit_text) < 1:
            raise Refused(400, "INVALID_PARAMETER", f"limit must be a positive integer, got "
                          f"{limit_text!r}", "limit")
        cursor = _one(query, "cursor")
        after = decode_cursor(cursor) if cursor else 0
        rows, remaining = self.server.store.page(city, after, min(int(limit_text), gd.MAX_PAGE))
        items = [{"cursor": encode_cursor(seq), "record": json.loads(record)}
                 for seq, record in rows]
        return 200, {"items": items,
                     "next_cursor": items[-1]["cursor"] if items else cursor,
                     "has_more": remaining > 0, "remaining": remaining}

    def assistance_result(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        key = self.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise Refused(400, "MISSING_IDEMPOTENCY_KEY", "header Idempotency-Key is required",
                          "Idempotency-Key")
        result = _json_body(body)
        validate_result(result)
        canonical = json.dumps(result, ensure_ascii=False, sort_keys=True,
                               separators=(",", ":"))
        ack, duplicate, received = self.server.store.receive(key, canonical)
        return (200 if duplicate else 201), {"ackId": ack, "duplicate": duplicate,
                                             "receivedAt": received}

    def _key(self) -> str:
        key = self.headers.get(gd.IDEMPOTENCY_HEADER, "").strip()
        if not key:
            raise Refused(400, "MISSING_IDEMPOTENCY_KEY", "header Idempotency-Key is required",
                          gd.IDEMPOTENCY_HEADER)
        return key

    def case(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        key = self._key()
        case = validate_case(_json_body(body))
        receipt, duplicate, received = self.server.store.register_case(key, case)
        return (200 if duplicate else 201), {"ackId": receipt, "duplicate": duplicate,
                                             "receivedAt": received}

    def case_answer(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        key = self._key()
        answer = validate_answer(_json_body(body))
        ack, duplicate, received = self.server.store.answer(self.case_no, key, answer)
        return (200 if duplicate else 201), {"ackId": ack, "duplicate": duplicate,
                                             "receivedAt": received}

    # -- admin API ---------------------------------------------------------------------
    def admin_cases(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        request = _json_body(body)
        if not isinstance(request, dict) or not isinstance(request.get("cases"), list):
            raise Refused(400, "INVALID_BODY", 'expected {"cases": [...], "assistCity"}')
        assist = request.get("assistCity", gd.FOSHAN)
        receipts = [self.server.store.register_case(
            None, validate_case({"dueDate": "-", **case}), assist)[0]
            for case in request["cases"]]
        return 200, {"registered": len(receipts)}

    def admin_answer_cases(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        request = _json_body(body)
        at, result = (request.get("at"), request.get("result", "1")) \
            if isinstance(request, dict) else (None, None)
        if result not in ("1", "2", "3"):
            raise Refused(400, "INVALID_BODY", f"result must be 1, 2 or 3, got {result!r}")
        try:
            gd.parse_time(at)
        except ValueError as exc:
            raise Refused(400, "INVALID_BODY", f"at: {exc}", "at") from None
        return 200, {"answered": self.server.store.answer_cases(str(at), str(result))}

    def admin_list_cases(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"cases": self.server.store.cases()}

    def admin_feed(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        request = _json_body(body)
        if not isinstance(request, dict) or not isinstance(request.get("items"), list):
            raise Refused(400, "INVALID_BODY", 'expected {"city": CODE, "items": [...]}')
        city = request.get("city", gd.FOSHAN)
        if city not in gd.CITY_NAMES:
            raise Refused(400, "UNKNOWN_CITY", f"city {city!r} is not a Guangdong city", "city")
        last = self.server.store.append(city, request["items"])
        return 200, {"added": len(request["items"]), "last_cursor": encode_cursor(last)}

    def admin_results(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"results": self.server.store.results()}

    def admin_stats(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {**self.server.store.stats(), "faults": self.server.faults.describe()}

    def admin_faults(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        request = _json_body(body)
        mode = request.get("mode") if isinstance(request, dict) else None
        count = request.get("count") if isinstance(request, dict) else None
        after = request.get("after", 0) if isinstance(request, dict) else 0
        if mode not in ("503", "close"):
            raise Refused(400, "INVALID_BODY", f'mode must be "503" or "close", got {mode!r}',
                          "mode")
        if count is not None and (type(count) is not int or count < 1):
            raise Refused(400, "INVALID_BODY", f"count must be a positive integer or null, "
                          f"got {count!r}", "count")
        if type(after) is not int or after < 0:
            raise Refused(400, "INVALID_BODY", f"after must be a non-negative integer, "
                          f"got {after!r}", "after")
        self.server.faults.set(mode, count, after)
        return 200, self.server.faults.describe()

    def admin_mend(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        self.server.faults.set(None, None)
        return 200, self.server.faults.describe()


_ROUTES = {
    ("GET", gd.HEALTH_PATH): Handler.health,
    ("GET", gd.FEED_PATH): Handler.certifications,
    ("POST", gd.RESULTS_PATH): Handler.assistance_result,
    ("POST", gd.CASES_PATH): Handler.case,
    ("POST", "/admin/cases"): Handler.admin_cases,
    ("POST", "/admin/answer-cases"): Handler.admin_answer_cases,
    ("GET", "/admin/cases"): Handler.admin_list_cases,
    ("POST", "/admin/feed"): Handler.admin_feed,
    ("GET", "/admin/results"): Handler.admin_results,
    ("GET", "/admin/stats"): Handler.admin_stats,
    ("POST", "/admin/faults"): Handler.admin_faults,
    ("DELETE", "/admin/faults"): Handler.admin_mend,
}


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(400, "INVALID_JSON", f"the body is not JSON: {exc}") from None


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def serve(host: str, port: int, data_dir: Path, token: str | None,
          tls: ssl.SSLContext) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "province.sqlite3")
    server = Province((host, port), store, token, tls)

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
        store.close()


def feed_file(url: str, token: str | None, city: str, path: str, ca_file: Path | None,
              chunk: int = 5000) -> int:
    """Post the events of an interchange JSON-lines file that the province carries to a
    running simulator's feed (the rest are skipped and counted); the exit code."""
    from connectors.guangdong.client import ProvinceClient
    from connectors.guangdong.mapping import event_to_record
    from connectors.sdk.errors import PartnerUnavailable
    from lifecert.events.interchange import MalformedEvent, parse_line

    try:
        client = ProvinceClient(url, token, timeout=60.0, ca_file=ca_file)
    except ValueError as exc:
        print(f"feed: {exc}", file=sys.stderr)
        return 2
    records: list[dict[str, str]] = []
    skipped = fed = 0

    def flush() -> None:
        nonlocal fed
        if records:
            answer = client.post("/admin/feed", {"city": city, "items": records})
            if answer.status != 200:
                raise RuntimeError(f"POST {url}/admin/feed: HTTP {answer.status}: "
                                   f"{answer.message()}")
            fed += len(records)
            records.clear()

    try:
        with (sys.stdin if path == "-" else open(path, encoding="utf-8")) as lines:
            for n, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                event = parse_line(line, n)
                if gd.CERT_TYPE_OF_CHANNEL.get(event.get("channel") or "") is None \
                        or event["type"] != "CertificationRecorded":
                    skipped += 1
                    continue
                records.append(event_to_record(event, city))
                if len(records) >= chunk:
                    flush()
        flush()
    except (OSError, MalformedEvent, PartnerUnavailable, RuntimeError) as exc:
        where = "" if isinstance(exc, MalformedEvent) else f"{path}: "
        print(f"feed: {where}{exc}; {fed} records fed before", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"fed {fed} certifications to {gd.city_label(city)}'s feed; skipped {skipped} "
          f"events the province does not carry")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lifecert_dev.partners.guangdong.simulator",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run the provincial system's HTTPS service")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    run.add_argument("--data-dir", type=Path, required=True, help="folder of the state")
    run.add_argument("--token-env", metavar="VAR",
                     help="require 'Authorization: Bearer $VAR' on every request")
    run.add_argument("--tls-cert", type=Path, required=True,
                     help="the server's certificate (PEM), chain included")
    run.add_argument("--tls-key", type=Path, required=True,
                     help="the server's private key (PEM)")
    put = sub.add_parser("feed", help="put the certifications of an interchange JSON-lines "
                         "file that the province carries into a running simulator's feed")
    put.add_argument("file", help="interchange JSON lines (as `lifecert generate` writes), "
                     "or - for standard input")
    put.add_argument("--url", required=True, help="the simulator, e.g. https://127.0.0.1:8471")
    put.add_argument("--ca-file", type=Path, help="the CA certificate (PEM) that certified "
                     "the simulator's server certificate")
    put.add_argument("--city", default=gd.FOSHAN, help="the feed's city (default 440600)")
    put.add_argument("--token-env", metavar="VAR", help="send 'Authorization: Bearer $VAR'")
    args = parser.parse_args(argv)
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            parser.error(f"--token-env {args.token_env}: the variable is not set or empty")
    if args.command == "feed":
        return feed_file(args.url, token, gd.CITY_CODES.get(args.city, args.city), args.file,
                         args.ca_file)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        tls = server_context(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        print(f"cannot load the TLS certificate {args.tls_cert} and key {args.tls_key}: "
              f"{exc}", file=sys.stderr)
        return 1
    try:
        serve(args.host, args.port, args.data_dir, token, tls)
    except OSError as exc:
        print(f"cannot serve on {args.host}:{args.port} with state in {args.data_dir}: {exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
