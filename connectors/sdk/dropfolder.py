"""Drop folders: the machinery every file connector shares (claim, move, duplicates).

Four connectors read files partners put on the bureau's exchange share: the ministry's and
the Hong Kong bodies' batches in one inbox (named batches), the employers' and the
home-visit teams' files in a folder per sender (``drop/<sender>/``, the folder is the
sender's identity). They all

- claim one file at a time by renaming it into ``processing/`` (:func:`move`: a link is
  moved, never followed; across file systems a regular file is copied with its
  modification time, anything else is refused);
- write their answers (receipts, result files) whole or not at all
  (:func:`write_atomically`);
- resume with the claim left in ``processing/`` after a crash (:func:`current_claim`).

Per-sender folders add (:class:`SenderFolders`): the allow-list of the senders configured
(a file from any other folder is claimed and refused whole, never published: a folder
anyone could create on the share says nothing about who wrote it), claims named
``<sender>~<sha256>~<name>`` (:class:`ContentClaims`) so that the same content delivered
again by the same sender is recognised and set aside, and the count of the records of the
files still waiting (the runner's lag).
"""

from __future__ import annotations

import csv
import errno
import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from connectors.sdk.base import PartnerRecord
from connectors.sdk.errors import PartnerUnavailable
from connectors.sdk.files import FileRefused, read_regular_file
from lifecert.events import bounds

