"""The test kit's harness over the Hong Kong assisting bodies' simulator.

The partner side is a folder tree under the work folder::

    share/inbox/       the bodies' drop folder (the connector's ``inbox``)
    share/receipts/    Foshan's receipts (``receipts``)
    hub/archive/       the connector's processing/, done/ and refused/ (``archive``)
    spool/             the JSON lines each batch was made from (kept for inspection)

:meth:`feed` runs ``python -m lifecert_dev.partners.hk_assist.simulator drop`` as a child
process, one batch per call, with batch ids that sort in feed order. :meth:`break_partner`
renames ``share/inbox`` away, as an unmounted share looks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from connectors.hk_assist import batchfile as bf
from lifecert_dev.partners.hk_assist import simulator
from lifecert_dev.testkit.harness import Event, SourceHarness

SIMULATOR = "lifecert_dev.partners.hk_assist.simulator"
MALFORMED_FIELD = "認證時間"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


class HkAssistHarness(SourceHarness):
    connector_kind = "hk-assist"
    carries = frozenset({("CertificationRecorded", "HK_AGENCY")})
    #: Records per batch file at most (a big feed becomes several batches, in order).
    batch_limit = 20_000

    def __init__(self, scan_interval: float = 0.2, agency: str = "HKFTU-KWUNTONG") -> None:
        """``agency``: the body whose exchange account this inbox is (the connector's
        ``agency``: it records every certification of the inbox as that body's)."""
        self.scan_interval = scan_interval
        self.agency = agency
        self.root: Path | None = None
        self._seq = 0

    # -- folders --------------------------------------------------------------------------
    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise RuntimeError("HkAssistHarness.start() was not called")
        return self.root.joinpath(*parts)

    @property
    def inbox(self) -> Path:
        return self._path("share", "inbox")

    @property
    def receipts(self) -> Path:
        return self._path("share", "receipts")

    @property
    def archive(self) -> Path:
        return self._path("hub", "archive")

    @property
    def _unmounted(self) -> Path:
        return self._path("share", "inbox.unmounted")

    # -- Harness ----------------------------------------------------------------------------
    def start(self, work_dir: Path) -> dict[str, Any]:
        self.root = work_dir
        for folder in (self.inbox, self.receipts, self.archive, self._path("spool")):
            folder.mkdir(parents=True, exist_ok=True)
        self._seq = len(list(self._path("spool").glob("*.jsonl")))
        return {"inbox": str(self.inbox), "receipts": str(self.receipts),
                "archive": str(self.archive), "scan_interval": self.scan_interval,
                "agency": self.agency}

    def own(self, events: Sequence[Event]) -> list[Event]:
        """``events`` as this body reports them: certified by its own agency."""
        return [{**e, "agency_id": self.agency} for e in events]

    def stop(self) -> None:
        if self.root is not None and self._unmounted.exists():
            self.mend_partner()

    def break_partner(self) -> None:
        os.rename(self.inbox, self._unmounted)

    def mend_partner(self) -> None:
        os.rename(self._unmounted, self.inbox)

    def feed(self, events: Sequence[Event]) -> None:
        for start in range(0, len(events), self.batch_limit):
            self.drop(events[start:start + self.batch_limit])

    def feed_in_progress(self, events: Sequence[Event]) -> Callable[[], None]:
        """A batch half copied to the share: the bodies' upload writes
        ``.HKASSIST_<id>.csv.part`` (no trailer yet) and renames it when complete."""
        self._seq += 1
        batch_id = f"{self._seq:08d}"
        lines = [json.dumps(e, ensure_ascii=False, default=_jsonable) for e in events]
        self._path("spool", f"{batch_id}.jsonl").write_text("".join(f"{t}\n" for t in lines),
                                                            encoding="utf-8")
        data = simulator.batch_bytes(batch_id, simulator.rows_of(lines, "feed_in_progress"))
        part = self.inbox / f".{bf.file_name(batch_id)}.part"
        part.write_bytes(data[:len(data) // 2])

        def finish() -> None:
            with part.open("ab") as fh:
                fh.write(data[len(data) // 2:])
            os.rename(part, self.inbox / bf.file_name(batch_id))

        return finish

    def feed_malformed(self) -> str:
        event = {"type": "CertificationRecorded", "recorded_at": "2017-05-02T10:00:00+08:00",
                 "certification_id": "HKF2-BAD-1", "retiree_id": "FS000000001",
                 "channel": "HK_AGENCY", "agency_id": "HKFTU-KWUNTONG",
                 "performed_at": "2017-04-28T09:30:00+08:00"}
        self.drop([event], "--malform", f"1:{MALFORMED_FIELD}")
        return MALFORMED_FIELD

    def feed_hostile(self) -> list[str]:
        """One batch, valid as a file, whose record lines a careless or hostile sender
        could write (built here byte by byte: the simulator writes only sane lines)."""
        ok = ["HKF2-17-H{n}", "FS000000001", "張三", "2017-04-28T09:30:00+08:00",
              "HKFTU-KWUNTONG", "2017-05-02T10:00:00+08:00"]
        lines: list[tuple[bytes, str]] = []

        def line(n: int, column: int, value: str | bytes, hint: str) -> None:
            fields = [f.format(n=n).encode(bf.ENCODING) for f in ok]
            fields[column] = value if isinstance(value, bytes) else value.encode(bf.ENCODING)
            lines.append((b",".join(fields) + bf.EOL, hint))

        line(1, 0, "HKF2-17\x01H1", "certification_id")
        line(2, 1, "FS 000000001", "retiree_id")
        line(3, 2, b"\x80\xff", "(name)")
        line(4, 3, "0001-01-01T00:00:00+08:00", "performed_at")
        line(5, 5, "9999-12-31T23:59:59-10:00", "reported_at")
        line(6, 2, "張" * 100_000, "(name)")
        line(7, 4, "HKFTU-\x1bKWUNTONG", "agency_id")
        line(8, 1, "K654321(A)", "retiree_id")
        self._seq += 1
        batch_id = f"{self._seq:08d}"
        self._path("spool", f"{batch_id}.jsonl").write_text("", encoding="utf-8")
        records = b"".join(raw for raw, _ in lines)
        simulator.drop(self.inbox, batch_id, bf.encode_batch(batch_id, records))
        return [hint for _, hint in lines]

    # -- the simulator ------------------------------------------------------------------------
    def drop(self, events: Sequence[Event], *options: str, batch_id: str | None = None) -> str:
        """Drop one batch of ``events`` through the simulator (``options`` are passed on,
        e.g. ``--corrupt count``) under the next batch id, or ``batch_id`` (to re-drop a
        used one); returns the batch id."""
        self._seq += 1
        spool = self._path("spool", f"{self._seq:08d}.jsonl")
        batch_id = batch_id or f"{self._seq:08d}"
        with spool.open("w", encoding="utf-8") as f:
            for event in events:
                f.write(json.dumps(event, ensure_ascii=False, default=_jsonable))
                f.write("\n")
        argv = [sys.executable, "-m", SIMULATOR, "drop", "--inbox", str(self.inbox),
                "--batch-id", batch_id, *options, str(spool)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ))
        if done.returncode != 0:
            raise RuntimeError(f"hk-assist simulator failed (exit {done.returncode}) dropping "
                               f"batch {batch_id}: {done.stderr.strip()}")
        return batch_id
