"""Source connector for the managing units of government retirees (channel EMPLOYER_BATCH).

Each unit drops certification batches (CSV or XLSX, format in
:mod:`connectors.employer_files.batch` and docs/partners/employer-files.md) into its own
folder of the bureau's exchange share: ``drop/<unit id>/``. The folder is the unit's
identity (the share gives each unit write access to its folder only), so the unit id of
the certifications is the folder's name, never a column a unit could fill with another's.
Settings::

    drop            required: the root of the units' folders. Missing (share not mounted)
                    is PartnerUnavailable, retried; never "no files"
    outbox          where each unit finds its result files, ``outbox/<unit id>/``
                    (default: ``outbox`` beside ``drop``)
    archive         ours (default: ``archive`` beside ``drop``): processing/, done/,
                    refused/; done/ and refused/ are the memory of files received
    roster          optional: CSV ``retiree_id,managing_unit`` (UTF-8, header line), the
                    bureau's export of the units of government retirees from the pension
                    master. A row whose retiree the roster gives to another unit is refused;
                    a retiree not in it is left to the hub (the fold decides)
    scan_interval   seconds between scans of an empty drop (default 1)
    max_file_bytes  the largest file read (default 16 MiB); a larger one is refused whole

A file is claimed (renamed into processing/ as ``<unit>~<sha256>~<name>``) in the order of
arrival (modification time), one at a time. Its ``recorded_at`` is its modification time
(when the unit finished writing it): a re-read after a crash publishes the same events.
The same content delivered again by the same unit (its SHA-256 already in done/ or
refused/) has no effect: it is moved to refused/ as ``...~dup<k>`` with a result file saying
so, and nothing is published. A file refused whole (not CSV/XLSX, wrong header, unreadable,
a link or a FIFO, too large, a name with ``~`` or control characters) is one PartnerRecord
whose ``_to_events`` raises RecordRejected: one dead letter, a result file with the reason.
Each row of a readable batch is one PartnerRecord (key ``<claim>:<row>``); a refused row is
dead-lettered (citizen ids masked in its raw bytes) and the others flow on. When the last
row is committed, the result file (every row ACCEPTED or REFUSED with its reason) is
written to the unit's outbox and the file moved to done/.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from connectors.employer_files import batch as eb
from connectors.sdk.base import Event, PartnerRecord, Position, SourceConnector
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from connectors.sdk.files import FileRefused, read_regular_file
from lifecert.events import bounds
from lifecert.events.time import SHANGHAI, isoformat_local

CHANNEL = "EMPLOYER_BATCH"
MAX_FILE_BYTES = 16 * 1024 * 1024
_CLAIM_RE = re.compile(r"([0-9A-Za-z][0-9A-Za-z._-]{0,63})~([0-9a-f]{64}|unread-[0-9]+)~(.+)")
_DUP_RE = re.compile(r"(.+)~dup([0-9]+)")
_SAFE_NAME = re.compile(r"[^~\x00-\x1f\x7f/\\]{1,120}")


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


@dataclass(frozen=True, slots=True)
class Claimed:
    claim: str
    unit: str
    name: str
    recorded_at: datetime
    batch: eb.Batch | None
    refusal: str | None = None
    raw: bytes = b""
    verdicts: dict[int, eb.Accepted | eb.RowRefused] = field(default_factory=dict)

    @property
    def last_row(self) -> int:
        return self.batch.last_row if self.batch is not None else 1

    @property
    def arrived(self) -> date:
        return self.recorded_at.astimezone(SHANGHAI).date()


def event_of(claimed: Claimed, accepted: eb.Accepted) -> Event:
    performed = datetime.combine(accepted.certified_on, datetime.min.time(), tzinfo=SHANGHAI)
    return {"type": "CertificationRecorded", "recorded_at": isoformat_local(claimed.recorded_at),
            "certification_id": accepted.certification_id, "retiree_id": accepted.retiree_id,
            "channel": CHANNEL, "agency_id": claimed.unit,
            "performed_at": performed.isoformat()}


def events_of(claimed: Claimed, accepted: eb.Accepted) -> list[Event]:
    """The certification of an accepted row, and its ContactDetailsUpdated when the row
    gave a phone or an address (the optional columns 联系电话, 联系地址; sealed by the
    runner)."""
    events = [event_of(claimed, accepted)]
    if accepted.phone is not None or accepted.address is not None:
        events.append({"type": "ContactDetailsUpdated",
                       "recorded_at": isoformat_local(claimed.recorded_at),
                       "retiree_id": accepted.retiree_id, "phone": accepted.phone,
                       "address": accepted.address, "channel": CHANNEL,
                       "agency_id": claimed.unit})
    return events


class EmployerFilesSource(SourceConnector):
    kind = "employer-files"
    description = ("Managing units of government retirees: CSV/XLSX certification batches "
                   "in a drop folder per unit, a result file per batch")
    source_agency = "EMPLOYER-UNITS"

    def _configure(self, settings: dict[str, Any]) -> None:
        self.drop = Path(self._setting(settings, "drop", str))
        beside = self.drop.parent
        self.outbox = Path(self._setting(settings, "outbox", str, str(beside / "outbox")))
        archive = Path(self._setting(settings, "archive", str, str(beside / "archive")))
        roster = self._setting(settings, "roster", str, "")
        self.roster_file = Path(roster) if roster else None
        self.processing, self.done, self.refused = (archive / "processing", archive / "done",
                                                    archive / "refused")
        self.idle_interval = self._setting(settings, "scan_interval", float, 1.0)
        self.max_file_bytes = self._setting(settings, "max_file_bytes", int, MAX_FILE_BYTES)
        if self.idle_interval <= 0 or self.max_file_bytes < 1:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): scan_interval and "
                              f"max_file_bytes must be positive")
        try:
            import openpyxl  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            raise ConfigError(f"connector {self.name!r} ({self.kind}) reads XLSX with openpyxl, "
                              f"which is not installed: pip install 'lifecert[files]'") from None
        self._claimed: Claimed | None = None
        self._roster: tuple[int, dict[str, str]] | None = None
        self._ignored: set[str] = set()
        self._counted: dict[tuple[str, int, int], tuple[str | None, int]] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def _open(self) -> None:
        self._require_drop()
        try:
            for folder in (self.outbox, self.processing, self.done, self.refused):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PartnerUnavailable(f"cannot create {exc.filename}: {exc.strerror}") from exc

    def _close(self) -> None:
        self._claimed = None

    def _check(self) -> list[str]:
        problems = []
        if not self.drop.is_dir():
            problems.append(f"{self.name}: drop {self.drop} is not a folder (share not "
                            f"mounted?); mount the units' share or fix `drop`")
        if self.roster_file is not None and not self.roster_file.is_file():
            problems.append(f"{self.name}: roster {self.roster_file} is not there; export it "
                            f"from the pension master or remove `roster`")
        return problems

    def _require_drop(self) -> None:
        if not self.drop.is_dir():
            raise PartnerUnavailable(f"drop folder {self.drop} is missing (units' share not "
                                     f"mounted?); waiting for it to come back")

    # -- reading -----------------------------------------------------------------------------
    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        self._require_drop()
        while True:
            claim = self._current() or self._claim_next()
            if claim is None:
                return []
            claimed = self._load(claim)
            mine: dict[str, Any] = position if isinstance(position, dict) and \
                position.get("file") == claim else {}
            if claimed.batch is None:
                if mine.get("refused"):
                    self._finish(claimed)
                    continue
                return [PartnerRecord(key=claim, position={"file": claim, "refused": True},
                                      raw=claimed.raw, data=Refusal(self._refusal_reason(claimed)))]
            after = int(mine.get("row", 1))
            rows = [r for r in claimed.batch.rows if r.number > after][:max_records]
            if not rows:
                self._finish(claimed)
                continue
            return [PartnerRecord(key=f"{claim}:{row.number}",
                                  position={"file": claim, "row": row.number},
                                  raw=row.raw, data=row) for row in rows]

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        if isinstance(record.data, Refusal):
            raise RecordRejected(record.data.reason)
        claimed = self._load(record.position["file"])  # the cached one, or read again
        if claimed.batch is None:
            raise RecordRejected(f"{claimed.name} (unit {claimed.unit}) changed while it was "
                                 f"being read: {claimed.refusal}")
        outcome = claimed.verdicts[record.data.number]
        if isinstance(outcome, eb.RowRefused):
            raise RecordRejected(f"{claimed.name} (unit {claimed.unit}) {outcome.reason}")
        return events_of(claimed, outcome)

    def _committed(self, records: Sequence[PartnerRecord],
                   rejected: Sequence[tuple[PartnerRecord, str]], position: Position) -> None:
        claim = position["file"]
        if not (self.processing / claim).exists():
            return
        claimed = self._load(claim)
        if position.get("refused") or position.get("row") == claimed.last_row:
            self._finish(claimed)

    def _lag(self, position: Position | None) -> int | None:
        """The records :meth:`_poll` will still return after ``position``: the rows left in
        the claimed file, then every row of the files waiting in the units' folders (one
        record for a file refused whole, none for a file received before)."""
        self._require_drop()
        waiting = 0
        claim = self._current()
        if claim is not None:
            claimed = self._load(claim)
            mine = position if isinstance(position, dict) and position.get("file") == claim \
                else {}
            if claimed.batch is None:
                waiting += 0 if mine.get("refused") else 1
            else:
                after = int(mine.get("row", 1))
                waiting += sum(1 for row in claimed.batch.rows if row.number > after)
        seen: set[tuple[str, str]] = set()
        arrivals = self._arrivals()
        for _mtime, unit, name in arrivals:
            digest, records = self._waiting_records(self.drop / unit / name)
            if digest is not None:
                if (unit, digest) in seen or self._received(unit, digest) is not None:
                    continue  # a duplicate: set aside, no record
                seen.add((unit, digest))
            waiting += records
        live = {str(self.drop / unit / name) for _m, unit, name in arrivals}
        self._counted = {k: v for k, v in self._counted.items() if k[0] in live}
        return waiting

    def _waiting_records(self, path: Path) -> tuple[str | None, int]:
        """(SHA-256 or None when unreadable, records it will be) of a file waiting in a
        unit's folder, remembered while its size and time stay the same (lag is asked at
        every idle poll)."""
        try:
            seen = os.lstat(path)
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {path}: {exc.strerror}") from exc
        stamp = (str(path), seen.st_size, seen.st_mtime_ns)
        if stamp not in self._counted:
            try:
                data = read_regular_file(path, self.max_file_bytes)
            except FileRefused:
                self._counted[stamp] = (None, 1)
                return self._counted[stamp]
            except FileNotFoundError:
                return None, 0
            except OSError as exc:
                raise PartnerUnavailable(f"cannot read {path}: {exc.strerror}") from exc
            digest, records = hashlib.sha256(data).hexdigest(), 1  # refused whole: one
            if _SAFE_NAME.fullmatch(path.name) and path.name != "unnamed":
                try:
                    records = len(eb.read_batch(path.name, data).rows)
                except eb.BatchRefused:
                    records = 1
            self._counted[stamp] = (digest, records)
        return self._counted[stamp]

    # -- rows ----------------------------------------------------------------------------------
    def _judge(self, claimed: Claimed) -> None:
        """Every row's verdict, decided once per load from the file alone (deterministic:
        the result file made at the end agrees with what was published, over any number
        of runs)."""
        assert claimed.batch is not None
        seen: dict[str, int] = {}
        roster = self._roster_map()
        for row in claimed.batch.rows:
            try:
                claimed.verdicts[row.number] = eb.check_row(row, claimed.unit, claimed.arrived,
                                                            roster, seen,
                                                            claimed.batch.contact)
            except eb.RowRefused as exc:
                claimed.verdicts[row.number] = exc

    def _roster_map(self) -> dict[str, str] | None:
        if self.roster_file is None:
            return None
        try:
            stamp = self.roster_file.stat().st_mtime_ns
            if self._roster is None or self._roster[0] != stamp:
                self._roster = (stamp, load_roster(self.roster_file.read_bytes()))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read the roster {self.roster_file}: "
                                     f"{exc.strerror}") from exc
        except ValueError as exc:
            raise PartnerUnavailable(f"roster {self.roster_file}: {exc}; export it again") \
                from exc
        return self._roster[1]

    # -- folders -------------------------------------------------------------------------------
    def _units(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.drop))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot list {self.drop}: {exc.strerror}") from exc
        units = []
        for e in entries:
            if e.is_dir(follow_symlinks=False) and bounds.AGENCY_ID.fullmatch(e.name):
                units.append(Path(e.path))
            elif e.name[:1] != "." and e.name not in self._ignored:
                self._ignored.add(e.name)
                self.log.warning("drop %s: ignoring %s: not a unit's folder (a folder named "
                                 "by the unit id)", self.drop, bounds.show(e.name))
        return units

    def _arrivals(self) -> list[tuple[int, str, str]]:
        """(mtime_ns, unit, name) of every file waiting in a unit's folder."""
        waiting = []
        for unit in self._units():
            try:
                for e in os.scandir(unit):
                    if e.name.startswith((".", "~$")) or e.is_dir(follow_symlinks=False):
                        continue  # an upload in progress, an Excel lock file, a sub-folder
                    waiting.append((e.stat(follow_symlinks=False).st_mtime_ns, unit.name,
                                    e.name))
            except OSError as exc:
                raise PartnerUnavailable(f"cannot list {unit}: {exc.strerror}") from exc
        return sorted(waiting)

    def _current(self) -> str | None:
        try:
            names = sorted(n for n in os.listdir(self.processing) if _CLAIM_RE.fullmatch(n))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot list {self.processing}: {exc.strerror}") \
                from exc
        return names[0] if names else None

    def _claim_next(self) -> str | None:
        for _mtime, unit, name in self._arrivals():
            source = self.drop / unit / name
            try:
                digest = hashlib.sha256(read_regular_file(source, self.max_file_bytes)) \
                    .hexdigest()
            except FileRefused:
                digest = f"unread-{_mtime}"
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise PartnerUnavailable(f"cannot read {source}: {exc.strerror}") from exc
            safe = name if _SAFE_NAME.fullmatch(name) else "unnamed"
            claim = f"{unit}~{digest}~{safe}"
            earlier = self._received(unit, digest)
            if earlier is not None:
                self._duplicate(source, claim, earlier)
                continue
            try:
                _move(source, self.processing / claim)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise PartnerUnavailable(f"cannot claim {source}: {exc.strerror}") from exc
            self.log.info("claimed %s of unit %s", bounds.show(name), unit)
            return claim
        return None

    def _received(self, unit: str, digest: str) -> str | None:
        if digest.startswith("unread-"):
            return None
        prefix = f"{unit}~{digest}~"
        for folder in (self.done, self.refused):
            for n in os.listdir(folder):
                if n.startswith(prefix) and not _DUP_RE.fullmatch(n):
                    return n[len(prefix):]
        return None

    def _duplicate(self, source: Path, claim: str, earlier: str) -> None:
        """The same content again: a result file says so; nothing is published."""
        k = 1 + sum(1 for n in os.listdir(self.refused) if n.startswith(f"{claim}~dup"))
        unit, _, name = _parts(claim)
        reason = (f"the same file (same content, SHA-256) was already received as "
                  f"{earlier}; it was not read again and has no effect")
        try:
            _write_atomically(self._result_path(unit, name, claim, f".dup{k}"),
                              eb.encode_result(name, [], refused=reason))
            _move(source, self.refused / f"{claim}~dup{k}")
        except OSError as exc:
            raise PartnerUnavailable(f"cannot set aside the duplicate {source}: "
                                     f"{exc.strerror}") from exc
        self.log.info("unit %s delivered %s again: same content as %s; no effect", unit,
                      bounds.show(name), bounds.show(earlier))

    def _load(self, claim: str) -> Claimed:
        if self._claimed is not None and self._claimed.claim == claim:
            return self._claimed
        unit, _digest, name = _parts(claim)
        path = self.processing / claim
        try:
            mtime = os.lstat(path).st_mtime_ns
            recorded = min(datetime.fromtimestamp(mtime / 1e9, UTC).replace(microsecond=0),
                           datetime.now(UTC))
            data = read_regular_file(path, self.max_file_bytes)
        except FileRefused as exc:
            size = " (setting max_file_bytes)" if exc.oversize else ""
            return self._keep(Claimed(claim, unit, name, datetime.now(UTC), None,
                                      f"the file {exc.reason}{size}"))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {path}: {exc.strerror}") from exc
        if name == "unnamed" or not _SAFE_NAME.fullmatch(name):
            return self._keep(Claimed(claim, unit, name, recorded, None,
                                      "the file name holds ~, control characters or more "
                                      "than 120 characters: rename the file",
                                      eb.mask_citizen_ids(data)))
        raw = eb.mask_citizen_ids(data)
        try:
            claimed = Claimed(claim, unit, name, recorded, eb.read_batch(name, data), raw=raw)
        except eb.BatchRefused as exc:
            return self._keep(Claimed(claim, unit, name, recorded, None, exc.reason, raw))
        self._judge(claimed)
        return self._keep(claimed)

    def _keep(self, claimed: Claimed) -> Claimed:
        self._claimed = claimed
        return claimed

    def _result_path(self, unit: str, name: str, claim: str, extra: str = "") -> Path:
        digest = _parts(claim)[1]
        tag = digest[:12] if not digest.startswith("unread-") else digest
        return self.outbox / unit / f"{name}.{tag}{extra}.result.csv"

    def _refusal_reason(self, claimed: Claimed) -> str:
        return (f"batch {bounds.show(claimed.name)} of unit {claimed.unit} refused as a whole, "
                f"none of its rows used: {claimed.refusal}. Result file "
                f"{self._result_path(claimed.unit, claimed.name, claimed.claim)}")

    def _finish(self, claimed: Claimed) -> None:
        if claimed.batch is None:
            result = eb.encode_result(claimed.name, [], refused=claimed.refusal)
            target = self.refused
        else:
            result = eb.encode_result(claimed.name, [
                eb.result_line(row, claimed.verdicts[row.number]) for row in claimed.batch.rows])
            target = self.done
        try:
            _write_atomically(self._result_path(claimed.unit, claimed.name, claimed.claim),
                              result)
            os.replace(self.processing / claimed.claim, target / claimed.claim)
        except OSError as exc:
            raise PartnerUnavailable(f"cannot finish {claimed.claim}: {exc.filename}: "
                                     f"{exc.strerror}") from exc
        self._claimed = None
        self.log.info("batch %s of unit %s finished: %s/", bounds.show(claimed.name),
                      claimed.unit, target.name)


