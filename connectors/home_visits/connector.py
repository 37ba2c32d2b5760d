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
    teams           required: the teams given a folder and the district of each, a table
                    ``HV-SHUNDE = "SHUNDE"`` or the path of a file of ``team,district``
                    lines (read again when it changes). A file in any other folder is
                    claimed and refused whole (one dead letter saying so): never published
    roster          required: CSV ``retiree_id,district`` (UTF-8, header line), the
                    bureau's export of its retirees' districts from the pension master
                    (read again when it changes). A row of a retiree who is not of the
                    team's district (or not in it) is refused with its reason
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

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, get_args

from connectors.death_registers import review
from connectors.home_visits import batch as hb
from connectors.sdk import dropfolder as df
from connectors.sdk.base import Event, PartnerRecord, Position, SourceConnector
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from connectors.sdk.files import FileRefused
from lifecert.events import bounds
from lifecert.events.time import SHANGHAI, isoformat_local
from lifecert.events.types import District

CHANNEL = "HOME_VISIT"
MAX_FILE_BYTES = 16 * 1024 * 1024
DISTRICT = re.compile("|".join(get_args(District)))


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


@dataclass(frozen=True, slots=True)
class Dismissal:
    """Staff dismissed the death a team reported (an entry of the review queue's
    ``dismissed/``)."""

    review_id: str
    retiree_id: str
    team_id: str
    visit_id: str
    decided_at: str

    def event(self) -> Event:
        event: Event = {"type": "HomeVisitDeathDismissed", "retiree_id": self.retiree_id,
                        "team_id": self.team_id, "visit_id": self.visit_id,
                        "review_id": self.review_id}
        if self.decided_at:
            event["recorded_at"] = self.decided_at
        return event


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
    publishes = ("CertificationRecorded", "ContactDetailsUpdated", "HomeVisitReported",
                 "HomeVisitDeathDismissed")

    def _configure(self, settings: dict[str, Any]) -> None:
        self.drop = Path(self._setting(settings, "drop", str))
        self.review = Path(self._setting(settings, "review", str))
        archive = Path(self._setting(settings, "archive", str,
                                     str(self.drop.parent / "archive")))
        self.processing, self.done = archive / "processing", archive / "done"
        # one empty file per dismissal published (named by its review id)
        self.dismissals = archive / "dismissals-published"
        self.idle_interval = self._setting(settings, "scan_interval", float, 1.0)
        self.max_file_bytes = self._setting(settings, "max_file_bytes", int, MAX_FILE_BYTES)
        if self.idle_interval <= 0 or self.max_file_bytes < 1:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): scan_interval and "
                              f"max_file_bytes must be positive")
        where = f"connector {self.name!r} ({self.kind})"
        try:
            self.teams = df.Senders(self._setting(settings, "teams", (dict, str)), "teams",
                                    where, DISTRICT)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.roster_file = Path(self._setting(settings, "roster", str))
        self._roster = df.ReloadedExport(self.roster_file, ("retiree_id", "district"),
                                         bounds.RETIREE_ID, DISTRICT)
        self.folders = df.SenderFolders(self.drop, "team", self.teams, self.log)
        self.claims = df.ContentClaims(self.folders, self.processing, (self.done,),
                                       self.done, self.max_file_bytes, _count_rows)
        self._claimed: Claimed | None = None

    def _open(self) -> None:
        df.require_folder(self.drop, "drop folder")
        df.make_folders(self.processing, self.done, self.dismissals, self.review / "pending")

    def _close(self) -> None:
        self._claimed = None

    def _check(self) -> list[str]:
        problems = [f"{self.name}: {p}" for p in self.teams.check()]
        if not self.drop.is_dir():
            problems.append(f"{self.name}: drop {self.drop} is not a folder (share not "
                            f"mounted?); mount the teams' share or fix `drop`")
        if not self.review.is_dir():
            problems.append(f"{self.name}: review {self.review} is not a folder; give the "
                            f"death-registers connector's review folder")
        if not self.roster_file.is_file():
            problems.append(f"{self.name}: roster {self.roster_file} is not there; export "
                            f"retiree_id,district from the pension master")
        return problems

    # -- reading -------------------------------------------------------------------------
    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        df.require_folder(self.drop, "drop folder")
        while True:
            claim = self.claims.current() or self.claims.claim_next(_no_answer)
            if claim is None:
                return self._dismissed()[:max_records]
            claimed = self._load(claim)
            records = df.claimed_records(claim, claimed.rows, position, max_records,
                                         hb.row_raw, partial(self._refused, claimed))
            if records is None:
                self._finish(claimed)
                continue
            return records

    def _refused(self, claimed: Claimed) -> tuple[Refusal, bytes]:
        return Refusal(self._refusal(claimed)), b""

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        if isinstance(record.data, Refusal):
            raise RecordRejected(record.data.reason)
        if isinstance(record.data, Dismissal):
            return [record.data.event()]
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
        for record in records:
            if isinstance(record.data, Dismissal):
                try:
                    (self.dismissals / record.data.review_id).touch()
                except OSError as exc:
                    raise PartnerUnavailable(f"cannot write {self.dismissals}: "
                                             f"{exc.strerror}") from exc
        claim = position.get("file")
        if claim is None or not (self.processing / claim).exists():
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
        df.require_folder(self.drop, "drop folder")
        claim = self.claims.current()
        rows = self._load(claim).rows if claim is not None else None
        waiting = df.rows_left(claim, rows, position)
        return waiting + self.claims.waiting() + len(self._dismissed())

    def _dismissed(self) -> list[PartnerRecord]:
        """The dismissals of deaths teams reported not published yet, as records (staff
        decide in the death review queue: ``lifecert review deaths dismiss``)."""
        try:
            entries = review.home_visit_dismissals(self.review)
            done = set(os.listdir(self.dismissals)) if self.dismissals.is_dir() else set()
        except (OSError, ValueError) as exc:
            raise PartnerUnavailable(f"cannot read the review queue {self.review}: "
                                     f"{exc}") from exc
        out = []
        for e in entries:
            if e["review_id"] in done:
                continue
            dismissal = Dismissal(e["review_id"], e["candidates"][0], e["team_id"],
                                  e["visit_id"], str(e.get("decided_at", "")))
            out.append(PartnerRecord(key=f"dismissed:{dismissal.review_id}",
                                     position={"dismissed": dismissal.review_id},
                                     raw=b"", data=dismissal))
        return out

    def _load(self, claim: str) -> Claimed:
        if self._claimed is not None and self._claimed.claim == claim:
            return self._claimed
        team, _digest, name = df.claim_parts(claim)
        try:
            recorded, data = self.claims.read(claim)
        except FileRefused as exc:
            size = " (setting max_file_bytes)" if exc.oversize else ""
            claimed = Claimed(claim, team, name, datetime.now(UTC), None,
                              f"the file {exc.reason}{size}")
        else:
            claimed = self._read(claim, team, name, recorded, data)
        self._claimed = claimed
        return claimed

    def _read(self, claim: str, team: str, name: str, recorded: datetime,
              data: bytes) -> Claimed:
        stranger = self.folders.refusal(team)
        if stranger is not None:
            return Claimed(claim, team, name, recorded, None, stranger)
        if name == df.UNNAMED:
            return Claimed(claim, team, name, recorded, None,
                           "the file name holds ~, control characters or more than 120 "
                           "characters: rename the file")
        try:
            claimed = Claimed(claim, team, name, recorded, hb.read_batch(data))
        except hb.BatchRefused as exc:
            return Claimed(claim, team, name, recorded, None, exc.reason)
        seen: dict[str, int] = {}
        district = self.teams.get()[team]
        roster = self._roster.get()
        assert claimed.rows is not None
        for row in claimed.rows:
            try:
                report = hb.check_row(row, claimed.arrived, seen)
                hb.check_district(report, row.number, team, district, roster)
                claimed.verdicts[row.number] = report
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


def _count_rows(name: str, data: bytes) -> int:
    try:
        return len(hb.read_batch(data))
    except hb.BatchRefused:
        return 1


def _no_answer(claim: str, earlier: str, k: int) -> None:
    """Teams get no result file: a duplicate is only set aside."""


__all__ = ["CHANNEL", "HomeVisitsSource", "events_of"]
