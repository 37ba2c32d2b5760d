"""Citizen id masking: the one place that decides what looks like an identity number and
replaces it with asterisks, wherever a partner's text or bytes could carry one sent by
mistake into a dead letter, a reason, a log line or a receipt.

What counts (the union of what every door needed; masking a little more is the safe side):

- a mainland citizen id number: a run of 15 digits or more (the 18-character kind may end
  in ``X``; a longer run, an id with digits typed on, is masked whole), in ASCII or
  full-width digits (０-９, Ｘ) as a person may type them; a letter beside it does not
  protect it (``ID440604...`` is masked);
- with ``hong_kong=True``, also a Hong Kong identity card number: one or two letters, six
  digits and a check digit or ``A``, the check often in brackets (``A123456(7)``),
  standing alone (not inside a longer word).

Pure functions over ``str`` and ``bytes``; no other module keeps a pattern of its own.
"""

from __future__ import annotations

import re
from typing import Any

from lifecert.events import bounds

_DIGIT = "0-9０-９"
_MAINLAND = rf"(?<![{_DIGIT}])[{_DIGIT}]{{15,}}[XxＸｘ]?"
_WORD = "0-9A-Za-z０-９Ａ-Ｚａ-ｚ"
_HONG_KONG = (rf"(?<![{_WORD}])[A-ZＡ-Ｚ]{{1,2}}[{_DIGIT}]{{6}}"
              rf"(?:[(（][0-9A０-９][)）]|[0-9A０-９])(?![{_WORD}])")
_TEXT = re.compile(_MAINLAND)
_TEXT_HK = re.compile(f"{_MAINLAND}|{_HONG_KONG}")
# In the bytes, before they are decoded: a number the decoder would hide (a byte that is
# not of the encoding, or the start of a character that swallows its first digit). Exact
# lengths here, or the ASCII digit that ends a GB18030 four-byte character just before an
# id would be taken for part of it (and the character broken).
_BYTES = re.compile(rb"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15}|[0-9]{19,})(?![0-9Xx])")
_BYTES_HK = re.compile(_BYTES.pattern + rb"|(?<![0-9A-Za-z])[A-Z]{1,2}[0-9]{6}"
                       rb"(?:\([0-9A]\)|[0-9A])(?![0-9A-Za-z])")


def mask_text(text: str, *, hong_kong: bool = False) -> str:
    """``text`` with every citizen id number (and, with ``hong_kong``, Hong Kong identity
    card number) replaced by as many ``*``."""
    return (_TEXT_HK if hong_kong else _TEXT).sub(lambda m: "*" * len(m.group()), text)


def mask_bytes(raw: bytes, encoding: str = "utf-8", *, hong_kong: bool = False) -> bytes:
    """``raw`` (text in ``encoding``) with every citizen id number masked, in two passes.
    Over the bytes first: a number that a byte not of the encoding, or a character that
    swallows its first digit, would hide from the decoder. Then over the decoded text
    (bytes not of the encoding kept as they are, ``surrogateescape``): in GB18030 the
    second and fourth bytes of a four-byte character are ASCII digits and the second of
    a two-byte one may be an ASCII letter, so a number right after such a character only
    stands alone in the text."""
    raw = (_BYTES_HK if hong_kong else _BYTES).sub(lambda m: b"*" * len(m.group()), raw)
    text = raw.decode(encoding, errors="surrogateescape")
    masked = mask_text(text, hong_kong=hong_kong)
    return raw if masked == text else masked.encode(encoding, errors="surrogateescape")


def show(value: Any) -> str:
    """``bounds.show`` of a value for a reason or a log line, citizen id numbers masked
    first (before it is cut, so that no part of a number is left)."""
    return bounds.show(mask_text(str(value)))


__all__ = ["mask_bytes", "mask_text", "show"]
