"""The API's retiree directory: residence, managing unit, scheme and category of every
enrolled retiree, which the authorization matrix needs (a RetireeStatus carries the
residence but not the managing unit, and exists only once the worker decided).

A background thread of the API server reads the events topic from the offsets stored in
``api_directory_offsets``, keeps the RetireeEnrolled records (recognised by their schema
fingerprint, without decoding the rest) and writes rows and offsets in one transaction.
The first enrollment of a retiree wins, as in the fold. ``caught_up`` is set once the
topic has been read to the end it had when the thread started: the server reports
SERVING only from then on.

The name is kept only as the topic carries it, sealed under the retiree's data key
(``name_sealed``); :func:`display_name` opens it through the key store, and shows
``[erased]`` once ``lifecert erase`` destroyed that key. A name that arrives unsealed (a
record written before sealing existed) is not stored.

A record it cannot take (no value, not a lifecert event, an unknown schema, a corrupt
enrollment, ids with control characters) is set aside in ``api_directory_dead_letters``
with the reason, in the same transaction as the offsets: the directory reads on. Should
the database refuse a batch of rows, they are written one by one and the refused ones set
aside; only an outage makes it retry.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg2
from kafka import TopicPartition
from kafka.errors import KafkaError
from psycopg2.extras import execute_values

from lifecert.api.db import is_outage
from lifecert.api.escape import escaped
from lifecert.datakeys import KeyStore
from lifecert.events import codec, personal
from lifecert.pipeline import broker_clients, broker_errors
from lifecert.pipeline.topics import EVENTS, TopicLayout

log = logging.getLogger("lifecert.api")


class DirectoryFeed:
    def __init__(
        self, dsn: str, bootstrap: str, topics: TopicLayout, *, poll_ms: int = 200
    ) -> None:
        self.dsn = dsn
        self.bootstrap = bootstrap
        self.topic = topics[EVENTS].name
        self.poll_ms = poll_ms
        self.caught_up = threading.Event()
        self.enrolled = 0  # rows written by this process
        self.refused = 0  # records set aside in api_directory_dead_letters
        self.error: str | None = None
        self._stop = threading.Event()
        self._store = codec.default_store()
        self._thread = threading.Thread(target=self._run, name="api-directory", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except Exception as exc:  # the thread must not die: retry
                self.error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, KafkaError | broker_errors.KafkaUnavailable
                              | broker_errors.TopicProblem | psycopg2.Error):
                    log.warning("retiree directory: %s; retrying in %.1f s", self.error,
                                backoff)
                else:  # a fault of ours: say where
                    log.exception("retiree directory: %s; retrying in %.1f s", self.error,
                                  backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _follow(self) -> None:
        consumer = broker_clients.consumer(self.bootstrap, max_poll_records=5000)
        conn = psycopg2.connect(self.dsn, application_name="lifecert-api-directory")
        try:
            partitions = broker_clients.partitions_of(consumer, self.topic)
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            stored = self._stored(conn)
            for tp in tps:
                if tp.partition in stored:
                    consumer.seek(tp, stored[tp.partition])
                else:
                    consumer.seek_to_beginning(tp)
            target = {tp: o for tp, o in consumer.end_offsets(tps).items()}
            self.error = None
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=self.poll_ms)
                rows: list[tuple[Any, ...]] = []
                refused: list[tuple[int, int, str]] = []
                offsets: dict[int, int] = {}
                for tp, records in batches.items():
                    for record in records:
                        offsets[tp.partition] = record.offset + 1
                        row = self._row(record)
                        if isinstance(row, Refused):
                            refused.append((record.partition, record.offset, row.reason))
                        elif row is not None:
                            rows.append(row)
                if offsets:
                    self._write(conn, rows, refused, offsets)
                if not self.caught_up.is_set() and all(
                    consumer.position(tp) >= end for tp, end in target.items()
                ):
                    self.caught_up.set()
                    log.info("retiree directory caught up with %s", self.topic)
        finally:
            consumer.close()
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def _row(self, record: Any) -> tuple[Any, ...] | Refused | None:
        """The directory row of an enrollment; None for a record of another type
        (skipped undecoded); :class:`Refused` for a record that is not a decodable event
        or an enrollment whose fields cannot be stored."""
        value = record.value
        if value is None:
            return Refused("the record has no value")
        if value[:2] != codec.MARKER:
            return Refused(f"not a lifecert event: expected marker c3 01, got "
                           f"{bytes(value[:2]).hex(' ') or 'nothing'}")
        try:  # any registered version of RetireeEnrolled; other types are skipped undecoded
            if self._store.by_fingerprint(bytes(value[2:10])).type_name != "RetireeEnrolled":
                return None
        except KeyError:
            return Refused(f"unknown schema fingerprint {bytes(value[2:10]).hex()}")
        try:
            event = codec.decode(value)
        except codec.CodecError as exc:  # the worker dead-letters it too
            return Refused(f"RetireeEnrolled does not decode: {exc}")
        problem = _unstorable(event)
        if problem:
            return Refused(f"RetireeEnrolled {problem}")
        name = event.get("name")
        return (
            event["retiree_id"], event["residence"], event.get("managing_unit"),
            event["scheme"], event["category"], event["event_id"],
            record.topic, record.partition, record.offset,
            name if personal.is_sealed(name) else None,
        )

    def _stored(self, conn: Any) -> dict[int, int]:
        with conn, conn.cursor() as cur:
            cur.execute(
                'SELECT "partition", next_offset FROM api_directory_offsets WHERE topic = %s',
                (self.topic,),
            )
            return dict(cur.fetchall())

    def _write(
        self, conn: Any, rows: list[tuple[Any, ...]], refused: list[tuple[int, int, str]],
        offsets: dict[int, int],
    ) -> None:
        """Rows, dead letters and offsets in one transaction. Should the database refuse
        the rows (not an outage), they are written one by one and each refused one
        becomes a dead letter with the database's error: the feed moves on."""
        try:
            self._transaction(conn, rows, refused, offsets)
        except Exception as exc:
            if is_outage(exc, conn) or not rows:
                raise
            log.warning("retiree directory: a batch was refused (%s: %s); writing it row by "
                        "row", type(exc).__name__, exc)
            kept: list[tuple[Any, ...]] = []
            for row in rows:
                try:
                    self._transaction(conn, [row], [], {})
                except Exception as one:
                    if is_outage(one, conn):
                        raise
                    refused.append((row[7], row[8], "RetireeEnrolled refused by the "
                                    f"database: {type(one).__name__}: {one}"))
                else:
                    kept.append(row)
            self._transaction(conn, [], refused, offsets)
            self.enrolled += len(kept)
        else:
            self.enrolled += len(rows)
        for partition, offset, reason in refused:
            log.warning("retiree directory: %s[%d] offset %d set aside in "
                        "api_directory_dead_letters: %s", self.topic, partition, offset,
                        reason)
        self.refused += len(refused)

    def _transaction(
        self, conn: Any, rows: list[tuple[Any, ...]], refused: list[tuple[int, int, str]],
        offsets: dict[int, int],
    ) -> None:
        with conn, conn.cursor() as cur:
            if rows:
                execute_values(
                    cur,
                    "INSERT INTO api_retiree_directory (retiree_id, residence, managing_unit, "
                    "scheme, category, event_id, source_topic, source_partition, "
                    "source_offset, name_sealed) VALUES %s ON CONFLICT (retiree_id) DO NOTHING",
                    rows, page_size=5000,
                )
            if refused:
                execute_values(
                    cur,
                    'INSERT INTO api_directory_dead_letters (topic, "partition", "offset", '
                    'reason) VALUES %s ON CONFLICT (topic, "partition", "offset") DO NOTHING',
                    [(self.topic, p, o, escaped(reason)) for p, o, reason in refused],
                )
            if offsets:
                execute_values(
                    cur,
                    'INSERT INTO api_directory_offsets (topic, "partition", next_offset) '
                    'VALUES %s ON CONFLICT (topic, "partition") DO UPDATE SET next_offset = '
                    "GREATEST(api_directory_offsets.next_offset, excluded.next_offset)",
                    [(self.topic, p, o) for p, o in sorted(offsets.items())],
                )


