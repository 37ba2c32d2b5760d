"""Named batches in one inbox folder: the machinery of the ministry's and the Hong Kong
bodies' connectors (and of any partner that sends ``<PREFIX>_<batch id>.csv`` batches with
a header, records and a ``#END`` trailer, and gets a receipt per batch).

A subclass names its batch format (``fmt``: a module with ``batch_id_of``, ``read_batch``,
``BatchRefused``, ``parse_line``, ``LineRejected``, ``encode_receipt``, ``receipt_name``,
``ReceiptLine``, ``ACCEPTED``, ``REJECTED``, ``ENCODING`` and ``show_name``), its channel,
and whether a byte-for-byte second delivery is a duplicate (``duplicates_by_content``: a
DUPLICATE receipt, no effect; ``fmt`` then has ``encode_duplicate_receipt``) or, like any
other file under a used name, a re-drop refused as a whole. Settings::

    inbox               required: the drop folder; missing = PartnerUnavailable, retried
    receipts            our answer per batch (default: ``receipts`` beside the inbox)
    archive             ours (default: ``archive`` beside the inbox): processing/, done/,
                        refused/ (the memory of names received: never empty them)
    scan_interval       seconds between scans of an empty inbox (default 1)
    max_file_bytes      the largest batch file read (default ``default_max_file_bytes``)

The claim, the move and the answers are :mod:`connectors.sdk.dropfolder`'s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from connectors.sdk import dropfolder as df
from connectors.sdk.base import Event, PartnerRecord, Position, SourceConnector
from connectors.sdk.errors import ConfigError, PartnerUnavailable, RecordRejected
from connectors.sdk.files import FileRefused, check_regular, read_regular_file
from lifecert.events import bounds, masking
from lifecert.events.interchange import MalformedEvent, parse_event


@dataclass(frozen=True, slots=True)
class Refusal:
    """A batch refused as a whole (the data of its single PartnerRecord)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """The batch in processing/, read and checked once."""

    claim: str  # its name in processing/ (the batch file name, or a re-drop name)
    batch_id: str
    data: bytes
    batch: Any  # the format's Batch; None when refused
    refusal: str | None = None
    claimed_count: int | None = None

    @property
    def last_line(self) -> int:
        return self.batch.last_line if self.batch is not None else 1


def map_line(fmt: ModuleType, channel: str, line: Any) -> Event:
    """The event of one record line of format ``fmt``. Raises RecordRejected naming the
    line and field."""
    try:
        row = fmt.parse_line(line)
    except fmt.LineRejected as exc:
        raise RecordRejected(exc.reason) from None
    event: Event = {
        "type": "CertificationRecorded",
        "recorded_at": row.reported_at,
        "certification_id": row.certification_id,
        "retiree_id": row.retiree_id,
        "channel": channel,
        "agency_id": row.agency_id,
        "performed_at": row.performed_at,
    }
    try:  # the runner's own schema check, done here too so that receipts agree with it
        parse_event(dict(event))
    except MalformedEvent as exc:
        raise RecordRejected(f"line {line.number}: {exc.describe()}") from None
    return event


