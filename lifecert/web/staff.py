"""Staff accounts and sessions of the dashboard (tables of lifecert/api migration 0016).

Passwords are hashed with argon2id (argon2-cffi's defaults); a session is a random token
in an HttpOnly, SameSite=Strict cookie, stored as its SHA-256 only, with its own CSRF
token that every staff POST must carry. A city account sees the whole city, a district
account its district only."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import psycopg2.extensions
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from lifecert.api.db import AsyncReader
from lifecert.api.lockouts import Caller

Connection = psycopg2.extensions.connection

# The agency name under which wrong staff passwords are counted (lifecert/api/lockouts.py).
LOGIN_AGENCY = "lifecert-web-staff"
CITY = "CITY"
DISTRICT = "DISTRICT"
SESSION_SECONDS = 8 * 3600
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Verified against when the account does not exist: the same argon2 work either way, so
# that the answer's time does not tell which usernames exist.
_DECOY = _hasher.hash(secrets.token_urlsafe(16))


class StaffError(ValueError):
    """An account that cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Staff:
    username: str
    role: str
    district: str | None

    def describe(self) -> str:
        return "city" if self.role == CITY else f"district {self.district}"


@dataclass(frozen=True)
class Session:
    staff: Staff
    csrf: str


def add_user(conn: Connection, username: str, password: str, role: str,
             district: str | None, *, replace: bool = False) -> None:
    """Make (or with ``replace``, reset) the account; refused with what is wrong."""
    if not USERNAME.match(username):
        raise StaffError(f"username {username!r}: 2 to 64 of a-z 0-9 . _ - (starting with "
                         "a letter or digit)")
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    if role not in (CITY, DISTRICT):
        raise StaffError(f"role {role!r}: CITY or DISTRICT")
    if (role == DISTRICT) != bool(district):
        raise StaffError("a DISTRICT account names its district (--district); a CITY "
                         "account none")
    digest = _hasher.hash(password)
    conflict = ("DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role, "
                "district = excluded.district" if replace else "DO NOTHING")
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO api_web_staff (username, password_hash, role, district) "
                    f"VALUES (%s, %s, %s, %s) ON CONFLICT (username) {conflict}",
                    (username, digest, role, district or None))
        if cur.rowcount == 0:
            raise StaffError(f"account {username!r} exists already (--replace resets it)")
        if replace:  # a reset password ends the account's sessions
            cur.execute("DELETE FROM api_web_sessions WHERE username = %s", (username,))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(conn: Connection, username: str, password: str) -> tuple[str, Session] | None:
    """(the session's cookie token, the session) when the password is right; else None."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT password_hash, role, district FROM api_web_staff "
                    "WHERE username = %s", (username,))
        row = cur.fetchone()
    stored = row[0] if row else _DECOY
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM api_web_sessions WHERE expires_at < now()")
        cur.execute("INSERT INTO api_web_sessions (token_hash, username, csrf, expires_at) "
                    "VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
                    (_token_hash(token), username, csrf, SESSION_SECONDS))
    return token, Session(Staff(username, row[1], row[2]), csrf)


def session(conn: Connection, token: str) -> Session | None:
    """The session of a cookie's token, while in force."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT s.username, f.role, f.district, s.csrf FROM api_web_sessions s "
                    "JOIN api_web_staff f USING (username) "
                    "WHERE s.token_hash = %s AND s.expires_at > now()", (_token_hash(token),))
        row = cur.fetchone()
    return Session(Staff(row[0], row[1], row[2]), row[3]) if row else None


_LOCKED_FOR = """
SELECT greatest(
    coalesce((SELECT extract(epoch FROM locked_until - now()) FROM api_second_factor_lockouts
              WHERE subject = %s AND agency = %s AND client = %s), 0),
    coalesce((SELECT extract(epoch FROM refused_until - now()) FROM api_agency_failure_budgets
              WHERE agency = %s AND client = %s), 0))"""


async def locked_for(reader: AsyncReader, who: Caller) -> float:
    """Seconds left of the lock of ``who`` (an account from an address) or of its
    address's budget; 0 when neither is in force."""
    row = await reader.fetchone(_LOCKED_FOR, (who.subject, who.agency, who.client,
                                              who.agency, who.client))
    return max(0.0, float(row[0])) if row else 0.0


def logout(conn: Connection, token: str) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM api_web_sessions WHERE token_hash = %s", (_token_hash(token),))
