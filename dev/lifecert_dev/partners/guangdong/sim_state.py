"""The simulator's state and rules, apart from HTTP: the feed and the results in SQLite,
the injected faults, the feed's cursors and the checks of a posted result."""

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
        ``itemId`` gets the province's own, from its sequence number."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                first = self._db.execute("SELECT coalesce(max(seq), 0) + 1 FROM feed"
                                         ).fetchone()[0]
                rows = []
                for seq, record in enumerate(records, start=first):
                    if isinstance(record, dict) and "itemId" not in record:
                        record = {"itemId": item_id(seq), **record}
                    rows.append((seq, city, json.dumps(record, ensure_ascii=False,
                                                       separators=(",", ":"))))
                self._db.executemany("INSERT INTO feed (seq, city, record) VALUES (?, ?, ?)",
                                     rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return first + len(records) - 1

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
