"""The roster of enrolled retirees the registers are compared against: digests only.

A CSV file, UTF-8, header ``retiree_id,id_digest,name_digest,birth_date``: the digests are
:class:`~connectors.death_registers.identity.Digester` HMACs under the comparison key. The
bureau's master system, which holds each retiree's citizen id number and name, writes it
with :func:`roster_line` (lifecert's events carry no citizen id number and only a sealed
name). Pure functions except :func:`load_key`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import os
import stat
from datetime import date
from pathlib import Path

from connectors.death_registers.identity import KEY_BYTES, Digester
from connectors.death_registers.matching import Enrolled, Roster
from lifecert.events import bounds

HEADER = "retiree_id,id_digest,name_digest,birth_date"


class RosterError(ValueError):
    """The roster or the key is unusable; the message names the line and field."""


def roster_line(digester: Digester, retiree_id: str, citizen_id: str, name: str,
                birth_date: date) -> str:
    return (f"{retiree_id},{digester.citizen_id(citizen_id)},{digester.name(name)},"
            f"{birth_date.isoformat()}\n")


def parse_roster(text: str, where: str) -> Roster:
    """The roster of ``text`` (a roster file's content); :class:`RosterError` naming
    ``where`` and the line for any wrong line: a roster is used whole or not at all."""
    lines = io.StringIO(text)
    if lines.readline().rstrip("\r\n") != HEADER:
        raise RosterError(f"{where}:1: the header must be {HEADER!r}")
    entries = []
    for number, row in enumerate(csv.reader(lines), start=2):
        if len(row) != 4:
            raise RosterError(f"{where}:{number}: {len(row)} columns, expected 4")
        retiree_id, id_digest, name_digest, born = row
        problem = bounds.id_problem("retiree_id", retiree_id)
        if problem:
            raise RosterError(f"{where}:{number}: retiree_id: {problem}")
        for field, digest in (("id_digest", id_digest), ("name_digest", name_digest)):
            if len(digest) != 64 or digest.strip("0123456789abcdef"):
                raise RosterError(f"{where}:{number}: {field} is not 64 lower-case hex digits")
        try:
            birth_date = date.fromisoformat(born)
        except ValueError:
            raise RosterError(f"{where}:{number}: birth_date {bounds.show(born)} is not "
                              f"YYYY-MM-DD") from None
        entries.append(Enrolled(retiree_id, id_digest, name_digest, birth_date))
    return Roster(entries)


def load_key(path: Path) -> Digester:
    """The comparison key: base64 of 32 bytes in a file readable by its owner only."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"the comparison key {path} cannot be read ({exc}); make it "
                          f"with: head -c 32 /dev/urandom | base64 > {path}; chmod 600 "
                          f"{path}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RosterError(f"the comparison key {path} is readable by others "
                          f"({stat.filemode(mode)}); chmod 600 {path}")
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RosterError(f"the comparison key {path} is not base64") from None
    if len(key) != KEY_BYTES:
        raise RosterError(f"the comparison key {path} holds {len(key)} bytes, expected "
                          f"{KEY_BYTES}")
    return Digester(key)


def write_key(path: Path) -> None:
    """Make a comparison key file (0600), for tests and the simulated bureau."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
