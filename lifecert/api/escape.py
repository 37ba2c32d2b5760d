"""Text a client controls, made safe to store and to log: control and other non-printable
characters (NUL, newlines, ANSI escapes, lone surrogates, bidirectional overrides...)
become repr-like escapes, backslashes are doubled so that an escape cannot be forged, and
the length is capped. Printable text, Chinese included, is left as it is: a NUL becomes
the four characters backslash, x, 0, 0, as ``repr`` shows it, and a backslash two.
"""

from __future__ import annotations

import logging

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(c: str) -> str:
    named = _NAMED.get(c)
    if named is not None:
        return named
    if c.isprintable():
        return c
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escaped(value: object, limit: int = 1000) -> str:
    """``value`` as text of at most ``limit`` characters (plus a note of how much was cut)
    holding only printable characters and no unescaped backslash. Reads at most ``limit``
    characters of ``value``, however long it is."""
    text = value if isinstance(value, str) else str(value)
    total = len(text)
    head = text[:limit]  # an escape is never shorter than its character
    if "\\" not in head and head.isprintable():  # the common case, at C speed
        return head if total <= limit else f"{head}...[{total - limit} more characters]"
    out: list[str] = []
    size = 0
    for i, c in enumerate(head):
        e = _escape_char(c)
        if size + len(e) > limit:
            return "".join(out) + f"...[{total - i} more characters]"
        out.append(e)
        size += len(e)
    if total > limit:
        return "".join(out) + f"...[{total - limit} more characters]"
    return "".join(out)


class EscapingFormatter(logging.Formatter):
    """Log lines whose message cannot hold a line break or a terminal escape, whatever
    the arguments: a client cannot forge a line in the server's log. Tracebacks, which
    the formatter appends after the message, keep their lines."""

    def __init__(self, fmt: str | None = None, *, limit: int = 4000) -> None:
        super().__init__(fmt)
        self.limit = limit

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped(record.message, self.limit)
        return super().formatMessage(record)