@dataclass(frozen=True)
class Refused:
    """A record the directory cannot take, and why (no field values)."""

    reason: str


# Limits of the text fields stored in the directory (the API's ids are at most 128).
_MAX_TEXT = 128


def _unstorable(event: dict[str, Any]) -> str | None:
    """Why the enrollment's text fields cannot be stored, if they cannot: each must be
    printable (no NUL or other control character, no lone surrogate) and short."""
    for name in ("retiree_id", "event_id", "managing_unit", "residence", "scheme",
                 "category"):
        value = event.get(name)
        if value is None and name == "managing_unit":
            continue
        if not isinstance(value, str) or not value.strip():
            return f"{name} is missing"
        if len(value) > _MAX_TEXT:
            return f"{name} is longer than {_MAX_TEXT} characters ({len(value)})"
        if not value.isprintable():
            return f"{name} holds a control or other non-printable character"
    return None


def display_name(conn: Any, keys: KeyStore, retiree_id: str) -> str | None:
    """The retiree's name to show: opened through the key store; ``[erased]`` once erased
    (key destroyed or column scrubbed), ``[unreadable]`` if it does not open; None for a
    retiree not in the directory. Raises only if the key store is unreachable."""
    with conn.cursor() as cur:
        cur.execute("SELECT name_sealed FROM api_retiree_directory WHERE retiree_id = %s",
                    (retiree_id,))
        row = cur.fetchone()
    if row is None:
        return None
    if row[0] is None:
        return personal.ERASED
    return personal.reveal({"retiree_id": retiree_id, "name": row[0]}, "name", keys)


def scrub_name(conn: Any, retiree_id: str) -> int:
    """Clear the retiree's sealed name (``lifecert erase``); the rows changed (0 or 1)."""
    with conn.cursor() as cur:
        cur.execute("UPDATE api_retiree_directory SET name_sealed = NULL "
                    "WHERE retiree_id = %s AND name_sealed IS NOT NULL", (retiree_id,))
        return int(cur.rowcount)


def wait_caught_up(feed: DirectoryFeed, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not feed.caught_up.wait(0.1):
        if time.monotonic() > deadline:
            return False
    return True
