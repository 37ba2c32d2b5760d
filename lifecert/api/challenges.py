"""Face challenges and failure budgets in PostgreSQL (``api_face_challenges``,
``api_face_frame_digests``, ``api_face_decisions``), shared by every API process.

A challenge is issued to one agency for one retiree (by the keyed hash of the retiree id,
the ``subject`` of the audit tables) and consumed by a single ``UPDATE ... WHERE used_at IS
NULL``: of two Verify calls racing with one challenge, one wins. Each function takes a
connection (run it with ``Database.run``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg2

from lifecert.api.lockouts import Caller

CHALLENGE_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
CHALLENGE_REFUSED = "CHALLENGE_REFUSED"  # the decision recorded for a refused challenge


def new_challenge_id() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits


def well_formed(challenge_id: str) -> bool:
    return 16 <= len(challenge_id) <= 64 and set(challenge_id) <= CHALLENGE_ID_CHARS


class ChallengeRefused(Exception):
    """The challenge cannot be used; ``code`` is a stable reason, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Consumed:
    actions: list[str]
    replayed: int  # frames whose bytes were seen in an earlier answer
    # When the challenge was issued, on the server's clock (the campaign clock of a sandbox
    # or a drill, else the wall clock): when the person began to face the camera, the
    # performed_at of the certification a MATCH records.
    issued_at: datetime


def issue(conn: Any, challenge_id: str, agency: str, subject: str, actions: Sequence[str],
          issued_at: datetime, deadline: datetime) -> None:  # fmt: skip
    """``issued_at`` on the server's clock (see :class:`Consumed`); ``deadline`` on the wall
    clock, as every time :func:`consume` compares (a challenge lasts real seconds)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO api_face_challenges (challenge_id, agency, subject, actions, "
            "issued_at, deadline) VALUES (%s, %s, %s, %s, %s, %s)",
            (challenge_id, agency, subject, list(actions), issued_at, deadline),
        )


def answered(conn: Any, subject: str, since: datetime) -> dict[tuple[str, ...], datetime]:
    """The action sequences of this retiree's challenges answered since ``since``, each
    with when it was last answered."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actions, max(used_at) FROM api_face_challenges WHERE subject = %s "
            "AND used_at > %s GROUP BY actions", (subject, since),
        )
        return {tuple(actions): at for actions, at in cur.fetchall()}


def consume(conn: Any, challenge_id: str, agency: str, subject: str, now: datetime,
            frames: Sequence[bytes]) -> Consumed:  # fmt: skip
    """Mark the challenge used and record the frames' digests, in one transaction; or
    :class:`ChallengeRefused` (unknown, another agency's or retiree's, used, expired),
    leaving it untouched. Another agency's challenge is answered as unknown."""
    digests = sorted({hashlib.sha256(f).digest() for f in frames})
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE api_face_challenges SET used_at = %s WHERE challenge_id = %s AND "
            "agency = %s AND subject = %s AND used_at IS NULL AND deadline > %s "
            "RETURNING actions, issued_at",
            (now, challenge_id, agency, subject, now),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute(
                "SELECT agency, subject, deadline, used_at FROM api_face_challenges "
                "WHERE challenge_id = %s", (challenge_id,),
            )
            found = cur.fetchone()
            if found is None or found[0] != agency:
                raise ChallengeRefused(
                    "UNKNOWN_CHALLENGE", "no challenge with this challenge_id was issued to "
                    "this agency: call BeginChallenge and answer the challenge it returns")
            if found[1] != subject:
                raise ChallengeRefused(
                    "OTHER_RETIREE", "this challenge was issued for another retiree: begin "
                    "a challenge for this retiree_id")
            if found[3] is not None:
                raise ChallengeRefused(
                    "CHALLENGE_USED", "this challenge was already answered: a challenge is "
                    "used once, begin a new one")
            raise ChallengeRefused(
                "CHALLENGE_EXPIRED", f"this challenge expired at {found[2].isoformat()}: "
                "begin a new one and answer it before its deadline")
        cur.execute(
            "INSERT INTO api_face_frame_digests (digest, seen_at) SELECT d, %s "
            "FROM unnest(%s::bytea[]) AS d ON CONFLICT (digest) DO NOTHING RETURNING digest",
            (now, [psycopg2.Binary(d) for d in digests]),
        )
        replayed = len(digests) - len(cur.fetchall())
    return Consumed(list(row[0]), int(replayed), row[1])


