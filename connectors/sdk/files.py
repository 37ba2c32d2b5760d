"""Reading a file a partner put in a folder we read: a regular file only, of bounded size.

A partner who can write the folder could otherwise make us read what it may not (a
symbolic link to one of our files, whose bytes would then travel as the raw record of a
dead letter), hang us (a FIFO blocks ``open`` and ``read``) or exhaust our memory (a file
of any size). :func:`read_regular_file` looks at the entry without following it
(``lstat``), opens it with ``O_NOFOLLOW`` (a symbolic link swapped in after the look is
refused by the kernel) and ``O_NONBLOCK`` (opening a FIFO swapped in does not block), and
checks what it opened (``fstat``: a regular file, the one looked at, not over the limit)
before reading at most the limit.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class FileRefused(Exception):
    """The entry is not a regular file we may read; ``reason`` says what it is."""

    def __init__(self, reason: str, *, oversize: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.oversize = oversize


def kind_of(mode: int) -> str:
    """What a file mode is, in words ("a symbolic link", "a FIFO (named pipe)"...)."""
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                        (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "not a regular file"


def check_regular(path: Path, max_bytes: int) -> os.stat_result:
    """``lstat`` of ``path`` if it is a regular file of at most ``max_bytes``;
    :class:`FileRefused` otherwise (``OSError`` when it cannot be looked at)."""
    seen = os.lstat(path)
    if not stat.S_ISREG(seen.st_mode):
        raise FileRefused(f"is {kind_of(seen.st_mode)}, not a regular file; only regular "
                          f"files are read")
    _check_size(seen.st_size, max_bytes)
    return seen


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``. Raises
    :class:`FileRefused` (not read: the reason says why) or ``OSError`` (cannot be read
    now: missing, permissions, I/O)."""
    seen = check_regular(path, max_bytes)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefused("became a symbolic link while it was being opened; only "
                              "regular files are read") from None
        raise
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise FileRefused(f"became {kind_of(opened.st_mode)} while it was being opened; "
                              f"only regular files are read")
        if (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino):
            raise FileRefused("was replaced by another file while it was being opened")
        _check_size(opened.st_size, max_bytes)
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FileRefused(f"grew beyond the limit of {max_bytes:,} bytes while it was "
                              f"being read", oversize=True)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise FileRefused(f"has {size:,} bytes, more than the limit of {max_bytes:,}; it was "
                          f"not read", oversize=True)
