"""Who a register row names, reduced to keyed digests: pure functions, no I/O.

No name and no citizen id number is compared in the clear. Both sides of the comparison (the
roster of enrolled retirees and each register row) are reduced to HMAC-SHA256 digests under
the bureau's comparison key, after normalising: a citizen id to its 18-character form with
its check digit verified (a first-generation 15-digit number is widened), a name to NFKC
with every kind of space and the separators of transliterated names removed, case folded.
A digest cannot be reversed without the key, and the key never leaves the bureau.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from operator import mul

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ID18 = re.compile(r"[0-9]{17}[0-9X]")
_ID15 = re.compile(r"[0-9]{15}")
# The middle dots of transliterated names (艾力·买买提), hyphens, and every space.
_NAME_NOISE = re.compile(r"[\s\u00b7\u2022\u2027\u30fb\uff65\u0387\-\u2010\u2011]+")
KEY_BYTES = 32


class IdentityError(ValueError):
    """A citizen id or a name that cannot be compared; the message says why."""


_WEIGHT_OF_ZEROS = 48 * sum(_WEIGHTS)   # the ASCII codes of the digits, less "0" each


def check_digit(first17: str) -> str:
    """The check digit of 17 ASCII digits (GB 11643-1999, ISO 7064 MOD 11-2)."""
    return _CHECK[(sum(map(mul, first17.encode("ascii"), _WEIGHTS)) - _WEIGHT_OF_ZEROS) % 11]


def normal_citizen_id(text: str) -> str:
    """The 18-character form of a citizen id number (GB 11643-1999), upper-case ``X``.
    A 15-digit first-generation number is widened (century 19, check digit computed).
    Raises :class:`IdentityError` for anything else, or a wrong check digit."""
    value = text.strip().upper()
    if _ID15.fullmatch(value):
        first17 = value[:6] + "19" + value[6:]
        return first17 + check_digit(first17)
    if not _ID18.fullmatch(value):
        raise IdentityError("is not a citizen id number: expected 18 characters (17 digits "
                            "and a digit or X) or 15 digits")
    if check_digit(value[:17]) != value[17]:
        raise IdentityError("has a wrong check digit (GB 11643-1999): a digit was mistyped")
    return value


def birth_date_of(citizen_id: str) -> date | None:
    """The birth date an 18-character citizen id carries (None if it is no date)."""
    try:
        return date(int(citizen_id[6:10]), int(citizen_id[10:12]), int(citizen_id[12:14]))
    except ValueError:
        return None


def normal_name(text: str) -> str:
    """A name as compared: NFKC, no spaces or middle dots or hyphens, case folded.
    Raises :class:`IdentityError` when nothing remains or a control character is in it."""
    value = _NAME_NOISE.sub("", unicodedata.normalize("NFKC", text)).casefold()
    if not value:
        raise IdentityError("is empty")
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise IdentityError("holds a control or format character")
    if len(value) > 100:
        raise IdentityError("is longer than 100 characters")
    return value


@dataclass(frozen=True)
class Digester:
    """HMAC-SHA256 under the comparison key; ``id`` and ``name`` are domain-separated, so
    a name that happens to spell an id number never meets it."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"the comparison key must be {KEY_BYTES} bytes, "
                             f"not {len(self.key)}")

    def _mac(self, domain: bytes, value: str) -> str:
        return hmac.digest(self.key, domain + value.encode("utf-8"), "sha256").hex()

    def citizen_id(self, text: str) -> str:
        """Digest of a citizen id number (normalised; IdentityError if it is none)."""
        return self._mac(b"id\0", normal_citizen_id(text))

    def name(self, text: str) -> str:
        """Digest of a name (normalised; IdentityError if it cannot be compared)."""
        return self._mac(b"name\0", normal_name(text))