def purge(conn: Any, now: datetime, memory: timedelta,
          grace: timedelta = timedelta(days=1)) -> int:
    """Delete what no check needs any more; returns how many rows. An unanswered challenge
    goes ``grace`` after its deadline (until then a late answer is told it expired, not
    that it is unknown). An answered one is kept for ``memory`` (``answered``: its action
    sequence is not asked of the retiree again meanwhile), and so is a frame digest:
    within it a byte-identical replay is refused; after it the same sequence may be asked
    again, and a year-old recording must still beat the screen colours of a new nonce
    (the app) or the staff at the window (the counter)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM api_face_challenges WHERE (used_at IS NULL AND deadline < %s) "
            "OR used_at < %s", (now - grace, now - memory),
        )
        deleted = cur.rowcount
        cur.execute("DELETE FROM api_face_frame_digests WHERE seen_at < %s", (now - memory,))
        return deleted + cur.rowcount


def erase(conn: Any, retiree_id: str, subject: str | None) -> int:
    """``lifecert erase``: delete the retiree's face reference (their sealed encoding) and
    challenges, and clear the biometric evidence (liveness measurements, distance) of their
    face decisions; the rest of each decision (when, which agency and role, operation,
    decision, model, threshold, event id) stays for the audit, keyed by ``subject`` (the
    keyed hash) only. ``subject`` None: the API's key is unknown here, only the reference
    is deleted. Rows changed; the caller commits."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('api_face_references') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("DELETE FROM api_face_references WHERE retiree_id = %s", (retiree_id,))
        changed = cur.rowcount
        if subject is None:
            return int(changed)
        cur.execute("UPDATE api_face_decisions SET evidence = NULL, distance = NULL "
                    "WHERE subject = %s AND (evidence IS NOT NULL OR distance IS NOT NULL)",
                    (subject,))
        changed += cur.rowcount
        cur.execute("DELETE FROM api_face_challenges WHERE subject = %s", (subject,))
        return int(changed + cur.rowcount)


@dataclass(frozen=True)
class Failures:
    retiree_day: int
    agency_minute: int
    not_live_recent: int


def failures(conn: Any, who: Caller, now: datetime, alert_window: timedelta) -> Failures:
    """Failed face verifications of this retiree by this caller (agency, and client
    address behind the app) in the last 24 hours (any decision of the engine but MATCH: a
    refused challenge does not count here, so that an agency cannot spend the budget by
    sending made-up challenge ids), of this agency in the last minute (refused challenges
    included), and the retiree's NOT_LIVE decisions by anyone within ``alert_window`` (an
    alert, not a refusal). Another agency's failures never close face verification for
    this caller: the rule of the second-factor lockouts (lifecert.api.lockouts)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM api_face_decisions WHERE subject = %s AND agency = %s "
            "AND client = %s AND operation = 'VERIFY' AND decision NOT IN ('MATCH', %s) "
            "AND at > %s",
            (who.subject, who.agency, who.client, CHALLENGE_REFUSED, now - timedelta(days=1)),
        )
        (retiree_day,) = cur.fetchone()
        cur.execute(
            "SELECT count(*) FROM api_face_decisions WHERE subject = %s AND "
            "operation = 'VERIFY' AND decision = 'NOT_LIVE' AND at > %s",
            (who.subject, now - alert_window),
        )
        (not_live,) = cur.fetchone()
        cur.execute(
            "SELECT count(*) FROM api_face_decisions WHERE agency = %s AND "
            "operation = 'VERIFY' AND decision <> 'MATCH' AND at > %s",
            (who.agency, now - timedelta(minutes=1)),
        )
        (agency_minute,) = cur.fetchone()
    return Failures(int(retiree_day), int(agency_minute), int(not_live))
