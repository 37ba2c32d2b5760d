"""The second factor of the status query: the last 4 characters of the ID number.

Only a keyed, salted hash is stored (``api_second_factors``): HMAC-SHA-256 under the
server's second-factor key of (salt, retiree id, the 4 characters). The ID number itself
is read once when the bureau registers it and dropped at once; it is never stored, never
logged, never sent to Kafka.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FACTOR = re.compile(r"[0-9]{3}[0-9X]")
# A mainland resident ID number: 17 digits and a check character (digit or X); other
# documents (Hong Kong, Macau, passports) are accepted as letters and digits.
_ID_NUMBER = re.compile(r"[0-9A-Z()]{6,24}")


class SecondFactorError(ValueError):
    """A malformed second factor or ID number (the message never repeats the value)."""


def normalize_factor(text: str) -> str:
    """The 4 characters as compared: upper case, without spaces."""
    value = text.strip().upper()
    if not _FACTOR.fullmatch(value):
        raise SecondFactorError(
            "the second factor is the last 4 characters of the ID number: 3 digits and a "
            "digit or X"
        )
    return value


def factor_of_id_number(id_number: str) -> str:
    value = re.sub(r"\s+", "", id_number).upper()
    if not _ID_NUMBER.fullmatch(value):
        raise SecondFactorError("not an ID number (6-24 letters and digits expected)")
    tail = value[-4:]
    if not _FACTOR.fullmatch(tail):
        raise SecondFactorError("the ID number does not end in 3 digits and a digit or X")
    return tail


def digest(key: bytes, salt: bytes, retiree_id: str, factor: str) -> bytes:
    message = salt + b"\0" + retiree_id.encode("utf-8") + b"\0" + factor.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()


def matches(key: bytes, salt: bytes, stored: bytes, retiree_id: str, factor: str) -> bool:
    return hmac.compare_digest(digest(key, salt, retiree_id, factor), stored)


def subject_ref(key: bytes, retiree_id: str) -> str:
    """A stable pseudonym of a retiree id for the audit table (keyed, not reversible
    without the key)."""
    return hmac.new(key, b"subject\0" + retiree_id.encode("utf-8"), hashlib.sha256).hexdigest()[
        :20
    ]


@dataclass(frozen=True)
class Registration:
    retiree_id: str
    salt: bytes
    digest: bytes


def register_rows(key: bytes, pairs: Iterable[tuple[str, str]]) -> Iterator[Registration]:
    """(retiree id, ID number) -> what is stored. Raises SecondFactorError naming the
    retiree id (never the ID number) of a bad row."""
    for retiree_id, id_number in pairs:
        try:
            factor = factor_of_id_number(id_number)
        except SecondFactorError as exc:
            raise SecondFactorError(f"retiree {retiree_id}: {exc}") from None
        salt = secrets.token_bytes(16)
        yield Registration(retiree_id, salt, digest(key, salt, retiree_id, factor))


def read_csv(path: Path) -> Iterator[tuple[str, str]]:
    """Rows ``retiree_id,id_number`` (a header line naming them is skipped)."""
    with path.open(newline="", encoding="utf-8") as fh:
        for n, row in enumerate(csv.reader(fh), start=1):
            if not row or (n == 1 and row[0].strip().lower() == "retiree_id"):
                continue
            if len(row) != 2 or not row[0].strip():
                raise SecondFactorError(f"{path.name} line {n}: expected retiree_id,id_number")
            yield row[0].strip(), row[1]


UPSERT = (
    "INSERT INTO api_second_factors (retiree_id, salt, digest) VALUES %s "
    "ON CONFLICT (retiree_id) DO UPDATE SET salt = excluded.salt, digest = excluded.digest, "
    "updated_at = now()"
)


def store(conn: Any, registrations: Iterable[Registration]) -> int:
    """Upsert the registrations in one transaction; returns how many."""
    from psycopg2.extras import execute_values

    rows = [(r.retiree_id, r.salt, r.digest) for r in registrations]
    with conn, conn.cursor() as cur:
        if rows:
            execute_values(cur, UPSERT, rows, page_size=1000)
    return len(rows)