class NamedBatchInbox(SourceConnector):
    """A source of named batches dropped into one inbox folder (see the module)."""

    fmt: ClassVar[ModuleType]
    channel: ClassVar[str]
    name_hint: ClassVar[str]  # the batch file name, for the log: "HKASSIST_<batch id>.csv"
    sender: ClassVar[str]  # who sends again: "the ministry"
    # ``<stem>.redrop-<k>.csv``: a file under a name already received, claimed as such
    redrop_re: ClassVar[re.Pattern[str]]
    duplicates_by_content: ClassVar[bool] = False
    hong_kong_ids: ClassVar[bool] = False  # also mask Hong Kong identity card numbers
    default_max_file_bytes: ClassVar[int] = 32 * 1024 * 1024

    def _masked(self, raw: bytes) -> bytes:
        """What a dead letter keeps of a partner's bytes: citizen id numbers masked."""
        return masking.mask_bytes(raw, self.fmt.ENCODING, hong_kong=self.hong_kong_ids)

    def map_line(self, line: Any) -> Event:
        return map_line(self.fmt, self.channel, line)

    def _receipt_line(self, line: Any) -> Any:
        try:
            event = self.map_line(line)
        except RecordRejected as exc:
            first = line.raw.split(b",", 1)[0].decode(self.fmt.ENCODING, errors="replace")
            cert = first if bounds.CERTIFICATION_ID.fullmatch(first) else ""
            return self.fmt.ReceiptLine(line.number, cert, self.fmt.REJECTED, exc.reason)
        return self.fmt.ReceiptLine(line.number, event["certification_id"], self.fmt.ACCEPTED)

    def _configure(self, settings: dict[str, Any]) -> None:
        self.inbox = Path(self._setting(settings, "inbox", str))
        beside = self.inbox.parent
        self.receipts = Path(self._setting(settings, "receipts", str, str(beside / "receipts")))
        archive = Path(self._setting(settings, "archive", str, str(beside / "archive")))
        self.processing = archive / "processing"
        self.done = archive / "done"
        self.refused = archive / "refused"
        self.idle_interval = self._setting(settings, "scan_interval", float, 1.0)
        if self.idle_interval <= 0:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): scan_interval must be "
                              f"positive, got {self.idle_interval}")
        self.max_file_bytes = self._setting(settings, "max_file_bytes", int,
                                            self.default_max_file_bytes)
        if self.max_file_bytes < 1:
            raise ConfigError(f"connector {self.name!r} ({self.kind}): max_file_bytes must be "
                              f"positive, got {self.max_file_bytes}")
        self._claimed: Claimed | None = None
        self._ignored: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------
    def _open(self) -> None:
        self._require_inbox()
        df.make_folders(self.receipts, self.processing, self.done, self.refused)

    def _close(self) -> None:
        self._claimed = None

    def _check(self) -> list[str]:
        problems = []
        if not self.inbox.is_dir():
            problems.append(f"{self.name}: inbox {self.inbox} is not a folder (share not "
                            f"mounted?); mount the exchange share or fix `inbox`")
        for folder in (self.receipts, self.processing.parent):
            probe = folder
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            if not os.access(probe, os.W_OK):
                problems.append(f"{self.name}: cannot write {folder} (nearest existing folder "
                                f"{probe} is not writable); fix the permissions or the setting")
        return problems

    # -- reading --------------------------------------------------------------------------
    def _poll(self, position: Position | None, max_records: int) -> Sequence[PartnerRecord]:
        self._require_inbox()
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
                reason = self._refusal_reason(claimed)
                return [PartnerRecord(key=claim, position={"file": claim, "refused": True},
                                      raw=self._masked(claimed.data),
                                      data=Refusal(reason))]
            after = int(mine.get("line", 1))
            # Record lines are numbered 2, 3, ...: the one after line `after` is at index
            # after - 1.
            lines = claimed.batch.records[max(0, after - 1):][:max_records]
            if not lines:
                self._finish(claimed)
                continue
            return [PartnerRecord(key=f"{claim}:{line.number}",
                                  position={"file": claim, "line": line.number},
                                  raw=self._masked(line.raw), data=line)
                    for line in lines]

    def _to_events(self, record: PartnerRecord) -> list[Event]:
        if isinstance(record.data, Refusal):
            raise RecordRejected(record.data.reason)
        return [self.map_line(record.data)]

    def _committed(
        self,
        records: Sequence[PartnerRecord],
        rejected: Sequence[tuple[PartnerRecord, str]],
        position: Position,
    ) -> None:
        claim = position["file"]
        if not (self.processing / claim).exists():
            return  # already finished (a second call after a crash)
        claimed = self._load(claim)
        if position.get("refused") or position.get("line") == claimed.last_line:
            self._finish(claimed)

    def _lag(self, position: Position | None) -> int | None:
        waiting = 0
        claimed = self._claimed
        if claimed is not None and claimed.batch is not None:
            done = position.get("line", 1) if isinstance(position, dict) and \
                position.get("file") == claimed.claim else 1
            waiting += max(0, claimed.last_line - done)
        for name in self._batch_names():
            waiting += trailer_count(self.inbox / name)
        return waiting

    # -- folders --------------------------------------------------------------------------
    def _require_inbox(self) -> None:
        df.require_folder(self.inbox, "inbox")

    def _batch_names(self) -> list[str]:
        """The batch files of the inbox, in name order: every entry whose name is a batch
        file name, whole, except folders (a link or a FIFO is claimed, then refused)."""
        try:
            # DirEntry.is_dir(follow_symlinks=False) looks at the entry, never its target.
            entries = [(e.name, e.is_dir(follow_symlinks=False))
                       for e in os.scandir(self.inbox)]
        except OSError as exc:
            raise PartnerUnavailable(f"cannot list inbox {self.inbox}: {exc.strerror}") \
                from exc
        batches = []
        for name, is_dir in entries:
            if not is_dir and self.fmt.batch_id_of(name) is not None:
                batches.append(name)
            elif name[:1] != "." and name not in self._ignored:
                self._ignored.add(name)
                what = "a folder" if is_dir else "not a batch file name"
                self.log.warning("inbox %s: ignoring %s, %s (%s)", self.inbox,
                                 self.fmt.show_name(name), what, self.name_hint)
        return sorted(batches)

    def _current(self) -> str | None:
        return df.current_claim(self.processing, lambda n: self.fmt.batch_id_of(n) is not None
                                or self.redrop_re.fullmatch(n))

    def _claim_next(self) -> str | None:
        while True:
            names = self._batch_names()
            if not names:
                return None
            name = names[0]
            claim = name
            if (self.done / name).exists() or (self.refused / name).exists():
                stem = name.removesuffix(".csv")
                used = [int(m.group(2)) for folder in (self.done, self.refused)
                        for n in os.listdir(folder)
                        if (m := self.redrop_re.fullmatch(n)) and m.group(1) == stem]
                claim = f"{stem}.redrop-{max(used, default=0) + 1}.csv"
                if self.duplicates_by_content and self._same_as_done(name):
                    self._duplicate(name, claim)
                    continue
            return self._claim(name, claim)

    def _same_as_done(self, name: str) -> bool:
        """Whether the inbox's ``name`` is byte for byte the batch done under that name."""
        try:
            first = read_regular_file(self.done / name, self.max_file_bytes)
            again = read_regular_file(self.inbox / name, self.max_file_bytes)
        except (FileRefused, OSError):
            return False  # claimed as a re-drop, then refused with the reason
        return first == again

    def _duplicate(self, name: str, claim: str) -> None:
        """A second delivery of a batch already done: a DUPLICATE receipt, no effect."""
        batch_id = self.fmt.batch_id_of(name) or ""
        receipt = self.fmt.encode_duplicate_receipt(batch_id, self.fmt.receipt_name(name))
        try:
            df.write_atomically(self.receipts / self.fmt.receipt_name(claim), receipt)
            os.replace(self.inbox / name, self.done / claim)
        except OSError as exc:
            raise PartnerUnavailable(f"cannot file duplicate {self.inbox / name}: "
                                     f"{exc.strerror}") from exc
        self.log.info("batch %s delivered again, byte for byte: no effect (%s)", name, claim)

    def _claim(self, name: str, claim: str) -> str | None:
        try:
            df.move(self.inbox / name, self.processing / claim, self.max_file_bytes)
        except FileNotFoundError:
            return None  # gone meanwhile (share unmounted): the next poll sees why
        except FileRefused as exc:  # cannot be moved across file systems (not copied)
            self._ignored.add(name)
            self.log.error("inbox %s: cannot claim %s: it %s, and the archive is on another "
                           "file system; remove it from the inbox", self.inbox,
                           self.fmt.show_name(name), exc.reason)
            return None
        except OSError as exc:
            raise PartnerUnavailable(f"cannot claim {self.inbox / name}: {exc.strerror}") \
                from exc
        self.log.info("claimed batch %s%s", name, "" if claim == name else f" as {claim}")
        return claim

    def _load(self, claim: str) -> Claimed:
        if self._claimed is not None and self._claimed.claim == claim:
            return self._claimed
        redrop = self.redrop_re.fullmatch(claim)
        try:
            data = read_regular_file(self.processing / claim, self.max_file_bytes)
        except FileRefused as exc:
            original = redrop.group(1) + ".csv" if redrop else claim
            setting = f" (setting max_file_bytes of connector {self.name})" \
                if exc.oversize else ""
            claimed = Claimed(claim, self.fmt.batch_id_of(original) or "", b"", None,
                              f"{claim} {exc.reason}{setting}")
            self._claimed = claimed
            return claimed
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {self.processing / claim}: {exc.strerror}") \
                from exc
        if redrop:
            original = redrop.group(1) + ".csv"
            where = "done" if (self.done / original).exists() else "refused"
            claimed = Claimed(claim, self.fmt.batch_id_of(original) or "", data, None,
                              f"batch name {original} was already received (the earlier file "
                              f"is in {where}/); a batch id is used once, so this file was "
                              f"not read")
        else:
            batch_id = self.fmt.batch_id_of(claim) or ""
            try:
                claimed = Claimed(claim, batch_id, data, self.fmt.read_batch(claim, data))
            except self.fmt.BatchRefused as exc:
                claimed = Claimed(claim, batch_id, data, None, exc.reason, exc.claimed_count)
        self._claimed = claimed
        return claimed

    def _refusal_reason(self, claimed: Claimed) -> str:
        return (f"batch refused as a whole, none of its lines published: {claimed.refusal}. "
                f"Kept as {self.refused / claimed.claim}, receipt "
                f"{self.receipts / self.fmt.receipt_name(claimed.claim)}; {self.sender} must "
                f"send the batch again under a new batch id")

    def _finish(self, claimed: Claimed) -> None:
        """Write the receipt, then move the batch to done/ or refused/ (idempotent)."""
        if claimed.batch is None:
            receipt = self.fmt.encode_receipt(claimed.batch_id, [], refused=claimed.refusal,
                                        claimed_count=claimed.claimed_count)
            target = self.refused
        else:
            receipt = self.fmt.encode_receipt(
                claimed.batch_id, [self._receipt_line(line) for line in claimed.batch.records])
            target = self.done
        try:
            df.write_atomically(self.receipts / self.fmt.receipt_name(claimed.claim), receipt)
            os.replace(self.processing / claimed.claim, target / claimed.claim)
        except OSError as exc:
            raise PartnerUnavailable(f"cannot finish batch {claimed.claim}: {exc.filename}: "
                                     f"{exc.strerror}") from exc
        self._claimed = None
        self.log.info("batch %s finished: %s/", claimed.claim, target.name)


def trailer_count(path: Path) -> int:
    """The record count a batch's trailer claims (0 when unreadable or not a regular
    file: lag is a hint)."""
    try:
        size = check_regular(path, 1 << 62).st_size
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            tail = os.pread(fd, 200, max(0, size - 200))
        finally:
            os.close(fd)
        last = tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].split(b",")
        return int(last[2]) if len(last) == 4 and last[0] == b"#END" else 0
    except (OSError, ValueError, FileRefused):
        return 0
