"""The simulator's state and rules, apart from HTTP: the feed, the results and the
assistance cases in SQLite, the injected faults, the feed's cursors and the checks of a
posted result, case and answer.

Assistance cases: either city registers a case with the province (a city's connector by
``POST /api/v1/assistance-cases``; the other cities' cases for Foshan by the admin API);
the province puts it (or its receipt) on the feeds and routes it to the city where the
retiree lives. That city's local office answers it when it certifies the retiree: a
certification of the case's retiree by another city's office, certified at or after the
case was registered, appended to the insuring city's feed, answers the case (whichever of
the two reaches the province first); ``answer_cases`` makes the offices answer the cases
still open (certified alive: a certification record first; not found; deceased)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.guangdong import province as gd
from lifecert.events.time import SHANGHAI

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    city TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_city_seq ON feed (city, seq);
CREATE TABLE IF NOT EXISTS cases (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    case_no TEXT NOT NULL UNIQUE,
    insured_id TEXT NOT NULL,
    insured_city TEXT NOT NULL,
    assist_city TEXT NOT NULL,
    register_time TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,    -- a city's post (NULL: another city's, by the admin API)
    receipt_no TEXT NOT NULL,
    received_at TEXT NOT NULL,
    posts INTEGER NOT NULL,
    answer TEXT,                    -- the answer's canonical JSON
    answer_key TEXT UNIQUE,
    answer_ack TEXT,
    answered_at TEXT,
    answer_posts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS results (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    ack_id TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    posts INTEGER NOT NULL
);
"""


