"""Wrong second factors of the status query: who is locked out of what, in PostgreSQL
(migration 0003: shared by every API process, kept across restarts, never evicted while
in force).

Two limits, both counted by one call of ``api_second_factor_failed`` per wrong factor:

- a lockout binds the caller that guessed, never the retiree: the key is the retiree id
  (as a keyed hash), the calling agency and, for roles that act for the public behind
  them (the portal), the client address it names (``lifecert-client-address``, as a keyed
  hash). ``attempts`` wrong factors within ``lock_seconds`` lock that key for
  ``lock_seconds``; another agency, or the retiree's own session from another address, is
  not locked out by them;
- each partner agency has a failure budget: ``budget`` wrong factors within
  ``window_seconds``, whatever the retiree ids; once spent, its status queries are
  refused for a window and one ``SecurityAlert`` is published on ``lifecert.alerts``;
- a role that acts for the public (the portal) must name the client address of every
  status query, and its budget (``budget`` again) binds that address: once spent, that
  address is refused for a window, and no other. Its agency-wide count refuses nothing
  (any visitor could otherwise shut the portal for everyone): reaching ``public_budget``
  only raises the ``SecurityAlert``, once per window (migration 0006).

The alert is recorded as pending by the transaction that spent the budget
(``api_pending_alerts``) and deleted once the broker acknowledged it
(:class:`PendingAlerts`), so that a broker away at that moment loses no alert.

The state of both is read by the status statement itself (lifecert/api/db.py), so a
status query that gives the right factor costs no extra round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lifecert.api.authz import RoleRules
from lifecert.api.db import AsyncReader, Connection, Database
from lifecert.api.publisher import NotWritten, Written
from lifecert.api.secondfactor import subject_ref
from lifecert.api.server_config import Limits
from lifecert.domain.fold import uuid5

# gRPC metadata by which a role that acts for the public names the address of the person
# behind the call (e.g. the portal's visitor).
CLIENT_ADDRESS_HEADER = "lifecert-client-address"
SOURCE = "lifecert-api"

log = logging.getLogger("lifecert.api")

Publish = Callable[[Sequence[dict[str, Any]]], Awaitable[list[Written | NotWritten]]]


class ClientAddressError(ValueError):
    """A client address that cannot be used; the message says why."""


@dataclass(frozen=True)
class Policy:
    attempts: int
    lock_seconds: float
    budget: int
    public_budget: int
    window_seconds: float

    @classmethod
    def of(cls, limits: Limits) -> Policy:
        return cls(limits.second_factor_attempts, limits.second_factor_lock_seconds,
                   limits.failure_budget, limits.public_failure_budget,
                   limits.failure_window_seconds)

    def alert_at(self, rules: RoleRules) -> int:
        """The failures that raise the SecurityAlert: the agency's own budget for a
        partner, the agency-wide threshold (which refuses nothing) for a public front."""
        return self.public_budget if rules.public_front else self.budget


@dataclass(frozen=True)
class Caller:
    """The key of a lockout: no retiree id and no address in clear."""

    subject: str  # keyed hash of the retiree id (as in api_audit)
    agency: str
    client: str = ""  # keyed hash of the client address; '' when none was named


def client_address(text: str) -> str:
    """The client address as keyed: an IPv4 address, or the /64 network of an IPv6
    address (one subscriber holds a whole /64 and could otherwise step through it)."""
    value = text.strip()
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ClientAddressError(
            f"{CLIENT_ADDRESS_HEADER} must be one IPv4 or IPv6 address"
        ) from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_of(metadata: Iterable[tuple[str, Any]] | None, role: str,
              rules: RoleRules) -> str | None:
    """The client address a call names (None: none). A role that acts for the public
    must name one (without it, every visitor's guesses would count against the retiree's
    own queries through that front); another role naming one is refused (it would escape
    its own lockouts by changing the address)."""
    values = [v for k, v in (metadata or ()) if k == CLIENT_ADDRESS_HEADER]
    if not values:
        if rules.public_front:
            raise ClientAddressError(
                f"role {role} acts for the public: name the address of the person behind "
                f"each status query in the gRPC metadata {CLIENT_ADDRESS_HEADER}"
            )
        return None
    if not rules.public_front:
        raise ClientAddressError(
            f"role {role} may not name a client address ({CLIENT_ADDRESS_HEADER}); only "
            "roles that act for the public behind them may"
        )
    if len(values) > 1:
        raise ClientAddressError(f"{CLIENT_ADDRESS_HEADER} given {len(values)} times; give it once")
    value = values[0]
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return client_address(str(value))


def caller(key: bytes, retiree_id: str, agency: str, address: str | None = None) -> Caller:
    """The lockout key of ``agency`` guessing at ``retiree_id`` (from ``address`` behind
    a portal: see :func:`client_address`)."""
    client = ""
    if address:
        client = hmac.new(key, b"client\0" + address.encode(), hashlib.sha256).hexdigest()[:20]
    return Caller(subject_ref(key, retiree_id), agency, client)


@dataclass(frozen=True)
class Failure:
    """What one wrong factor left: the key's count and lock, the agency's budget."""

    key_failures: int
    locked_until: datetime | None
    budget_failures: int
    window_started: datetime
    refused_until: datetime | None
    budget_spent: bool  # this failure spent the budget: raise the alert (exactly once)


_FAILED = "SELECT * FROM api_second_factor_failed(%s, %s, %s, %s, %s, %s, %s, %s)"
_CLEAR = ("DELETE FROM api_second_factor_lockouts WHERE subject = %s AND agency = %s "
          "AND client = %s RETURNING failures")


async def record_failure(reader: AsyncReader, who: Caller, policy: Policy,
                         alert_at: int) -> Failure:
    """Count a wrong second factor of ``who`` (one round trip, its own transaction; a
    spent budget's alert is recorded as pending by the same transaction)."""
    row = await reader.fetchone(_FAILED, (
        who.subject, who.agency, who.client, policy.attempts, policy.lock_seconds,
        policy.budget, policy.window_seconds, alert_at,
    ))
    assert row is not None
    return Failure(*row)


async def clear(reader: AsyncReader, who: Caller) -> None:
    """The right factor: forget ``who``'s earlier wrong ones (the agency's budget keeps
    them)."""
    await reader.fetchone(_CLEAR, (who.subject, who.agency, who.client))


def purge(conn: Connection, policy: Policy) -> int:
    """Delete the rows no longer in force (neither their window nor their lock); returns
    how many. A locked key or a refused agency is never deleted."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM api_second_factor_lockouts WHERE first_failed_at <= now() - "
            "make_interval(secs => %s) AND coalesce(locked_until <= now(), true)",
            (policy.lock_seconds,),
        )
        deleted = cur.rowcount
        cur.execute(
            "DELETE FROM api_agency_failure_budgets WHERE window_started <= now() - "
            "make_interval(secs => %s) AND coalesce(refused_until <= now(), true)",
            (policy.window_seconds,),
        )
        return deleted + cur.rowcount


@dataclass(frozen=True)
class PendingAlert:
    """A row of ``api_pending_alerts``: an alert recorded, not yet acknowledged."""

    agency: str
    window_started: datetime
    window_seconds: float
    failures: int
    budget: int
    refused_until: datetime | None


def budget_alert(pending: PendingAlert, now: datetime | None = None) -> dict[str, Any]:
    """The SecurityAlert of a spent budget (its id is the same for the same agency and
    window, so that a retried publication is one alert)."""
    started = pending.window_started.astimezone(UTC)
    return {
        "type": "SecurityAlert",
        "event_id": uuid5(f"{SOURCE}|SecurityAlert|SECOND_FACTOR_BUDGET_SPENT|"
                          f"{pending.agency}|{started.isoformat()}"),
        "recorded_at": now or datetime.now(UTC),
        "source_agency": SOURCE,
        "kind": "SECOND_FACTOR_BUDGET_SPENT",
        "agency": pending.agency,
        "window_started": started,
        "window_seconds": round(pending.window_seconds),
        "count": pending.failures,
        "limit": pending.budget,
        "refused_until": pending.refused_until,
    }


class PendingAlerts:
    """Publishes the pending alerts until the broker acknowledges each: at once after a
    failure spent a budget, and again every ``retry_seconds`` (:meth:`run`) for those
    the broker did not take (any server may publish any; the same agency and window is
    one event id)."""

    def __init__(self, database: Database, publish: Publish) -> None:
        self.database = database
        self.publish = publish
        self._lock = asyncio.Lock()

    async def flush(self) -> int:
        """Publish what is pending; returns how many are still pending."""
        async with self._lock:
            rows = await self.database.run(_pending)
            if not rows:
                return 0
            outcomes = await self.publish([budget_alert(p) for p in rows])
            done = [p for p, o in zip(rows, outcomes, strict=True) if not isinstance(o, NotWritten)]
            for p, o in zip(rows, outcomes, strict=True):
                if isinstance(o, NotWritten):
                    log.error("SecurityAlert of agency %s not published yet (retried): %s",
                              p.agency, o.reason)
            if done:
                await self.database.run(lambda conn: _acknowledged(conn, done))
            return len(rows) - len(done)

    async def run(self, retry_seconds: float = 30.0) -> None:
        while True:
            try:
                await self.flush()
            except Exception as exc:  # the database's trouble; the next round tries again
                log.warning("publishing pending security alerts failed: %s",
                            type(exc).__name__)
            await asyncio.sleep(retry_seconds)


def _pending(conn: Connection) -> list[PendingAlert]:
    with conn, conn.cursor() as cur:
        cur.execute("SELECT agency, window_started, window_seconds, failures, budget, "
                    "refused_until FROM api_pending_alerts ORDER BY recorded_at LIMIT 100")
        return [PendingAlert(*row) for row in cur.fetchall()]


def _acknowledged(conn: Connection, done: Sequence[PendingAlert]) -> None:
    with conn, conn.cursor() as cur:
        cur.executemany("DELETE FROM api_pending_alerts WHERE agency = %s AND "
                        "window_started = %s", [(p.agency, p.window_started) for p in done])


def minutes(seconds: float) -> int:
    """Whole minutes to wait, rounded up (at least 1)."""
    return max(1, int(-(-seconds // 60)))
