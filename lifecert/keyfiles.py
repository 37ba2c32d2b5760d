"""Secret keys kept in files outside the database (the personal-data master key, the
second-factor key): read where a process looks for them, created only by an explicit
step (``lifecert keys create``, or ``lifecert stack up`` for the local stack).

A key made silently on first use is a fault: a process started from another folder, or
with another ``LIFECERT_KEYS_DIR``, would make its own key and write data that no other
process can read (issue 18). So a loader that finds no key refuses, naming where it
looked and how to create it.
"""

from __future__ import annotations

import os
from pathlib import Path

CREATE_HOW = ("create it once with `lifecert keys create` (the local stack's `lifecert "
              "stack up` does), and give every process the same key")


class MissingKeyError(RuntimeError):
    """No key where it was looked for; the message says where and how to create it."""


def missing(what: str, env: str, path: Path) -> MissingKeyError:
    return MissingKeyError(
        f"no {what}: ${env} is not set and {path} does not exist; {CREATE_HOW}"
    )


def create(path: Path, text: str) -> bool:
    """Write ``text`` to a new file ``path`` (mode 0600, its folder 0700 if made);
    False when it exists already (it is never replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return True
