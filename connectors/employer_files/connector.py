"""Source connector for the managing units of government retirees (channel EMPLOYER_BATCH).

Each unit drops certification batches (CSV or XLSX, format in
:mod:`connectors.employer_files.batch` and docs/partners/employer-files.md) into its own
folder of the bureau's exchange share: ``drop/<unit id>/``. The folder is the unit's
identity (the share gives each unit write access to its folder only), so the unit id of
the certifications is the folder's name, never a column a unit could fill with another's.
Settings::

    drop            required: the root of the units' folders. Missing (share not mounted)
                    is PartnerUnavailable, retried; never "no files"
    units           required: the units given a folder, a list of unit ids or the path of
                    a file of them (one a line, read again when it changes). A file in any
                    other folder is claimed and refused whole (one dead letter saying so,
                    kept in refused/, no result file): never published
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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

from connectors.employer_files import batch as eb
from connectors.sdk import dropfolder as df
from connectors.sdk.base import Event, PartnerRecord, Position, SourceConnector
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from connectors.sdk.files import FileRefused
from lifecert.events import bounds, masking
from lifecert.events.time import SHANGHAI, isoformat_local

CHANNEL = "EMPLOYER_BATCH"
MAX_FILE_BYTES = 16 * 1024 * 1024


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
        self._roster = None if self.roster_file is None else df.ReloadedExport(
            self.roster_file, ("retiree_id", "managing_unit"), bounds.RETIREE_ID,
            bounds.AGENCY_ID)
        self.processing, self.done, self.refused = (archive / "processing", archive / "done",
                                                    archive / "refused")
        self.idle_interval = self._setting(settings, "scan_interval", float, 1.0)
        self.max_file_bytes = self._setting(settings, "max_file_bytes", int, MAX_FILE_BYTES)
        if self.idle_interval <= 0 or self.max_file_bytes < 1:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): scan_interval and "
                              f"max_file_bytes must be positive")
        try:
            self.units = df.Senders(self._setting(settings, "units", (list, str)), "units",
                                    f"connector {self.name!r} ({self.kind})")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        try:
            import openpyxl  # type: ignore[import-untyped]  # noqa: F401
        except ImportError:
            raise ConfigError(f"connector {self.name!r} ({self.kind}) reads XLSX with openpyxl, "
                              f"which is not installed: pip install 'lifecert[files]'") from None
        self.folders = df.SenderFolders(self.drop, "unit", self.units, self.log)
        self.claims = df.ContentClaims(self.folders, self.processing,
                                       (self.done, self.refused), self.refused,
                                       self.max_file_bytes, _count_rows)
        self._claimed: Claimed | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def _open(self) -> None:
        df.require_folder(self.drop, "drop folder")
        df.make_folders(self.outbox, self.processing, self.done, self.refused)

    def _close(self) -> None:
        self._claimed = None

    def _check(self) -> list[str]:
        problems = [f"{self.name}: {p}" for p in self.units.check()]
        if not self.drop.is_dir():
            problems.append(f"{self.name}: drop {self.drop} is not a folder (share not "
                            f"mounted?); mount the units' share or fix `drop`")
        if self.roster_file is not None and not self.roster_file.is_file():
            problems.append(f"{self.name}: roster {self.roster_file} is not there; export it "
                            f"from the pension master or remove `roster`")
        return problems

    # -- reading -----------------------------------------------------------------------------
    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        df.require_folder(self.drop, "drop folder")
        while True:
            claim = self.claims.current() or self.claims.claim_next(self._duplicate)
            if claim is None:
                return []
            claimed = self._load(claim)
            rows = claimed.batch.rows if claimed.batch is not None else None
            records = df.claimed_records(claim, rows, position, max_records, _row_raw,
                                         partial(self._refused, claimed))
            if records is None:
                self._finish(claimed)
                continue
            return records

    def _refused(self, claimed: Claimed) -> tuple[Refusal, bytes]:
        return Refusal(self._refusal_reason(claimed)), claimed.raw

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
        df.require_folder(self.drop, "drop folder")
        claim = self.claims.current()
        claimed = self._load(claim) if claim is not None else None
        rows = claimed.batch.rows if claimed is not None and claimed.batch is not None \
            else None
        waiting = df.rows_left(claim, rows, position)
        return waiting + self.claims.waiting()

    # -- rows ----------------------------------------------------------------------------------
    def _judge(self, claimed: Claimed) -> None:
        """Every row's verdict, decided once per load from the file alone (deterministic:
        the result file made at the end agrees with what was published, over any number
        of runs)."""
        assert claimed.batch is not None
        seen: dict[str, int] = {}
        roster = self._roster.get() if self._roster is not None else None
        for row in claimed.batch.rows:
            try:
                claimed.verdicts[row.number] = eb.check_row(row, claimed.unit, claimed.arrived,
                                                            roster, seen,
                                                            claimed.batch.contact)
            except eb.RowRefused as exc:
                claimed.verdicts[row.number] = exc

    # -- files -----------------------------------------------------------------------------
    def _duplicate(self, claim: str, earlier: str, k: int) -> None:
        """The same content again: a result file says so; nothing is published."""
        unit, _, name = df.claim_parts(claim)
        if self.folders.refusal(unit) is not None:
            return  # no answer into the folder of a unit not configured
        reason = (f"the same file (same content, SHA-256) was already received as "
                  f"{earlier}; it was not read again and has no effect")
        df.write_atomically(self._result_path(unit, name, claim, f".dup{k}"),
                            eb.encode_result(name, [], refused=reason))

    def _load(self, claim: str) -> Claimed:
        if self._claimed is not None and self._claimed.claim == claim:
            return self._claimed
        unit, _digest, name = df.claim_parts(claim)
        try:
            recorded, data = self.claims.read(claim)
        except FileRefused as exc:
            size = " (setting max_file_bytes)" if exc.oversize else ""
            return self._keep(Claimed(claim, unit, name, datetime.now(UTC), None,
                                      f"the file {exc.reason}{size}"))
        stranger = self.folders.refusal(unit)
        if stranger is not None:
            return self._keep(Claimed(claim, unit, name, recorded, None, stranger))
        raw = masking.mask_bytes(data)
        if name == df.UNNAMED or not df.SAFE_NAME.fullmatch(name):
            return self._keep(Claimed(claim, unit, name, recorded, None,
                                      "the file name holds ~, control characters or more "
                                      "than 120 characters: rename the file", raw))
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
        digest = df.claim_parts(claim)[1]
        tag = digest[:12] if not digest.startswith("unread-") else digest
        return self.outbox / unit / f"{name}.{tag}{extra}.result.csv"

    def _refusal_reason(self, claimed: Claimed) -> str:
        answer = "no result file (not a unit configured)" \
            if self.folders.refusal(claimed.unit) is not None else \
            f"Result file {self._result_path(claimed.unit, claimed.name, claimed.claim)}"
        return (f"batch {bounds.show(claimed.name)} of unit {claimed.unit} refused as a whole, "
                f"none of its rows used: {claimed.refusal}. {answer}")

    def _finish(self, claimed: Claimed) -> None:
        if claimed.batch is None:
            result = eb.encode_result(claimed.name, [], refused=claimed.refusal)
            target = self.refused
        else:
            result = eb.encode_result(claimed.name, [
                eb.result_line(row, claimed.verdicts[row.number]) for row in claimed.batch.rows])
            target = self.done
        try:
            if self.folders.refusal(claimed.unit) is None:
                df.write_atomically(self._result_path(claimed.unit, claimed.name,
                                                      claimed.claim), result)
            os.replace(self.processing / claimed.claim, target / claimed.claim)
        except OSError as exc:
            raise PartnerUnavailable(f"cannot finish {claimed.claim}: {exc.filename}: "
                                     f"{exc.strerror}") from exc
        self._claimed = None
        self.log.info("batch %s of unit %s finished: %s/", bounds.show(claimed.name),
                      claimed.unit, target.name)


def _row_raw(row: eb.Row) -> bytes:
    return row.raw


def _count_rows(name: str, data: bytes) -> int:
    try:
        return len(eb.read_batch(name, data).rows)
    except eb.BatchRefused:
        return 1


def load_roster(data: bytes) -> dict[str, str]:
    """retiree id -> managing unit, from the roster CSV; ValueError naming the line."""
    return df.load_pairs(data, ("retiree_id", "managing_unit"), bounds.RETIREE_ID,
                         bounds.AGENCY_ID)


__all__ = ["CHANNEL", "EmployerFilesSource", "event_of", "events_of", "load_roster"]