def load_roster(data: bytes) -> dict[str, str]:
    """retiree id -> managing unit, from the roster CSV; ValueError naming the line."""
    text = data.decode("utf-8-sig")
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if header != ["retiree_id", "managing_unit"]:
        raise ValueError("line 1 must be the header retiree_id,managing_unit")
    roster = {}
    for number, row in enumerate(rows, start=2):
        if len(row) != 2 or not bounds.RETIREE_ID.fullmatch(row[0]) \
                or not bounds.AGENCY_ID.fullmatch(row[1]):
            raise ValueError(f"line {number} is not retiree_id,managing_unit")
        roster[row[0]] = row[1]
    return roster


def _parts(claim: str) -> tuple[str, str, str]:
    m = _CLAIM_RE.fullmatch(claim)
    if m is None:
        raise ValueError(f"not a claim name: {claim!r}")
    return m.group(1), m.group(2), m.group(3)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part")
    with temp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def _move(src: Path, dst: Path) -> None:
    """Rename (a link is moved, not followed); across file systems, copy with its
    modification time (its ``recorded_at``) then delete."""
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        seen = os.lstat(src)
        data = read_regular_file(src, 1 << 40)
        temp = dst.with_name(f".{dst.name}.part")
        temp.write_bytes(data)
        os.utime(temp, ns=(seen.st_atime_ns, seen.st_mtime_ns))
        os.replace(temp, dst)
        src.unlink()


__all__ = ["CHANNEL", "EmployerFilesSource", "event_of", "events_of", "load_roster"]