# A file name we keep as part of a claim: no ~ (our separator), no control characters, no
# path separators, at most 120 characters; any other is claimed as "unnamed" and refused.
SAFE_NAME = re.compile(r"[^~\x00-\x1f\x7f/\\]{1,120}")
UNNAMED = "unnamed"
CLAIM_RE = re.compile(r"([0-9A-Za-z][0-9A-Za-z._-]{0,63})~([0-9a-f]{64}|unread-[0-9]+)~(.+)")
_DUP_RE = re.compile(r"(.+)~dup([0-9]+)")


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` into ``path`` whole or not at all (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.part")
    with temp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


def move(src: Path, dst: Path, max_bytes: int = 1 << 40) -> None:
    """Rename ``src`` (whatever it is: a link is moved, not followed); across file
    systems, copy a regular file (read as :func:`read_regular_file` reads it) with its
    modification time (a file's ``recorded_at``), then delete it; anything else raises
    :class:`FileRefused`."""
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        seen = os.lstat(src)
        data = read_regular_file(src, max_bytes)
        temp = dst.with_name(f".{dst.name}.part")
        temp.write_bytes(data)
        os.utime(temp, ns=(seen.st_atime_ns, seen.st_mtime_ns))
        os.replace(temp, dst)
        src.unlink()


def current_claim(processing: Path, is_claim: Callable[[str], object]) -> str | None:
    """The claim left in ``processing/`` (the first by name), or None."""
    try:
        names = sorted(n for n in os.listdir(processing) if is_claim(n))
    except OSError as exc:  # the archive was removed: _open makes it again on retry
        raise PartnerUnavailable(f"cannot list {processing}: {exc.strerror}") from exc
    return names[0] if names else None


def make_folders(*folders: Path) -> None:
    """Make the connector's own folders (answers, archive); PartnerUnavailable if not."""
    try:
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PartnerUnavailable(f"cannot create {exc.filename}: {exc.strerror}") from exc


def require_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise PartnerUnavailable(f"{what} {folder} is missing (share not mounted?); "
                                 f"waiting for it to come back")


def recorded_at_of(path: Path) -> datetime:
    """A claimed file's ``recorded_at``: its modification time (when the sender finished
    writing it), never in the future; the same on every read after a crash."""
    mtime = os.lstat(path).st_mtime_ns
    return min(datetime.fromtimestamp(mtime / 1e9, UTC).replace(microsecond=0),
               datetime.now(UTC))


# -- the senders configured -------------------------------------------------------------------
class Senders:
    """The allow-list of the senders of a per-sender drop folder: their ids, each with a
    value (a home-visit team's district) or ``""``.

    Configured inline (a list of ids, or a table id -> value) or as the path of a file the
    bureau keeps (one sender a line, ``id`` or ``id,value``; ``#`` starts a comment),
    read again when it changes, so that a sender added on the share is added here without
    a restart."""

    def __init__(self, setting: object, key: str, where: str,
                 value_re: re.Pattern[str] | None = None) -> None:
        self.key, self.where, self.value_re = key, where, value_re
        self.file: Path | None = None
        self._loaded: tuple[int, dict[str, str]] | None = None
        if isinstance(setting, str):
            self.file = Path(setting)
        elif isinstance(setting, list):
            self._fixed = self._checked({str(s): "" for s in setting}, setting)
        elif isinstance(setting, dict):
            self._fixed = self._checked({str(k): str(v) for k, v in setting.items()}, setting)
        else:
            raise ValueError(f"{where}: setting {key!r} must be a list of ids, a table of "
                             f"id = value, or the path of a file of them")

    def _checked(self, senders: dict[str, str], setting: object) -> dict[str, str]:
        for sender, value in senders.items():
            if not bounds.AGENCY_ID.fullmatch(sender):
                raise ValueError(f"{self.where}: setting {self.key!r}: {bounds.show(sender)} "
                                 f"is not an agency id (1-64 of 0-9 A-Z a-z . _ -)")
            if self.value_re is not None and not self.value_re.fullmatch(value):
                raise ValueError(f"{self.where}: setting {self.key!r}: the value of "
                                 f"{sender} ({bounds.show(value)}) must match "
                                 f"{self.value_re.pattern}")
        if not senders:
            raise ValueError(f"{self.where}: setting {self.key!r} names no sender: "
                             f"nothing would ever be read")
        return senders

    def check(self) -> list[str]:
        if self.file is not None and not self.file.is_file():
            return [f"{self.where}: {self.key} file {self.file} is not there"]
        return []

    def get(self) -> Mapping[str, str]:
        if self.file is None:
            return self._fixed
        try:
            stamp = self.file.stat().st_mtime_ns
            if self._loaded is None or self._loaded[0] != stamp:
                text = read_regular_file(self.file, 4 << 20).decode("utf-8-sig")
                self._loaded = (stamp, self._parse(text))
        except (OSError, FileRefused, UnicodeDecodeError) as exc:
            raise PartnerUnavailable(f"{self.where}: cannot read the {self.key} file "
                                     f"{self.file}: {exc}") from exc
        except ValueError as exc:
            raise PartnerUnavailable(f"{exc}; correct the file") from exc
        return self._loaded[1]

    def _parse(self, text: str) -> dict[str, str]:
        senders: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            sender, _, value = (p.strip() for p in line.partition(","))
            try:
                self._checked({sender: value}, None)
            except ValueError as exc:
                raise ValueError(f"{self.file} line {number}: {exc}") from None
            senders[sender] = value
        return self._checked(senders, None)


@dataclass(frozen=True, slots=True)
class Arrival:
    mtime_ns: int
    sender: str
    name: str


class SenderFolders:
    """``drop/<sender>/``: the files waiting in the senders' folders, oldest first.

    Every folder named like an agency id is read, configured or not: a file in the folder
    of a sender not configured is claimed like any other and refused whole by its
    connector (:meth:`refusal`), so that it is never published and never left lying on
    the share unseen."""

    def __init__(self, drop: Path, what: str, senders: Senders, log: logging.Logger) -> None:
        self.drop, self.what, self.senders, self.log = drop, what, senders, log
        self._ignored: set[str] = set()

    def refusal(self, sender: str) -> str | None:
        """Why a file from ``sender``'s folder is not read, or None when it may be."""
        if sender in self.senders.get():
            return None
        where = self.senders.file or "the connector's settings"
        return (f"the folder {sender} is not the folder of a {self.what} configured "
                f"(setting `{self.senders.key}`, {where}); the file was not read and nothing "
                f"of it is published. If {sender} is a new {self.what}, add it there and "
                f"let it send the file again")

    def arrivals(self) -> list[Arrival]:
        try:
            entries = list(os.scandir(self.drop))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot list {self.drop}: {exc.strerror}") from exc
        waiting = []
        for e in entries:
            if not (e.is_dir(follow_symlinks=False) and bounds.AGENCY_ID.fullmatch(e.name)):
                if e.name[:1] != "." and e.name not in self._ignored:
                    self._ignored.add(e.name)
                    self.log.warning("drop %s: ignoring %s: not a %s's folder (a folder "
                                     "named by the %s id)", self.drop, bounds.show(e.name),
                                     self.what, self.what)
                continue
            try:
                for f in os.scandir(e.path):
                    if f.name.startswith((".", "~$")) or f.is_dir(follow_symlinks=False):
                        continue  # an upload in progress, an Excel lock file, a sub-folder
                    waiting.append(Arrival(f.stat(follow_symlinks=False).st_mtime_ns,
                                           e.name, f.name))
            except OSError as exc:
                raise PartnerUnavailable(f"cannot list {e.path}: {exc.strerror}") from exc
        return sorted(waiting, key=lambda a: (a.mtime_ns, a.sender, a.name))


def claim_parts(claim: str) -> tuple[str, str, str]:
    """(sender, digest, name) of a claim name."""
    m = CLAIM_RE.fullmatch(claim)
    if m is None:
        raise ValueError(f"not a claim name: {claim!r}")
    return m.group(1), m.group(2), m.group(3)


class ContentClaims:
    """Claims by content: ``processing/<sender>~<sha256>~<name>``. The folders of
    ``memory`` keep every file received under its claim name; the same content from the
    same sender again is a duplicate, moved to ``dup_folder`` as ``<claim>~dup<k>``
    (``on_duplicate`` is told first, to answer the sender) and never read again."""

    def __init__(self, folders: SenderFolders, processing: Path, memory: tuple[Path, ...],
                 dup_folder: Path, max_file_bytes: int,
                 count: Callable[[str, bytes], int]) -> None:
        self.folders, self.processing, self.memory = folders, processing, memory
        self.dup_folder, self.max_file_bytes, self.count = dup_folder, max_file_bytes, count
        # (path, size, mtime_ns) -> (sha256 or None, records): a waiting file's count,
        # remembered while it does not change (lag is asked at every idle poll)
        self._counted: dict[tuple[str, int, int], tuple[str | None, int]] = {}

    def current(self) -> str | None:
        return current_claim(self.processing, CLAIM_RE.fullmatch)

    def received(self, sender: str, digest: str) -> str | None:
        """The name under which ``sender`` sent this content before, or None."""
        if digest.startswith("unread-"):
            return None
        prefix = f"{sender}~{digest}~"
        for folder in self.memory:
            for n in os.listdir(folder):
                if n.startswith(prefix) and not _DUP_RE.fullmatch(n):
                    return n[len(prefix):]
        return None

    def claim_next(self, on_duplicate: Callable[[str, str, int], None]) -> str | None:
        """Claim the oldest file waiting; set duplicates aside on the way."""
        for a in self.folders.arrivals():
            source = self.folders.drop / a.sender / a.name
            try:
                digest = hashlib.sha256(read_regular_file(source, self.max_file_bytes)) \
                    .hexdigest()
            except FileRefused:
                digest = f"unread-{a.mtime_ns}"
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise PartnerUnavailable(f"cannot read {source}: {exc.strerror}") from exc
            safe = a.name if SAFE_NAME.fullmatch(a.name) else UNNAMED
            claim = f"{a.sender}~{digest}~{safe}"
            try:
                earlier = self.received(a.sender, digest)
                if earlier is not None:
                    k = 1 + sum(1 for n in os.listdir(self.dup_folder)
                                if n.startswith(f"{claim}~dup"))
                    on_duplicate(claim, earlier, k)
                    move(source, self.dup_folder / f"{claim}~dup{k}")
                    self.folders.log.info("%s %s delivered %s again: same content as %s; "
                                          "no effect", self.folders.what, a.sender,
                                          bounds.show(a.name), bounds.show(earlier))
                    continue
                move(source, self.processing / claim)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise PartnerUnavailable(f"cannot claim {source}: {exc.strerror}") from exc
            self.folders.log.info("claimed %s of %s %s", bounds.show(a.name),
                                  self.folders.what, a.sender)
            return claim
        return None

    def read(self, claim: str) -> tuple[datetime, bytes]:
        """(recorded_at, bytes) of a claimed file; :class:`FileRefused` when it is not a
        regular file we may read, PartnerUnavailable when it cannot be read now."""
        path = self.processing / claim
        try:
            recorded = recorded_at_of(path)
            return recorded, read_regular_file(path, self.max_file_bytes)
        except FileRefused:
            raise
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {path}: {exc.strerror}") from exc

    def waiting(self) -> int:
        """The records the files waiting will be: one for a file refused whole (from a
        sender not configured, unreadable, badly named), none for a duplicate."""
        waiting = 0
        seen: set[tuple[str, str]] = set()
        arrivals = self.folders.arrivals()
        for a in arrivals:
            digest, records = self._records(a)
            if digest is not None:
                if (a.sender, digest) in seen or self.received(a.sender, digest) is not None:
                    continue  # a duplicate: set aside, no record
                seen.add((a.sender, digest))
            waiting += records
        live = {str(self.folders.drop / a.sender / a.name) for a in arrivals}
        self._counted = {k: v for k, v in self._counted.items() if k[0] in live}
        return waiting

    def _records(self, a: Arrival) -> tuple[str | None, int]:
        path = self.folders.drop / a.sender / a.name
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
            records = 1  # refused whole: one
            if SAFE_NAME.fullmatch(a.name) and a.name != UNNAMED \
                    and self.folders.refusal(a.sender) is None:
                records = self.count(a.name, data)
            self._counted[stamp] = (hashlib.sha256(data).hexdigest(), records)
        return self._counted[stamp]


class Numbered(Protocol):
    @property
    def number(self) -> int: ...  # the row's line in its file


def mine(position: Any, claim: str) -> dict[str, Any]:
    """The part of the checkpoint ``position`` about ``claim`` ({} when it is another's)."""
    return position if isinstance(position, dict) and position.get("file") == claim else {}


def claimed_records(claim: str, rows: Sequence[Numbered] | None, position: Any,
                    max_records: int, raw: Callable[[Any], bytes],
                    refusal: Callable[[], tuple[Any, bytes]]) -> list[PartnerRecord] | None:
    """The next records of the claimed file after ``position``: its rows, keyed
    ``<claim>:<row>`` with the bytes ``raw`` keeps of each; ``rows`` None: the file
    refused whole, one record keyed ``<claim>``, position ``{"file": claim, "refused":
    true}``, whose data and bytes ``refusal`` gives. None when nothing of it is left to
    publish: the caller finishes it."""
    done = mine(position, claim)
    if rows is None:
        if done.get("refused"):
            return None
        data, whole = refusal()
        return [PartnerRecord(key=claim, position={"file": claim, "refused": True},
                              raw=whole, data=data)]
    after = int(done.get("row", 1))
    return [PartnerRecord(key=f"{claim}:{row.number}", position={"file": claim,
                                                                  "row": row.number},
                          raw=raw(row), data=row)
            for row in rows if row.number > after][:max_records] or None


def rows_left(claim: str | None, rows: Sequence[Numbered] | None, position: Any) -> int:
    """How many records of the claimed file :func:`claimed_records` will still give."""
    if claim is None:
        return 0
    done = mine(position, claim)
    if rows is None:
        return 0 if done.get("refused") else 1
    after = int(done.get("row", 1))
    return sum(1 for row in rows if row.number > after)


def load_pairs(data: bytes, header: tuple[str, str], key_re: re.Pattern[str],
               value_re: re.Pattern[str]) -> dict[str, str]:
    """A two-column CSV export (UTF-8, its header line first) as a mapping; ValueError
    naming the line that is wrong."""
    rows = csv.reader(data.decode("utf-8-sig").splitlines())
    if next(rows, None) != list(header):
        raise ValueError(f"line 1 must be the header {','.join(header)}")
    pairs = {}
    for number, row in enumerate(rows, start=2):
        if len(row) != 2 or not key_re.fullmatch(row[0]) or not value_re.fullmatch(row[1]):
            raise ValueError(f"line {number} is not {','.join(header)}")
        pairs[row[0]] = row[1]
    return pairs


class ReloadedExport:
    """A two-column export the bureau writes (a roster), read again when it changes."""

    def __init__(self, path: Path, header: tuple[str, str], key_re: re.Pattern[str],
                 value_re: re.Pattern[str]) -> None:
        self.path, self.header, self.key_re, self.value_re = path, header, key_re, value_re
        self._loaded: tuple[int, dict[str, str]] | None = None

    def get(self) -> dict[str, str]:
        try:
            stamp = self.path.stat().st_mtime_ns
            if self._loaded is None or self._loaded[0] != stamp:
                self._loaded = (stamp, load_pairs(self.path.read_bytes(), self.header,
                                                  self.key_re, self.value_re))
        except OSError as exc:
            raise PartnerUnavailable(f"cannot read {self.path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise PartnerUnavailable(f"{self.path}: {exc}; export it again") from exc
        return self._loaded[1]
