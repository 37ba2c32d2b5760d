"""The death-registers source: extract files dropped by civil affairs, public security and
hospitals into one inbox folder, compared with the roster of enrolled retirees.

Settings: ``inbox`` (the folder the registers drop into), ``roster_file`` and ``key_file``
(roster.py), optional ``done`` (default ``<inbox>/../done``: read extracts are moved there
and kept, the audit of what was compared) and ``review`` (default ``<inbox>/../review``).

Records: each row of an extract is one record. An exact match's key is the death's
(:func:`~connectors.death_registers.matching.death_key`), so that the same death in two
registers, or an extract delivered twice, gets one event id and has one effect; every
other row's key is ``<file>:<line>``. Position: ``{"file", "line", "last"}``; the file is
moved to ``done`` once its last line's checkpoint is durable (again on restart if the move
was lost). Partial matches are written to ``review/pending/<review id>.json`` (digests and
retiree ids only, no name, no citizen id) for ``lifecert review deaths``; a confirmation
comes back as a staff file ``SR-*.jsonl`` in the inbox (the same door, audited in ``done``).
One instance must read all three registers: the event id derives from the instance name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.death_registers import formats, review
from connectors.death_registers.identity import Digester
from connectors.death_registers.matching import (
    Death,
    Kind,
    Match,
    Roster,
    death_event,
    death_key,
    match,
)
from connectors.death_registers.roster import RosterError, load_key, parse_roster
from connectors.sdk import (
    ConfigError,
    Event,
    PartnerRecord,
    PartnerUnavailable,
    RecordRejected,
    SourceConnector,
)
from connectors.sdk.files import FileRefused, read_regular_file
from lifecert.events import masking

MAX_EXTRACT_BYTES = 512 * 1024 * 1024
MAX_ROSTER_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Row:
    """What the poll made of a row: a death and its match, a staff confirmation's event,
    or the reason it is refused."""

    death: Death | None = None
    found: Match | None = None
    event: Event | None = None
    refused: str | None = None


def extract_order(name: str) -> tuple[str, str, str]:
    m = formats.FILE_NAME.fullmatch(name) or review.CONFIRM_NAME.fullmatch(name)
    assert m is not None
    return m.group(2), m.group(3), m.group(1)


class DeathRegistersSource(SourceConnector):
    kind = "death-registers"
    description = ("Death registers (civil affairs, public security, hospitals): extracts "
                   "compared with the enrolled retirees")
    source_agency = "FS-DEATH-REGISTERS"

    def _configure(self, settings: dict[str, Any]) -> None:
        self.inbox = self._path(settings, "inbox", None)
        self.done = self._path(settings, "done", self.inbox.parent / "done")
        self.review = self._path(settings, "review", self.inbox.parent / "review")
        self.roster_file = self._path(settings, "roster_file", None)
        self.key_file = self._path(settings, "key_file", None)
        self._roster: tuple[tuple[int, int], Roster] | None = None
        self._digester: Digester | None = None
        self._line_counts: dict[tuple[str, int, int], int] = {}

    def _path(self, settings: dict[str, Any], key: str, default: Path | None) -> Path:
        value = self._setting(settings, key, str, ... if default is None else str(default))
        path = Path(value)
        if not path.is_absolute():
            raise ConfigError(f"connector {self.name!r}: {key} must be an absolute path, "
                              f"got {value!r}")
        return path

    def _check(self) -> list[str]:
        problems = [f"{self.name}: {what} {path} is not there"
                    for what, path in (("the inbox", self.inbox), ("the roster", self.roster_file))
                    if not path.exists()]
        try:
            load_key(self.key_file)
        except RosterError as exc:
            problems.append(f"{self.name}: {exc}")
        return problems

    def _open(self) -> None:
        try:
            self._digester = load_key(self.key_file)
        except RosterError as exc:
            raise ConfigError(f"connector {self.name!r}: {exc}") from None
        for folder in (self.done, self.review / "pending"):
            folder.mkdir(parents=True, exist_ok=True)

    def roster(self) -> Roster:
        """The roster, read again whenever its file changed."""
        try:
            seen = os.stat(self.roster_file)
            stamp = (seen.st_mtime_ns, seen.st_size)
            if self._roster is None or self._roster[0] != stamp:
                text = read_regular_file(self.roster_file, MAX_ROSTER_BYTES).decode("utf-8")
                self._roster = (stamp, parse_roster(text, str(self.roster_file)))
        except FileNotFoundError:
            raise PartnerUnavailable(f"the roster {self.roster_file} is not there") from None
        except (FileRefused, UnicodeDecodeError, RosterError) as exc:
            # A wrong roster would compare against the wrong people: wait for a good one.
            raise PartnerUnavailable(f"the roster {self.roster_file} is unusable: {exc}") \
                from None
        return self._roster[1]

    def _extracts(self) -> list[str]:
        try:
            names = os.listdir(self.inbox)
        except OSError as exc:
            raise PartnerUnavailable(f"the inbox {self.inbox} cannot be listed "
                                     f"({exc.strerror}); mount the registers' share") from None
        wanted = [n for n in names if formats.register_of(n) or review.CONFIRM_NAME.fullmatch(n)]
        return sorted(wanted, key=extract_order)

    def _poll(self, position: Any, max_records: int) -> Sequence[PartnerRecord]:
        for name in self._extracts():
            mine = position if isinstance(position, dict) and position.get("file") == name \
                else {}
            if mine and mine.get("line") == mine.get("last"):
                self._finish(name)       # read before a restart, the move was lost
                continue
            return self._rows(name, int(mine.get("line", 0)), max_records)
        return []

    def _rows(self, name: str, after: int, max_records: int) -> list[PartnerRecord]:
        try:
            content = read_regular_file(self.inbox / name, MAX_EXTRACT_BYTES)
        except FileNotFoundError:
            return []
        except FileRefused as exc:
            return [PartnerRecord(key=name, position={"file": name, "line": 0, "last": 0},
                                  raw=b"", data=Row(refused=f"extract {name} {exc.reason}"))]
        except OSError as exc:
            raise PartnerUnavailable(f"extract {name} cannot be read ({exc.strerror})") \
                from None
        lines = content.splitlines(keepends=True)
        prefix = name[:2]
        skip = formats.HEADER_LINES.get(prefix, 0)
        last = len(lines)
        roster = self.roster() if prefix != "SR" else None
        records = []
        for number in range(max(after, skip) + 1, last + 1):
            line = lines[number - 1]
            row = self._row(prefix, line, f"{name}:{number}", roster)
            key = f"{name}:{number}"
            if row.found is not None and row.found.kind is Kind.EXACT and row.death:
                key = death_key(row.found.retiree_ids[0], row.death.date_of_death)
            elif row.event is not None:
                key = f"death:{row.event['retiree_id']}:{row.event['date_of_death']}"
            records.append(PartnerRecord(key=key, raw=masking.mask_bytes(line), data=row,
                                         position={"file": name, "line": number, "last": last}))
            if len(records) >= max_records:
                break
        if not records:  # empty, or only a header: nothing to publish, but done with it
            return [PartnerRecord(key=f"{name}:empty", raw=b"", data=Row(),
                                  position={"file": name, "line": last, "last": last})]
        return records

    def _row(self, prefix: str, line: bytes, row_ref: str, roster: Roster | None) -> Row:
        if roster is None:
            try:
                return Row(event=review.confirmed_death(self.review, line))
            except formats.RowRejected as exc:
                return Row(refused=f"{row_ref}: {exc}")
        assert self._digester is not None
        try:
            death = formats.PARSERS[prefix](line, row_ref, self._digester)
        except formats.RowRejected as exc:
            return Row(refused=f"{row_ref}: {exc}; correct the row and send it again")
        return Row(death=death, found=match(death, roster))

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        row: Row = record.data
        if row.refused:
            raise RecordRejected(row.refused)
        if row.event is not None:
            return [row.event]
        if row.death and row.found and row.found.kind is Kind.EXACT:
            return [death_event(row.death, row.found.retiree_ids[0])]
        return []

    def _committed(self, records: Sequence[PartnerRecord],
                   rejected: Sequence[tuple[PartnerRecord, str]], position: Any) -> None:
        for record in records:
            row: Row = record.data
            if row.death and row.found and row.found.kind in (Kind.ID_NAME_DIFFERS,
                                                              Kind.NAME_BIRTH_ONLY):
                review.write_pending(self.review, row.death, row.found)
        if isinstance(position, dict) and position.get("line") == position.get("last"):
            self._finish(position["file"])

    def _finish(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.inbox / name, self.done / name)

    def _lag(self, position: Any) -> int | None:
        """The records :meth:`_poll` will still return after ``position``: the rows left in
        its extract and every row of the extracts after it (one record for an extract
        without rows, or refused whole)."""
        names = self._extracts()
        waiting = 0
        for name in names:
            mine = position if isinstance(position, dict) and position.get("file") == name \
                else {}
            if mine and mine.get("line") == mine.get("last"):
                continue
            last = self._line_count(name)
            if last is None:  # refused whole: one record, unless it is the position's
                waiting += 0 if mine else 1
            elif last >= 0:   # (-1: gone meanwhile, no record)
                skip = formats.HEADER_LINES.get(name[:2], 0)
                rows = last - max(int(mine.get("line", 0)), skip)
                waiting += rows if rows > 0 else 1
        self._line_counts = {k: v for k, v in self._line_counts.items() if k[0] in names}
        return waiting

    def _line_count(self, name: str) -> int | None:
        """The lines of an extract as :meth:`_rows` splits it (None: refused whole; -1:
        gone), remembered while its size and time stay the same (lag is asked at every
        idle poll)."""
        path = self.inbox / name
        try:
            seen = os.stat(path, follow_symlinks=False)
            stamp = (name, seen.st_size, seen.st_mtime_ns)
            if stamp not in self._line_counts:
                content = read_regular_file(path, MAX_EXTRACT_BYTES)
                self._line_counts[stamp] = len(content.splitlines())
            return self._line_counts[stamp]
        except FileNotFoundError:
            return -1
        except FileRefused:
            return None
        except OSError as exc:
            raise PartnerUnavailable(f"extract {name} cannot be read ({exc.strerror})") \
                from None
