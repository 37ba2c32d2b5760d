"""Source connector for the district home-visit teams (channel HOME_VISIT).

The worker's HomeVisitDue tasks are assigned to the team of the retiree's district (the
read model ``home_visit_tasks``, projections migration 0011). Each team drops its results
files (CSV, format in :mod:`connectors.home_visits.batch` and docs/partners/home-visits.md)
into its own folder of the bureau's exchange share, ``drop/<team id>/``: the folder is the
team's identity (its agency id), never a column. Settings::

    drop            required: the root of the teams' folders. Missing (share not mounted)
                    is PartnerUnavailable, retried
    review          required: the death-registers connector's review folder (its
                    ``review`` setting): a DECEASED visit waits there for staff
                    (``lifecert review deaths``), never a DeathRecorded on its own
    archive         ours (default: ``archive`` beside ``drop``): processing/, done/
    scan_interval   seconds between scans of an empty drop (default 1)
    max_file_bytes  the largest file read (default 16 MiB); a larger one is refused whole

A row ALIVE becomes a HOME_VISIT CertificationRecorded (agency: the team, certification
id: the visit id), plus a ContactDetailsUpdated when the team wrote a phone or an address
(sealed on the topic by the runner; never logged); every valid row becomes a
HomeVisitReported on lifecert.home-visit-reports (the read model's outcome). A file is
claimed (renamed into processing/ as ``<team>~<sha256>~<name>``) in order of arrival; its
``recorded_at`` is its modification time, so a re-read after a crash publishes the same
events. The same content delivered again by the same team (its SHA-256 in done/) has no
effect: it is moved to done/ as ``...~dup<k>`` and nothing is published. A file refused
whole is one dead letter with the reason; a refused row is one dead letter (phone and
address masked) and the other rows flow on.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from connectors.death_registers import review
from connectors.home_visits import batch as hb
from connectors.sdk.base import Event, PartnerRecord, Position, SourceConnector
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from connectors.sdk.files import FileRefused, read_regular_file
from lifecert.events import bounds
from lifecert.events.time import SHANGHAI, isoformat_local

CHANNEL = "HOME_VISIT"
MAX_FILE_BYTES = 16 * 1024 * 1024
_CLAIM_RE = re.compile(r"([0-9A-Za-z][0-9A-Za-z._-]{0,63})~([0-9a-f]{64}|unread-[0-9]+)~(.+)")
_SAFE_NAME = re.compile(r"[^~\x00-\x1f\x7f/\\]{1,120}")


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


@dataclass(slots=True)
class Claimed:
    claim: str
    team: str
    name: str
    recorded_at: datetime
    rows: tuple[hb.Row, ...] | None
    refusal: str | None = None
    verdicts: dict[int, hb.Report | hb.RowRefused] = field(default_factory=dict)

    @property
    def arrived(self) -> date:
        return self.recorded_at.astimezone(SHANGHAI).date()


def events_of(team: str, recorded_at: datetime, report: hb.Report) -> list[Event]:
    """The events of one valid row (the DECEASED row's review entry is written apart)."""
    at = isoformat_local(recorded_at)
    out: list[Event] = []
    if report.outcome == "ALIVE":
        performed = datetime.combine(report.visited_on, datetime.min.time(), tzinfo=SHANGHAI)
        out.append({"type": "CertificationRecorded", "recorded_at": at,
                    "certification_id": report.visit_id, "retiree_id": report.retiree_id,
                    "channel": CHANNEL, "agency_id": team,
                    "performed_at": performed.isoformat()})
        if report.phone or report.address:
            out.append({"type": "ContactDetailsUpdated", "recorded_at": at,
                        "retiree_id": report.retiree_id, "phone": report.phone,
                        "address": report.address, "channel": CHANNEL, "agency_id": team})
    out.append({"type": "HomeVisitReported", "recorded_at": at,
                "retiree_id": report.retiree_id, "team_id": team,
                "visit_id": report.visit_id, "visited_on": report.visited_on.isoformat(),
                "outcome": report.outcome})
    return out


class HomeVisitsSource(SourceConnector):
    kind = "home-visits"
    description = ("District home-visit teams: results files (alive, not found, deceased) "
                   "in a drop folder per team")
    source_agency = "FS-SIB-HOME-VISITS"
    publishes = ("CertificationRecorded", "ContactDetailsUpdated", "HomeVisitReported")

    def _configure(self, settings: dict[str, Any]) -> None:
        self.drop = Path(self._setting(settings, "drop", str))
        self.review = Path(self._setting(settings, "review", str))
        archive = Path(self._setting(settings, "archive", str,
                                     str(self.drop.parent / "archive")))
        self.processing, self.done = archive / "processing", archive / "done"
        self.idle_interval = self._setting(settings, "scan_interval", float, 1.0)
        self.max_file_bytes = self._setting(settings, "max_file_bytes", int, MAX_FILE_BYTES)
        if self.idle_interval <= 0 or self.max_file_bytes < 1:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): scan_interval and "
                              f"max_file_bytes must be positive")
        self._claimed: Claimed | None = None
        self._ignored: set[str] = set()
        # (path, size, mtime_ns) -> (sha256 or None, records): a waiting file's count,
        # remembered while it does not change (lag is asked at every idle poll)
        self._counted: dict[tuple[str, int, int], tuple[str | None, int]] = {}

    def _open(self) -> None:
        self._require_drop()
        try:
            for folder in (self.processing, self.done, self.review / "pending"):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PartnerUnavailable(f"cannot create {exc.filename}: {exc.strerror}") from exc

    def _close(self) -> None:
        self._claimed = None

    def _check(self) -> list[str]:
        problems = []
        if not self.drop.is_dir():
            problems.append(f"{self.name}: drop {self.drop} is not a folder (share not "
                            f"mounted?); mount the teams' share or fix `drop`")
        if not self.review.is_dir():
            problems.append(f"{self.name}: review {self.review} is not a folder; give the "
                            f"death-registers connector's review folder")
        return problems

    def _require_drop(self) -> None:
        if not self.drop.is_dir():
            raise PartnerUnavailable(f"drop folder {self.drop} is missing (teams' share not "
                                     f"mounted?); waiting for it to come back")

    # -- reading -------------------------------------------------------------------------
    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        self._require_drop()
        while True:
            claim = self._current() or self._claim_next()
            if claim is None:
                return []
            claimed = self._load(claim)
            mine: dict[str, Any] = position if isinstance(position, dict) and \
                position.get("file") == claim else {}
            if claimed.rows is None:
                if mine.get("refused"):
                    self._finish(claimed)
                    continue
                return [PartnerRecord(key=claim, position={"file": claim, "refused": True},
                                      raw=b"", data=Refusal(self._refusal(claimed)))]
            after = int(mine.get("row", 1))
            rows = [r for r in claimed.rows if r.number > after][:max_records]
            if not rows:
                self._finish(claimed)
                continue
            return [PartnerRecord(key=f"{claim}:{row.number}",
                                  position={"file": claim, "row": row.number},
                                  raw=hb.row_raw(row), data=row) for row in rows]

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        if isinstance(record.data, Refusal):
            raise RecordRejected(record.data.reason)
        claimed = self._load(record.position["file"])
        if claimed.rows is None:
            raise RecordRejected(f"{claimed.name} (team {claimed.team}) changed while it was "
                                 f"being read: {claimed.refusal}")
        outcome = claimed.verdicts[record.data.number]
        if isinstance(outcome, hb.RowRefused):
            raise RecordRejected(f"{bounds.show(claimed.name)} (team {claimed.team}) "
                                 f"{outcome.reason}")
        if outcome.outcome == "DECEASED":
            assert outcome.date_of_death is not None
            try:
                rid, written = review.write_home_visit(
                    self.review, claimed.team, outcome.visit_id, outcome.retiree_id,
                    outcome.date_of_death, claimed.recorded_at)
            except OSError as exc:
                raise PartnerUnavailable(f"cannot write to the review queue {self.review}: "
                                         f"{exc.strerror}") from exc
            if written is not None:
                self.log.info("team %s: visit %s reported a death; review %s waits for "
                              "staff (lifecert review deaths)", claimed.team,
                              outcome.visit_id, rid)
        return events_of(claimed.team, claimed.recorded_at, outcome)

    def _committed(self, records: Sequence[PartnerRecord],
                   rejected: Sequence[tuple[PartnerRecord, str]], position: Position) -> None:
        claim = position["file"]
        if not (self.processing / claim).exists():
            return
        claimed = self._load(claim)
        last = claimed.rows[-1].number if claimed.rows else 1
        if position.get("refused") or position.get("row") == last:
            self._finish(claimed)

    # -- files ---------------------------------------------------------------------------
    def _lag(self, position: Position | None) -> int | None:
        """The records :meth:`_poll` will still return after ``position``: the rows left in
        the claimed file, then every row of the files waiting in the teams' folders (one
        record for a file refused whole, none for a file received before)."""
        self._require_drop()
        waiting = 0
        claim = self._current()
        if claim is not None:
            claimed = self._load(claim)
            mine = position if isinstance(position, dict) and position.get("file") == claim \
                else {}
            if claimed.rows is None:
                waiting += 0 if mine.get("refused") else 1
            else:
                after = int(mine.get("row", 1))
                waiting += sum(1 for row in claimed.rows if row.number > after)
        seen: set[tuple[str, str]] = set()
        arrivals = self._arrivals()
        done = os.listdir(self.done) if arrivals else []
        for _mtime, team, name in arrivals:
            digest, records = self._waiting_records(self.drop / team / name)
            if digest is not None:
                if (team, digest) in seen or any(n.startswith(f"{team}~{digest}~")
                                                 for n in done):
                    continue  # a duplicate: set aside, no record
                seen.add((team, digest))
            waiting += records
        live = {str(self.drop / team / name) for _m, team, name in arrivals}
        self._counted = {k: v for k, v in self._counted.items() if k[0] in live}
        return waiting

    def _waiting_records(self, path: Path) -> tuple[str | None, int]:
        """(SHA-256 or None when unreadable, records it will be) of a waiting file."""
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
                    records = len(hb.read_batch(data))
                except hb.BatchRefused:
                    records = 1
            self._counted[stamp] = (digest, records)
        return self._counted[stamp]

    def _arrivals(self) -> list[tuple[int, str, str]]:
        """(mtime_ns, team, name) of every file waiting in a team's folder."""
        try:
            entries = list(os.scandir(self.drop))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot list {self.drop}: {exc.strerror}") from exc
        waiting = []
        for e in entries:
            if not (e.is_dir(follow_symlinks=False) and bounds.AGENCY_ID.fullmatch(e.name)):
                if e.name[:1] != "." and e.name not in self._ignored:
                    self._ignored.add(e.name)
                    self.log.warning("drop %s: ignoring %s: not a team's folder (a folder "
                                     "named by the team id)", self.drop, bounds.show(e.name))
                continue
            try:
                for f in os.scandir(e.path):
                    if f.name.startswith((".", "~$")) or f.is_dir(follow_symlinks=False):
                        continue  # an upload in progress, a lock file, a sub-folder
                    waiting.append((f.stat(follow_symlinks=False).st_mtime_ns, e.name, f.name))
            except OSError as exc:
                raise PartnerUnavailable(f"cannot list {e.path}: {exc.strerror}") from exc
        return sorted(waiting)

    def _current(self) -> str | None:
        try:
            names = sorted(n for n in os.listdir(self.processing) if _CLAIM_RE.fullmatch(n))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot list {self.processing}: {exc.strerror}") \
                from exc
        return names[0] if names else None

    def _claim_next(self) -> str | None:
        for mtime, team, name in self._arrivals():
            source = self.drop / team / name
            try:
                digest = hashlib.sha256(read_regular_file(source, self.max_file_bytes)) \
                    .hexdigest()
            except FileRefused:
                digest = f"unread-{mtime}"
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise PartnerUnavailable(f"cannot read {source}: {exc.strerror}") from exc
            safe = name if _SAFE_NAME.fullmatch(name) else "unnamed"
            claim = f"{team}~{digest}~{safe}"
            try:
                if not digest.startswith("unread-") and any(
                        n.startswith(f"{team}~{digest}~") for n in os.listdir(self.done)):
                    k = 1 + sum(1 for n in os.listdir(self.done) if n.startswith(claim))
                    _move(source, self.done / f"{claim}~dup{k}")
                    self.log.info("team %s delivered %s again (same content): no effect",
                                  team, bounds.show(name))
                    continue
                _move(source, self.processing / claim)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise PartnerUnavailable(f"cannot claim {source}: {exc.strerror}") from exc
            self.log.info("claimed %s of team %s", bounds.show(name), team)
            return claim
        return None

    def _load(self, claim: str) -> Claimed:
        if self._claimed is not None and self._claimed.claim == claim:
            return self._claimed
        m = _CLAIM_RE.fullmatch(claim)
        if m is None:
            raise ValueError(f"not a claim name: {claim!r}")
        team, name = m.group(1), m.group(3)
        path = self.processing / claim
        try:
            mtime = os.lstat(path).st_mtime_ns
            recorded = min(datetime.fromtimestamp(mtime / 1e9, UTC).replace(microsecond=0),
                           datetime.now(UTC))
            data = read_regular_file(path, self.max_file_bytes)
        except FileRefused as exc:
            size = " (setting max_file_bytes)" if exc.oversize else ""
            claimed = Claimed(claim, team, name, datetime.now(UTC), None,
                              f"the file {exc.reason}{size}")
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {path}: {exc.strerror}") from exc
        else:
            claimed = self._read(claim, team, name, recorded, data)
        self._claimed = claimed
        return claimed

    def _read(self, claim: str, team: str, name: str, recorded: datetime,
              data: bytes) -> Claimed:
        if name == "unnamed":
            return Claimed(claim, team, name, recorded, None,
                           "the file name holds ~, control characters or more than 120 "
                           "characters: rename the file")
        try:
            claimed = Claimed(claim, team, name, recorded, hb.read_batch(data))
        except hb.BatchRefused as exc:
            return Claimed(claim, team, name, recorded, None, exc.reason)
        seen: dict[str, int] = {}
        assert claimed.rows is not None
        for row in claimed.rows:
            try:
                claimed.verdicts[row.number] = hb.check_row(row, claimed.arrived, seen)
            except hb.RowRefused as exc:
                claimed.verdicts[row.number] = exc
        return claimed

    def _refusal(self, claimed: Claimed) -> str:
        return (f"results file {bounds.show(claimed.name)} of team {claimed.team} refused as "
                f"a whole, none of its rows used: {claimed.refusal}")

    def _finish(self, claimed: Claimed) -> None:
        try:
            os.replace(self.processing / claimed.claim, self.done / claimed.claim)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PartnerUnavailable(f"cannot finish {claimed.claim}: {exc.strerror}") \
                from exc
        self._claimed = None
        self.log.info("results file %s of team %s done", bounds.show(claimed.name),
                      claimed.team)


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


__all__ = ["CHANNEL", "HomeVisitsSource", "events_of"]