class Refused(Exception):
    """An answer other than success: HTTP status, machine code, message, field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def item_id(seq: int) -> str:
    return f"GDXT{seq:012d}"


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"feed:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix == "feed" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise Refused(400, "INVALID_CURSOR", f"cursor {cursor!r} was not issued by this feed; "
                  "resume from a cursor the feed returned, or omit it to read from the start",
                  "cursor")


class Store:
    """The simulator's state in SQLite; one connection behind a lock (the HTTP server
    runs a thread per connection)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL + NORMAL survives the process being killed (not a power cut): enough here.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def append(self, city: str, records: list[Any]) -> int:
        """Add records to ``city``'s feed in one transaction; a record (object) without an
        ``itemId`` gets the province's own, from its sequence number. A certification of the
        retiree of an open case of ``city`` answers it (after the certification)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last = self._append(city, records)
                for record in records:
                    if _is_cert(record):
                        self._answer_by_cert(city, record)
                last = self._last_seq()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return last

    def _last_seq(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM feed").fetchone()[0])

    def _append(self, city: str, records: list[Any]) -> int:
        first = self._last_seq() + 1
        rows = []
        for seq, record in enumerate(records, start=first):
            if isinstance(record, dict) and "itemId" not in record:
                record = {"itemId": item_id(seq), **record}
            rows.append((seq, city, json.dumps(record, ensure_ascii=False,
                                               separators=(",", ":"))))
        self._db.executemany("INSERT INTO feed (seq, city, record) VALUES (?, ?, ?)", rows)
        return first + len(records) - 1

    # -- assistance cases ------------------------------------------------------------
    def _answer_by_cert(self, city: str, cert: dict[str, Any]) -> None:
        """``cert`` (a certification of ``city``'s retiree) answers the retiree's open case
        of ``city`` registered at or before it was performed."""
        row = self._db.execute(
            "SELECT case_no, register_time FROM cases WHERE insured_city = ? AND "
            "insured_id = ? AND answer IS NULL AND idempotency_key IS NOT NULL ORDER BY n",
            (city, cert.get("insuredId"))).fetchone()
        try:
            if row is None or _instant(cert["certTime"]) < _instant(row[1]) \
                    or not isinstance(cert.get("reportTime"), str):
                return
        except ValueError:  # a malformed record answers nothing (the connector refuses it)
            return
        answer = {"result": "1", "certNo": cert["certNo"],
                  "assistCity": cert.get("residenceCity") or _other_city(cert["insuredId"],
                                                                          city),
                  "assistMethod": "1", "handlerOrgCode": cert["handlerOrgCode"],
                  "certTime": cert["certTime"]}
        self._answered(row[0], None, answer, cert["reportTime"])

    def _answered(self, case_no: str, key: str | None, answer: dict[str, Any],
                  at: str) -> str:
        """Record ``answer`` to ``case_no`` and tell the insuring city in its feed; the
        answer's acknowledgement id."""
        n, insured_id, insured_city = self._db.execute(
            "SELECT n, insured_id, insured_city FROM cases WHERE case_no = ?", (case_no,)
        ).fetchone()
        ack = f"GDCA-{n:08d}"
        self._db.execute(
            "UPDATE cases SET answer = ?, answer_key = ?, answer_ack = ?, answered_at = ?, "
            "answer_posts = answer_posts + 1 WHERE case_no = ?",
            (_canonical(answer), key, ack, at, case_no))
        self._append(insured_city, [{
            "recordType": gd.ASSIST_CASE_ANSWER, "caseNo": case_no, "insuredId": insured_id,
            **{k: v for k, v in answer.items() if k != "assistCity"}, "reportTime": at}])
        return ack

    def register_case(self, key: str | None, body: dict[str, Any],
                      assist_city: str | None = None) -> tuple[str, bool, str]:
        """(receipt number, duplicate, received at) of a case ``body`` (checked by
        :func:`validate_case`) registered by its insuring city under ``key`` (None: another
        city's case, put on the assisting city's feed as an ASSIST_CASE)."""
        canonical = _canonical(body)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                answer = self._register(key, body, canonical, assist_city)
                self._db.execute("COMMIT")
                return answer
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _register(self, key: str | None, body: dict[str, Any], canonical: str,
                  assist_city: str | None) -> tuple[str, bool, str]:
        case_no, insured = body["caseNo"], body["insuredId"]
        if key is not None:
            row = self._db.execute("SELECT case_no, insured_id, receipt_no, register_time "
                                   "FROM cases WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None and (row[0], row[1]) != (case_no, insured):
                raise Refused(409, "IDEMPOTENCY_KEY_REUSED",
                              f"Idempotency-Key {key!r} was used for another case; use a new "
                              "key for a new case", gd.IDEMPOTENCY_HEADER)
        row = self._db.execute("SELECT insured_id, receipt_no, n FROM cases "
                               "WHERE case_no = ?", (case_no,)).fetchone()
        if row is not None:
            if row[0] != insured:
                raise Refused(409, "CASE_NO_TAKEN", f"case {case_no!r} is registered for "
                              "another insured person; a new case needs a new caseNo",
                              "caseNo")
            self._db.execute("UPDATE cases SET posts = posts + 1 WHERE case_no = ?",
                             (case_no,))
            received = self._db.execute(
                "SELECT received_at FROM cases WHERE case_no = ?", (case_no,)).fetchone()[0]
            return row[1], True, received
        received = gd.format_time(datetime.now(UTC).astimezone(SHANGHAI))
        n = self._db.execute("SELECT coalesce(max(n), 0) + 1 FROM cases").fetchone()[0]
        receipt = f"GDXR-{n:08d}"
        city = body["insuredCity"]
        assist = assist_city or _other_city(insured, city)
        self._db.execute(
            "INSERT INTO cases (n, case_no, insured_id, insured_city, assist_city, "
            "register_time, idempotency_key, receipt_no, received_at, posts) "
            "VALUES (?,?,?,?,?,?,?,?,?,1)",
            (n, case_no, insured, city, assist, body["registerTime"], key, receipt, received))
        if key is None:  # another city's case: the assisting city reads it in its feed
            self._append(assist, [{"recordType": gd.ASSIST_CASE, "caseNo": case_no,
                                   "insuredId": insured, "insuredCity": city,
                                   "assistCity": assist,
                                   "registerTime": body["registerTime"]}])
            return receipt, False, received
        self._append(city, [{"recordType": gd.ASSIST_CASE_RECEIPT, "caseNo": case_no,
                             "insuredId": insured, "receiptNo": receipt,
                             "receiveTime": received}])
        # the retiree may have certified already (its record reached the province first)
        for (record,) in self._db.execute(
                "SELECT record FROM feed WHERE city = ? AND instr(record, ?) > 0 ORDER BY seq",
                (city, json.dumps(insured, ensure_ascii=False))).fetchall():
            cert = json.loads(record)
            if _is_cert(cert) and cert.get("insuredId") == insured:
                self._answer_by_cert(city, cert)
                if self._db.execute("SELECT answer IS NOT NULL FROM cases WHERE case_no = ?",
                                    (case_no,)).fetchone()[0]:
                    break
        return receipt, False, received

    def answer(self, case_no: str, key: str, body: dict[str, Any]) -> tuple[str, bool, str]:
        """(ack id, duplicate, received at) of the assisting city's answer ``body`` (checked
        by :func:`validate_answer`) to ``case_no``; the province applies an answer once: the
        same key, or the same answer under another key, is a duplicate."""
        canonical = _canonical(body)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT assist_city, answer, answer_ack, answered_at, answer_key "
                    "FROM cases WHERE case_no = ?", (case_no,)).fetchone()
                if row is None or row[0] != body["assistCity"]:
                    raise Refused(404, "UNKNOWN_CASE", f"no case {case_no!r} was routed to "
                                  f"city {body['assistCity']!r}", "caseNo")
                if row[1] is not None:
                    if row[1] != canonical:
                        raise Refused(409, "ALREADY_ANSWERED", f"case {case_no!r} was "
                                      f"answered before (ack {row[2]}) with another answer",
                                      "caseNo")
                    self._db.execute("UPDATE cases SET answer_posts = answer_posts + 1 "
                                     "WHERE case_no = ?", (case_no,))
                    self._db.execute("COMMIT")
                    return row[2], True, row[3]
                received = gd.format_time(datetime.now(UTC).astimezone(SHANGHAI))
                ack = self._answered(case_no, key, body, received)
                self._db.execute("COMMIT")
                return ack, False, received
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def answer_cases(self, at: str, result: str) -> int:
        """The local offices answer every open case a city registered (``result`` 1:
        certified alive at ``at``, a certification record first; 2 not found; 3 deceased on
        ``at``'s day); how many."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT n, case_no, insured_id, insured_city, assist_city FROM cases "
                    "WHERE answer IS NULL AND idempotency_key IS NOT NULL ORDER BY n"
                ).fetchall()
                for n, case_no, insured, city, assist in rows:
                    office = f"GD-{gd.CITY_NAMES[assist]}-SIB"
                    cert_no = f"GDXA-17-{n:08d}"
                    if result == "1":
                        cert = {"certNo": cert_no, "insuredId": insured, "insuredCity": city,
                                "certType": "02", "handlerOrgCode": office, "certTime": at,
                                "reportTime": at, "residenceCity": assist}
                        self._append(city, [cert])
                        self._answer_by_cert(city, cert)
                        continue
                    answer = {"result": result, "certNo": cert_no, "assistCity": assist,
                              "assistMethod": "3", "handlerOrgCode": office, "certTime": at}
                    if result == "3":
                        answer["deathDate"] = at[:10]
                    self._answered(case_no, None, answer, at)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def cases(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT case_no, insured_id, insured_city, assist_city, idempotency_key, "
                "receipt_no, posts, answer, answer_key, answer_posts FROM cases ORDER BY n"
            ).fetchall()
        return [{"caseNo": c, "insuredId": i, "insuredCity": ic, "assistCity": a,
                 "idempotencyKey": k, "receiptNo": r, "posts": p,
                 "answer": None if ans is None else json.loads(ans), "answerKey": ak,
                 "answerPosts": ap}
                for c, i, ic, a, k, r, p, ans, ak, ap in rows]

    def page(self, city: str, after: int, limit: int) -> tuple[list[tuple[int, str]], int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, record FROM feed WHERE city = ? AND seq > ? ORDER BY seq LIMIT ?",
                (city, after, limit)).fetchall()
            last = rows[-1][0] if rows else after
            remaining = self._db.execute(
                "SELECT count(*) FROM feed WHERE city = ? AND seq > ?", (city, last)
            ).fetchone()[0]
        return rows, int(remaining)

    def receive(self, key: str, body: str) -> tuple[str, bool, str]:
        """(ack id, duplicate, received at) for a result posted under ``key``."""
        digest = hashlib.sha256(body.encode()).hexdigest()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT ack_id, body_sha256, received_at FROM results "
                    "WHERE idempotency_key = ?", (key,)).fetchone()
                if row is not None:
                    if row[1] != digest:
                        raise Refused(409, "IDEMPOTENCY_KEY_REUSED",
                                      f"Idempotency-Key {key!r} was used for another result; "
                                      "use a new key for a new result", "Idempotency-Key")
                    self._db.execute("UPDATE results SET posts = posts + 1 "
                                     "WHERE idempotency_key = ?", (key,))
                    self._db.execute("COMMIT")
                    return row[0], True, row[2]
                received = datetime.now(UTC).astimezone(SHANGHAI)
                n = self._db.execute("SELECT coalesce(max(n), 0) + 1 FROM results").fetchone()[0]
                ack = f"GDACK-{received:%Y%m%d}-{n:08d}"
                self._db.execute(
                    "INSERT INTO results (n, idempotency_key, ack_id, body_sha256, body, "
                    "received_at, posts) VALUES (?, ?, ?, ?, ?, ?, 1)",
                    (n, key, ack, digest, body, gd.format_time(received)))
                self._db.execute("COMMIT")
                return ack, False, gd.format_time(received)
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def results(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT idempotency_key, ack_id, posts, received_at, body FROM results "
                "ORDER BY n").fetchall()
        return [{"idempotencyKey": k, "ackId": a, "posts": p, "receivedAt": r,
                 "body": json.loads(b)} for k, a, p, r, b in rows]

    def stats(self) -> dict[str, int]:
        with self._lock:
            feed = self._db.execute("SELECT count(*) FROM feed").fetchone()[0]
            results, posts = self._db.execute(
                "SELECT count(*), coalesce(sum(posts), 0) FROM results").fetchone()
        return {"feed_records": feed, "results": results, "result_posts": posts}


@dataclass
class Faults:
    """The fault the partner API shows: ``mode`` None (healthy), "503" or "close", after
    ``after`` more requests succeed, for ``left`` requests (None: until mended)."""

    mode: str | None = None
    left: int | None = None
    after: int = 0
    served: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def set(self, mode: str | None, count: int | None, after: int = 0) -> None:
        with self._lock:
            self.mode, self.left, self.after = mode, count, after

    def take(self) -> str | None:
        with self._lock:
            if self.mode is None:
                return None
            if self.after > 0:
                self.after -= 1
                return None
            mode = self.mode
            if self.left is not None:
                self.left -= 1
                if self.left <= 0:
                    self.mode, self.left = None, None
            self.served += 1
            return mode

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"mode": self.mode, "left": self.left, "after": self.after,
                    "served": self.served}


def validate_result(body: Any) -> None:
    """Raise :class:`Refused` (422, naming the field) for a result the province refuses."""
    if not isinstance(body, dict):
        raise Refused(422, "INVALID_BODY", "the body must be a JSON object")
    for name in gd.RESULT_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            raise Refused(422, "MISSING_FIELD", f"{name} is required (a non-empty string)",
                          name)
    if body["insuredCity"] not in gd.CITY_NAMES:
        raise Refused(422, "UNKNOWN_CITY", f"insuredCity {body['insuredCity']!r} is not a "
                      "Guangdong city's division code", "insuredCity")
    if body["assistCity"] not in gd.CITY_NAMES:
        raise Refused(422, "UNKNOWN_CITY", f"assistCity {body['assistCity']!r} is not a "
                      "Guangdong city's division code", "assistCity")
    if body["insuredCity"] == body["assistCity"]:
        raise Refused(422, "NOT_CROSS_REGION", "insuredCity equals assistCity: a city "
                      "reports its own retirees in its own system, not here", "insuredCity")
    if body["assistMethod"] not in gd.ASSIST_METHODS.values():
        raise Refused(422, "UNKNOWN_METHOD", f"assistMethod {body['assistMethod']!r} is not "
                      f"one of {', '.join(sorted(gd.ASSIST_METHODS.values()))}",
                      "assistMethod")
    try:
        gd.parse_time(body["certTime"])
    except ValueError as exc:
        raise Refused(422, "INVALID_TIME", f"certTime: {exc}", "certTime") from None


def _canonical(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _is_cert(record: Any) -> bool:
    return isinstance(record, dict) and record.get("recordType", gd.CERT) == gd.CERT \
        and isinstance(record.get("certTime"), str) and isinstance(record.get("certNo"), str)


def _instant(text: str) -> datetime:
    return gd.parse_time(text)


def _other_city(insured_id: str, city: str) -> str:
    """Where the province finds ``city``'s retiree ``insured_id`` living (the simulator's
    stand-in for the province's residence register: a fixed other city per person)."""
    others = sorted(code for code in gd.CITY_NAMES if code != city)
    return others[int(hashlib.sha256(insured_id.encode()).hexdigest(), 16) % len(others)]


def _needs_text(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise Refused(422, "MISSING_FIELD", f"{name} is required (a non-empty string of "
                          "at most 64 characters)", name)


def validate_case(body: Any) -> dict[str, Any]:
    """A case a city registers, or :class:`Refused` (422, naming the field)."""
    if not isinstance(body, dict):
        raise Refused(422, "INVALID_BODY", "the body must be a JSON object")
    _needs_text(body, gd.CASE_FIELDS)
    if body["insuredCity"] not in gd.CITY_NAMES:
        raise Refused(422, "UNKNOWN_CITY", f"insuredCity {body['insuredCity']!r} is not a "
                      "Guangdong city's division code", "insuredCity")
    for name in ("registerTime",):
        try:
            gd.parse_time(body[name])
        except ValueError as exc:
            raise Refused(422, "INVALID_TIME", f"{name}: {exc}", name) from None
    return body


def validate_answer(body: Any) -> dict[str, Any]:
    """An answer to a case, or :class:`Refused` (422, naming the field)."""
    if not isinstance(body, dict):
        raise Refused(422, "INVALID_BODY", "the body must be a JSON object")
    _needs_text(body, gd.ANSWER_FIELDS)
    if body["result"] not in gd.CASE_RESULTS:
        raise Refused(422, "UNKNOWN_RESULT", f"result {body['result']!r} is not one of "
                      f"{', '.join(gd.CASE_RESULTS)}", "result")
    if body["assistMethod"] not in gd.ASSIST_METHODS.values():
        raise Refused(422, "UNKNOWN_METHOD", f"assistMethod {body['assistMethod']!r} is not "
                      f"one of {', '.join(sorted(gd.ASSIST_METHODS.values()))}",
                      "assistMethod")
    if (body["result"] == "3") != ("deathDate" in body):
        raise Refused(422, "INVALID_BODY", "deathDate goes with result 3 (deceased), and "
                      "only with it", "deathDate")
    try:
        gd.parse_time(body["certTime"])
    except ValueError as exc:
        raise Refused(422, "INVALID_TIME", f"certTime: {exc}", "certTime") from None
    return body
