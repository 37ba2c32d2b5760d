"""A simulator of Macau's Social Security Fund (SSF) interface with Foshan: a real HTTPS
JSON service requiring client certificates, run as its own process::

    python -m lifecert_dev.partners.macau_ssf.simulator serve --port 9443 --data-dir D \\
        --tls-cert server.pem --tls-key server.key --client-ca bureau-ca.pem
    python -m lifecert_dev.partners.macau_ssf.simulator populate --url https://127.0.0.1:9443 \\
        --ca-file ca.pem --client-cert c.pem --client-key c.key --retirees 40 \\
        --beneficiaries 25 --seed 7

Partner API (docs/partners/macau-ssf.md; :mod:`connectors.macau_ssf.ssf`):
``GET /fss/v1/comunicacoes``, ``POST /fss/v1/resultados``, ``GET /fss/v1/saude``. A
client without a certificate from ``--client-ca`` is refused in the TLS handshake.

Admin API (tests and the demo; never faulted): ``POST /admin/comunicacoes``
``{"registos": [...]}`` appends communications; ``GET /admin/resultados`` lists the
results SSF applied (once each; ``posts`` counts the deliveries); ``POST /admin/faults``
``{"mode": "503"}`` / ``DELETE /admin/faults``; ``GET /admin/stats``; ``GET
/admin/pedidos`` lists Foshan's requests (``POST /fss/v1/pedidos``) SSF holds, and ``POST
/admin/responder`` ``{"resultado": "VIVO" | "NAO_ENCONTRADO" | "FALECIDO", "data_hora": T}``
has SSF answer every request not answered yet (VIVO: a PROVA_DE_VIDA first; no
``data_hora``: each on its ``data_limite``, 17:00).

SSF answers Foshan's request with a form-4 certification of the retiree: a PROVA_DE_VIDA
appended (``/admin/comunicacoes``) performed at or after the request's time answers it (a
RESPOSTA_PEDIDO VIVO naming it), as does one already listed when the request arrives.

SSF applies a result once: by its ``Chave-Idempotencia``, and by its case (the same answer
to an answered case under another key is a duplicate with the first receipt; another
answer is refused with 409). Applying a result appends a ``RECIBO_RESULTADO`` to the
communications. State lives in ``DATA_DIR/fss.sqlite3`` (WAL): a restart keeps it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sqlite3
import ssl
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.macau_ssf import ssf
from lifecert.events.time import SHANGHAI

log = logging.getLogger("macau_ssf.simulator")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    n INTEGER PRIMARY KEY AUTOINCREMENT, chave TEXT NOT NULL UNIQUE,
    n_processo TEXT NOT NULL UNIQUE, answer TEXT NOT NULL, n_recibo TEXT NOT NULL,
    received_at TEXT NOT NULL, posts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (chave TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pedidos (
    n INTEGER PRIMARY KEY AUTOINCREMENT, n_pedido TEXT NOT NULL UNIQUE,
    pensionista TEXT NOT NULL, pedido_em TEXT NOT NULL, limite TEXT NOT NULL,
    n_recibo TEXT NOT NULL, posts INTEGER NOT NULL, respondido INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS pedido_keys (chave TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""
_REQUEST_FIELDS = ("n_pedido_foshan", "n_pensionista_foshan", "data_hora_pedido", "data_limite")
_RESULT_FIELDS = ("n_processo", "n_beneficiario", "resultado", "metodo",
                  "n_certificacao_foshan", "balcao_foshan", "data_hora_verificacao")


class Refused(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field

    def body(self) -> dict[str, Any]:
        return {"mensagem": self.message, **({"campo": self.field} if self.field else {})}


class Store:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def append(self, records: list[Any]) -> int:
        """Add communications; a form-4 PROVA_DE_VIDA of a retiree Foshan asked about
        answers the request (:meth:`_answer_by_proof`)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for record in records:
                    self._db.execute("INSERT INTO feed (record) VALUES (?)",
                                     (json.dumps(record, ensure_ascii=False),))
                    self._answer_by_proof(record)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return len(records)

    def _answer_by_proof(self, proof: Any) -> bool:
        """A form-4 certification answers the retiree's open request when it was performed
        at or after the request's time (after its ``data_limite``: late): a RESPOSTA_PEDIDO
        VIVO naming the proof's ``n_registo``, communicated with it. A record that does not
        read as a proof (the connector refuses it) answers nothing. Whether it answered."""
        if not _is_proof(proof):
            return False
        row = self._db.execute("SELECT n, n_pedido, pedido_em FROM pedidos WHERE "
                               "pensionista = ? AND respondido = 0 ORDER BY n LIMIT 1",
                               (proof["n_pensionista_foshan"],)).fetchone()
        if row is None:
            return False
        n, pedido, asked_at = row
        if datetime.fromisoformat(proof["data_hora_prova"]) < datetime.fromisoformat(asked_at):
            return False
        answer = {"tipo": ssf.ANSWER, "n_registo": proof["n_registo"],
                  "n_pensionista_foshan": proof["n_pensionista_foshan"],
                  "balcao": proof["balcao"], "n_pedido_foshan": pedido, "resultado": "VIVO",
                  "metodo": "BALCAO", "data_hora_verificacao": proof["data_hora_prova"],
                  "data_hora_comunicacao": proof["data_hora_comunicacao"]}
        self._db.execute("INSERT INTO feed (record) VALUES (?)",
                         (json.dumps(answer, ensure_ascii=False),))
        self._db.execute("UPDATE pedidos SET respondido = 1 WHERE n = ?", (n,))
        return True

    def page(self, after: int, limit: int) -> tuple[list[tuple[int, str]], int]:
        with self._lock:
            rows = self._db.execute("SELECT seq, record FROM feed WHERE seq > ? ORDER BY seq "
                                    "LIMIT ?", (after, limit)).fetchall()
            last = rows[-1][0] if rows else after
            (left,) = self._db.execute("SELECT count(*) FROM feed WHERE seq > ?",
                                       (last,)).fetchone()
            return rows, left

    def receive(self, chave: str, result: dict[str, Any]) -> tuple[str, bool, str]:
        """(n_recibo, duplicate, received_at) of a result; Refused(409) for a second,
        different answer to a case."""
        answer = json.dumps({k: result.get(k) for k in ("resultado", "n_certificacao_foshan",
                                                       "data_obito")}, sort_keys=True)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT r.n, r.n_recibo, r.received_at, r.answer, r.n_processo FROM results r "
                    "LEFT JOIN keys k ON k.n = r.n WHERE k.chave = ? OR r.n_processo = ? "
                    "ORDER BY (k.chave = ?) DESC LIMIT 1",
                    (chave, result["n_processo"], chave)).fetchone()
                if row is not None:
                    if row[3] != answer or row[4] != result["n_processo"]:
                        raise Refused(409, f"o processo {row[4]} já tem outra resposta "
                                      f"(recibo {row[1]}): contacte o FSS", "resultado")
                    self._db.execute("UPDATE results SET posts = posts + 1 WHERE n = ?",
                                     (row[0],))
                    self._db.execute("INSERT OR IGNORE INTO keys VALUES (?, ?)", (chave, row[0]))
                    self._db.execute("COMMIT")
                    return row[1], True, row[2]
                now = datetime.now(UTC).astimezone(SHANGHAI).isoformat(timespec="seconds")
                (n,) = self._db.execute("SELECT coalesce(max(n), 0) + 1 FROM results").fetchone()
                recibo = f"FSS-R{n:08d}"
                self._db.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, 1)",
                                 (n, chave, result["n_processo"], answer, recibo, now))
                self._db.execute("INSERT INTO keys VALUES (?, ?)", (chave, n))
                receipt = {"tipo": ssf.RECEIPT, "n_processo": result["n_processo"],
                           "n_beneficiario": result["n_beneficiario"], "n_recibo": recibo,
                           "data_hora_rececao": now, "data_hora_comunicacao": now}
                self._db.execute("INSERT INTO feed (record) VALUES (?)", (json.dumps(receipt),))
                self._db.execute("COMMIT")
                return recibo, False, now
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def request(self, chave: str, body: dict[str, Any]) -> tuple[str, bool, str]:
        """(n_recibo, duplicate, received_at) of Foshan's request; a request already held
        (same key, or same n_pedido_foshan) is a duplicate with the first receipt."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT p.n, p.n_recibo, p.pensionista FROM pedidos p LEFT JOIN pedido_keys "
                    "k ON k.n = p.n WHERE k.chave = ? OR p.n_pedido = ? LIMIT 1",
                    (chave, body["n_pedido_foshan"])).fetchone()
                now = datetime.now(UTC).astimezone(SHANGHAI).isoformat(timespec="seconds")
                if row is not None:
                    if row[2] != body["n_pensionista_foshan"]:
                        raise Refused(409, "o pedido já existe para outro pensionista",
                                      "n_pensionista_foshan")
                    self._db.execute("UPDATE pedidos SET posts = posts + 1 WHERE n = ?",
                                     (row[0],))
                    self._db.execute("INSERT OR IGNORE INTO pedido_keys VALUES (?, ?)",
                                     (chave, row[0]))
                    self._db.execute("COMMIT")
                    return row[1], True, now
                (n,) = self._db.execute("SELECT coalesce(max(n), 0) + 1 FROM pedidos").fetchone()
                recibo = f"FSS-Q{n:08d}"
                self._db.execute("INSERT INTO pedidos (n, n_pedido, pensionista, pedido_em, "
                                 "limite, n_recibo, posts) VALUES (?, ?, ?, ?, ?, ?, 1)",
                                 (n, body["n_pedido_foshan"], body["n_pensionista_foshan"],
                                  body["data_hora_pedido"], body["data_limite"], recibo))
                self._db.execute("INSERT INTO pedido_keys VALUES (?, ?)", (chave, n))
                receipt = {"tipo": ssf.REQUEST_RECEIPT, "n_pedido_foshan": body["n_pedido_foshan"],
                           "n_pensionista_foshan": body["n_pensionista_foshan"],
                           "n_recibo": recibo, "data_hora_rececao": now,
                           "data_hora_comunicacao": now}
                self._db.execute("INSERT INTO feed (record) VALUES (?)", (json.dumps(receipt),))
                # the retiree may have certified already (the proof reached SSF's list first)
                for (record,) in self._db.execute(
                        "SELECT record FROM feed WHERE instr(record, ?) > 0 ORDER BY seq",
                        (json.dumps(body["n_pensionista_foshan"]),)).fetchall():
                    proof = json.loads(record)
                    if isinstance(proof, dict) and proof.get("n_pensionista_foshan") == \
                            body["n_pensionista_foshan"] and self._answer_by_proof(proof):
                        break
                self._db.execute("COMMIT")
                return recibo, False, now
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def answer_requests(self, at: str | None = None, resultado: str = "VIVO") -> int:
        """SSF answers every request of Foshan's not answered yet, at ``at`` (ISO 8601 with
        offset; default: each on its ``data_limite``, 17:00): ``VIVO``, a form-4
        PROVA_DE_VIDA then the RESPOSTA_PEDIDO naming it; ``NAO_ENCONTRADO`` (a home visit
        found nobody) or ``FALECIDO`` (died on ``at``'s day), the RESPOSTA_PEDIDO only.
        How many."""
        if resultado not in ssf.OUTCOMES.values():
            raise ValueError(f"resultado must be one of {sorted(ssf.OUTCOMES.values())}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            rows = self._db.execute("SELECT n, n_pedido, pensionista, limite FROM pedidos "
                                    "WHERE respondido = 0 ORDER BY n").fetchall()
            for n, pedido, pensionista, limite in rows:
                when = at or f"{limite}T17:00:00+08:00"
                common = {"n_pensionista_foshan": pensionista, "balcao": "MO-SSF-SEDE",
                          "data_hora_comunicacao": when}
                records: list[dict[str, Any]] = []
                if resultado == "VIVO":
                    registo = f"FSS-P4-Q{n:08d}"
                    records.append({"tipo": ssf.PROOF, "n_registo": registo, **common,
                                    "bir": _card(pensionista), "data_hora_prova": when})
                else:
                    registo = f"FSS-V-Q{n:08d}"  # the home visit's record
                records.append({"tipo": ssf.ANSWER, "n_registo": registo, **common,
                                "n_pedido_foshan": pedido, "resultado": resultado,
                                "metodo": "BALCAO" if resultado == "VIVO"
                                else "VISITA_DOMICILIARIA", "data_hora_verificacao": when,
                                **({"data_obito": when[:10]} if resultado == "FALECIDO"
                                   else {})})
                for record in records:
                    self._db.execute("INSERT INTO feed (record) VALUES (?)",
                                     (json.dumps(record, ensure_ascii=False),))
                self._db.execute("UPDATE pedidos SET respondido = 1 WHERE n = ?", (n,))
            self._db.execute("COMMIT")
            return len(rows)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT n_pedido, pensionista, n_recibo, posts, respondido "
                                    "FROM pedidos ORDER BY n").fetchall()
        return [{"n_pedido_foshan": r[0], "n_pensionista_foshan": r[1], "n_recibo": r[2],
                 "posts": r[3], "respondido": bool(r[4])} for r in rows]

    def results(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT chave, n_processo, answer, n_recibo, posts "
                                    "FROM results ORDER BY n").fetchall()
        return [{"chave": r[0], "n_processo": r[1], **json.loads(r[2]), "n_recibo": r[3],
                 "posts": r[4]} for r in rows]

    def stats(self) -> dict[str, int]:
        with self._lock:
            (feed,) = self._db.execute("SELECT count(*) FROM feed").fetchone()
            (results,) = self._db.execute("SELECT count(*) FROM results").fetchone()
            (posts,) = self._db.execute("SELECT coalesce(sum(posts), 0) FROM results").fetchone()
        return {"comunicacoes": feed, "resultados": results, "entregas": posts}


def _is_proof(record: Any) -> bool:
    """Whether ``record`` reads as a form-4 PROVA_DE_VIDA (what the connector would take)."""
    if not isinstance(record, dict) or record.get("tipo") != ssf.PROOF:
        return False
    if not all(isinstance(record.get(k), str) and record[k] for k in (
            "n_registo", "n_pensionista_foshan", "balcao", "data_hora_prova",
            "data_hora_comunicacao")) or ssf.bir_problem(record.get("bir")) is not None:
        return False
    try:
        return datetime.fromisoformat(record["data_hora_prova"]).utcoffset() is not None
    except ValueError:
        return False


def _card(seed: str) -> str:
    rng = random.Random(seed)
    while True:
        try:
            return ssf.bir(f"{rng.choice('157')}{rng.randrange(10**6):06d}")
        except ValueError:
            continue


def validate_request(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(422, "o corpo deve ser um objecto JSON")
    for name in _REQUEST_FIELDS:
        if not isinstance(body.get(name), str) or not body[name]:
            raise Refused(422, f"campo {name} em falta ou vazio", name)
    try:
        if datetime.fromisoformat(body["data_hora_pedido"]).utcoffset() is None:
            raise ValueError
    except ValueError:
        raise Refused(422, "data_hora_pedido deve ser uma hora ISO 8601 com fuso",
                      "data_hora_pedido") from None
    try:
        date.fromisoformat(body["data_limite"])
    except ValueError:
        raise Refused(422, "data_limite deve ser uma data AAAA-MM-DD", "data_limite") from None
    return body


def validate_result(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused(422, "o corpo deve ser um objecto JSON")
    for name in _RESULT_FIELDS:
        if not isinstance(body.get(name), str) or not body[name]:
            raise Refused(422, f"campo {name} em falta ou vazio", name)
    if body["resultado"] not in ssf.OUTCOMES.values():
        raise Refused(422, f"resultado deve ser um de {sorted(ssf.OUTCOMES.values())}",
                      "resultado")
    if (body["resultado"] == "FALECIDO") != isinstance(body.get("data_obito"), str):
        raise Refused(422, "data_obito é obrigatória só com FALECIDO", "data_obito")
    return body


class Fund(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Store, tls: ssl.SSLContext) -> None:
        super().__init__(address, Handler)
        self.store, self.tls, self.fault = store, tls, False

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
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
    server_version = "FSS-Interop/1.0"
    timeout = 60
    disable_nagle_algorithm = True
    server: Fund

    def setup(self) -> None:
        super().setup()
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
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit():
                self.close_connection = True
                raise Refused(400, "Content-Length inválido")
            body = self.rfile.read(int(length)) if int(length) else b""
            if url.path.startswith("/fss/") and self.server.fault:
                raise Refused(503, "serviço em manutenção; tente mais tarde")
            route = _ROUTES.get((method, url.path))
            if route is None:
                raise Refused(404, f"sem {method} {url.path}")
            status, answer = route(self, parse_qs(url.query), body)
        except Refused as refused:
            status, answer = refused.status, refused.body()
        data = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def health(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"estado": "OK"}

    def feed(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        cursors = query.get("cursor")
        cursor = cursors[-1] if cursors else None
        if cursor is not None and not (cursor.startswith("FSS") and cursor[3:].isdigit()):
            raise Refused(400, f"cursor {cursor!r} não foi emitido pelo FSS", "cursor")
        limit = (query.get("limite") or ["100"])[-1]
        if not limit.isdigit() or int(limit) < 1:
            raise Refused(400, "limite deve ser um inteiro positivo", "limite")
        rows, left = self.server.store.page(int(cursor[3:]) if cursor else 0,
                                            min(int(limit), ssf.MAX_PAGE))
        return 200, {"itens": [{"cursor": f"FSS{seq:010d}", "registo": json.loads(record)}
                               for seq, record in rows], "restantes": left}

    def result(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        chave = self.headers.get(ssf.IDEMPOTENCY_HEADER, "").strip()
        if not chave:
            raise Refused(400, f"cabeçalho {ssf.IDEMPOTENCY_HEADER} em falta",
                          ssf.IDEMPOTENCY_HEADER)
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Refused(400, "o corpo não é JSON") from None
        recibo, duplicate, at = self.server.store.receive(chave, validate_result(parsed))
        return (200 if duplicate else 201), {"n_recibo": recibo, "duplicado": duplicate,
                                             "data_hora_rececao": at}

    def pedido(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        chave = self.headers.get(ssf.IDEMPOTENCY_HEADER, "").strip()
        if not chave:
            raise Refused(400, f"cabeçalho {ssf.IDEMPOTENCY_HEADER} em falta",
                          ssf.IDEMPOTENCY_HEADER)
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Refused(400, "o corpo não é JSON") from None
        recibo, duplicate, at = self.server.store.request(chave, validate_request(parsed))
        return (200 if duplicate else 201), {"n_recibo": recibo, "duplicado": duplicate,
                                             "data_hora_rececao": at}

    def admin_requests(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"pedidos": self.server.store.requests()}

    def admin_answer(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        request = json.loads(body or b"{}")
        at = request.get("data_hora") if isinstance(request, dict) else None
        if at is not None:
            try:
                if not isinstance(at, str) or datetime.fromisoformat(at).utcoffset() is None:
                    raise ValueError(at)
            except ValueError:
                raise Refused(400, "data_hora deve ser uma hora ISO 8601 com fuso",
                              "data_hora") from None
        resultado = request.get("resultado", "VIVO") if isinstance(request, dict) else "VIVO"
        if resultado not in ssf.OUTCOMES.values():
            raise Refused(400, f"resultado deve ser um de {sorted(ssf.OUTCOMES.values())}",
                          "resultado")
        return 200, {"respondidos": self.server.store.answer_requests(at, resultado)}

    def admin_append(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        request = json.loads(body)
        if not isinstance(request, dict) or not isinstance(request.get("registos"), list):
            raise Refused(400, 'esperado {"registos": [...]}')
        return 200, {"acrescentados": self.server.store.append(request["registos"])}

    def admin_results(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {"resultados": self.server.store.results()}

    def admin_stats(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        return 200, {**self.server.store.stats(), "avaria": self.server.fault}

    def admin_fault(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        self.server.fault = True
        return 200, {"avaria": True}

    def admin_mend(self, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        self.server.fault = False
        return 200, {"avaria": False}


_ROUTES = {
    ("GET", ssf.HEALTH_PATH): Handler.health,
    ("GET", ssf.FEED_PATH): Handler.feed,
    ("POST", ssf.RESULTS_PATH): Handler.result,
    ("POST", ssf.REQUESTS_PATH): Handler.pedido,
    ("GET", "/admin/pedidos"): Handler.admin_requests,
    ("POST", "/admin/responder"): Handler.admin_answer,
    ("POST", "/admin/comunicacoes"): Handler.admin_append,
    ("GET", "/admin/resultados"): Handler.admin_results,
    ("GET", "/admin/stats"): Handler.admin_stats,
    ("POST", "/admin/faults"): Handler.admin_fault,
    ("DELETE", "/admin/faults"): Handler.admin_mend,
}


def server_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED  # the bureau's client certificate
    context.load_verify_locations(cafile=str(client_ca))
    return context


def population(retirees: int, beneficiaries: int, seed: int) -> list[dict[str, Any]]:
    """SSF's communications for a demo: form-4 certifications of ``retirees`` Foshan
    retirees in Macau (ids ``FS-MO-<n>``; one in ten dies instead, one in three has its
    form delivered) and ``beneficiaries`` SSF beneficiaries living in Foshan to certify."""
    rng = random.Random(seed)
    start = datetime(2017, 4, 5, 9, 0, tzinfo=SHANGHAI)
    out: list[dict[str, Any]] = []

    def card() -> str:
        while True:
            try:
                return ssf.bir(f"{rng.choice('157')}{rng.randrange(10**6):06d}")
            except ValueError:
                continue

    for n in range(retirees):
        at = start + timedelta(days=rng.randrange(70), minutes=rng.randrange(480))
        said = (at + timedelta(hours=2)).isoformat()
        rid = f"FS-MO-{n:05d}"
        if n % 10 == 9:
            out.append({"tipo": ssf.DEATH, "n_pensionista_foshan": rid, "bir": card(),
                        "data_obito": (at - timedelta(days=3)).date().isoformat(),
                        "entidade_informante": "MO-DSI", "data_hora_comunicacao": said})
            continue
        reg = f"FSS-P4-{seed}-{n:05d}"
        out.append({"tipo": ssf.PROOF, "n_registo": reg, "n_pensionista_foshan": rid,
                    "bir": card(), "balcao": "MO-SSF-SEDE", "data_hora_prova": at.isoformat(),
                    "data_hora_comunicacao": said})
        if n % 3 == 0:
            out.append({"tipo": ssf.FORM_DELIVERED, "n_registo": reg,
                        "n_pensionista_foshan": rid, "balcao": "MO-SSF-SEDE",
                        "data_hora_entrega": (at + timedelta(days=6)).isoformat(),
                        "data_hora_comunicacao": (at + timedelta(days=6, hours=1)).isoformat()})
    for n in range(beneficiaries):
        at = start + timedelta(days=rng.randrange(40), minutes=rng.randrange(480))
        out.append({"tipo": ssf.BENEFICIARY, "n_processo": f"FSS-P3-{seed}-{n:05d}",
                    "n_beneficiario": f"{seed % 100:02d}{n:06d}", "bir": card(),
                    "prestacao": rng.choice(ssf.BENEFITS), "data_hora_pedido": at.isoformat(),
                    "data_hora_comunicacao": at.isoformat()})
    out.sort(key=lambda r: r["data_hora_comunicacao"])
    return out


def serve(host: str, port: int, data_dir: Path, tls: ssl.SSLContext) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "fss.sqlite3")
    server = Fund((host, port), store, tls)

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lifecert_dev.partners.macau_ssf.simulator",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="run SSF's HTTPS service")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, required=True, help="TCP port (0: any free port)")
    run.add_argument("--data-dir", type=Path, required=True)
    run.add_argument("--tls-cert", type=Path, required=True)
    run.add_argument("--tls-key", type=Path, required=True)
    run.add_argument("--client-ca", type=Path, required=True,
                     help="the CA whose client certificates are accepted (the bureau's)")
    pop = sub.add_parser("populate", help="put a generated population into a running SSF")
    pop.add_argument("--url", required=True)
    pop.add_argument("--ca-file", required=True)
    pop.add_argument("--client-cert", required=True)
    pop.add_argument("--client-key", required=True)
    pop.add_argument("--retirees", type=int, default=40)
    pop.add_argument("--beneficiaries", type=int, default=25)
    pop.add_argument("--seed", type=int, default=2017)
    args = parser.parse_args(argv)
    if args.command == "populate":
        from connectors.macau_ssf.connector import SsfClient

        client = SsfClient(args.url, 30.0, ca_file=args.ca_file, client_cert=args.client_cert,
                           client_key=args.client_key)
        records = population(args.retirees, args.beneficiaries, args.seed)
        answer = client.post("/admin/comunicacoes", {"registos": records})
        client.close()
        print(f"HTTP {answer.status}: {len(records)} communications", flush=True)
        return 0 if answer.status == 200 else 1
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        tls = server_context(args.tls_cert, args.tls_key, args.client_ca)
    except (OSError, ssl.SSLError) as exc:
        print(f"cannot load the TLS files: {exc}", file=sys.stderr)
        return 1
    serve(args.host, args.port, args.data_dir, tls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
