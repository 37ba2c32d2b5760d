"""The test kit's harness over the managing units' simulator.

The partner side is a folder tree under the work folder::

    share/drop/<unit>/   each unit's drop folder (the connector's ``drop``)
    share/outbox/<unit>/ the result files (``outbox``)
    hub/archive/         the connector's processing/, done/ and refused/
    spool/               the JSON lines each batch was made from

:meth:`feed` groups consecutive events of one unit (``agency_id``) and one ``recorded_at``
into one batch and runs the simulator's ``drop`` as a child process for each, cycling
through the three formats units send (GBK CSV, UTF-8 CSV, XLSX), with the batch file's
modification time set to that ``recorded_at``. The format carries a date of certification,
not a time: :func:`employer_events` makes the kit's sample events fit it (performed at
00:00 of their day, Asia/Shanghai; a few events per unit and batch).
:meth:`break_partner` renames ``share/drop`` away, as an unmounted share looks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any

from connectors.employer_files import batch as eb
from lifecert.events.catalogue import Event
from lifecert.events.time import SHANGHAI
from lifecert_dev.partners.employer_files import simulator
from lifecert_dev.testkit.harness import SourceHarness
from lifecert_dev.testkit.samples import sample_events

SIMULATOR = "lifecert_dev.partners.employer_files.simulator"
PER_BATCH = 5


def employer_events(count: int, seed: int, per_batch: int = PER_BATCH) -> list[Event]:
    """The kit's sample certifications as units report them: a date, not a time, and
    ``per_batch`` rows of one unit per batch file (one ``recorded_at``)."""
    events = sample_events({("CertificationRecorded", "EMPLOYER_BATCH")}, count, seed)
    out = []
    for start in range(0, len(events), per_batch):
        group = events[start:start + per_batch]
        recorded = datetime.fromisoformat(group[-1]["recorded_at"]).replace(microsecond=0)
        unit = f"UNIT-{seed}-{start // per_batch % 4}"
        for event in group:
            day = datetime.fromisoformat(event["performed_at"]).astimezone(SHANGHAI).date()
            out.append({**event, "agency_id": unit, "recorded_at": recorded.isoformat(),
                        "performed_at": datetime.combine(day, time(0), SHANGHAI).isoformat()})
    return out


class EmployerFilesHarness(SourceHarness):
    connector_kind = "employer-files"
    carries = frozenset({("CertificationRecorded", "EMPLOYER_BATCH")})

    def __init__(self, scan_interval: float = 0.2, roster: dict[str, str] | None = None) -> None:
        self.scan_interval = scan_interval
        self.roster = roster
        self.root: Path | None = None
        self._seq = 0

    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise RuntimeError("EmployerFilesHarness.start() was not called")
        return self.root.joinpath(*parts)

    @property
    def drop_root(self) -> Path:
        return self._path("share", "drop")

    @property
    def outbox(self) -> Path:
        return self._path("share", "outbox")

    @property
    def archive(self) -> Path:
        return self._path("hub", "archive")

    @property
    def units_file(self) -> Path:
        return self._path("hub", "units.txt")

    def allow(self, unit: str) -> None:
        """Give ``unit`` a folder: add it to the connector's ``units`` file."""
        known = self.units_file.read_text(encoding="utf-8").splitlines()
        if unit not in known:
            with self.units_file.open("a", encoding="utf-8") as fh:
                fh.write(unit + "\n")

    def start(self, work_dir: Path) -> dict[str, Any]:
        self.root = work_dir
        for folder in (self.drop_root, self.outbox, self.archive, self._path("spool")):
            folder.mkdir(parents=True, exist_ok=True)
        self._seq = len(list(self._path("spool").glob("*.jsonl")))
        # The bureau's list of the units given a folder: each unit the harness drops for
        # is added before its file (the connector reads the list again when it changes).
        if not self.units_file.exists():
            self.units_file.write_text("# units given a folder on the share\n",
                                       encoding="utf-8")
        settings: dict[str, Any] = {"drop": str(self.drop_root), "outbox": str(self.outbox),
                                    "archive": str(self.archive),
                                    "units": str(self.units_file),
                                    "scan_interval": self.scan_interval}
        if self.roster is not None:
            roster = self._path("roster.csv")
            roster.write_text("retiree_id,managing_unit\n" + "".join(
                f"{r},{u}\n" for r, u in sorted(self.roster.items())), encoding="utf-8")
            settings["roster"] = str(roster)
        return settings

    def stop(self) -> None:
        if self.root is not None and self._path("share", "drop.unmounted").exists():
            self.mend_partner()

    def break_partner(self) -> None:
        os.rename(self.drop_root, self._path("share", "drop.unmounted"))

    def mend_partner(self) -> None:
        os.rename(self._path("share", "drop.unmounted"), self.drop_root)

    def feed(self, events: Sequence[Event]) -> None:
        group: list[Event] = []
        for event in events:
            if group and (event["agency_id"], event["recorded_at"]) != \
                    (group[0]["agency_id"], group[0]["recorded_at"]):
                self.drop(group)
                group = []
            group.append(event)
        if group:
            self.drop(group)

    def feed_in_progress(self, events: Sequence[Event]) -> Callable[[], None]:
        """One batch of ``events`` (one unit, one ``recorded_at``) half uploaded: the
        share's upload page writes ``.<name>.part`` and renames it when complete."""
        self._seq += 1
        fmt = simulator.FORMATS[self._seq % len(simulator.FORMATS)]
        name = f"认证名单-{self._seq:05d}.{'xlsx' if fmt == 'xlsx' else 'csv'}"
        self.allow(events[0]["agency_id"])
        folder = self.drop_root / events[0]["agency_id"]
        folder.mkdir(parents=True, exist_ok=True)
        data = simulator.encode(simulator.rows_of(list(events), fmt), fmt)
        part = folder / f".{name}.part"
        part.write_bytes(data[:len(data) // 2])

        def finish() -> None:
            with part.open("ab") as fh:
                fh.write(data[len(data) // 2:])
            mtime = datetime.fromisoformat(events[0]["recorded_at"])
            ns = int(mtime.timestamp()) * 1_000_000_000
            os.utime(part, ns=(ns, ns))
            os.replace(part, folder / name)

        return finish

    def feed_malformed(self) -> str:
        event = {"type": "CertificationRecorded", "recorded_at": "2017-05-02T10:00:00+08:00",
                 "certification_id": "EB-BAD-1", "retiree_id": "FS000000001",
                 "channel": "EMPLOYER_BATCH", "agency_id": "UNIT-BAD",
                 "performed_at": "2017-04-28T00:00:00+08:00"}
        self.drop([event], "--malform", "1:认证日期", fmt="gbk-csv")
        return "certified_on"

    def feed_hostile(self) -> list[str]:
        """One GBK CSV batch, valid as a file, whose rows a careless or hostile unit could
        write (built here byte by byte: the simulator writes only sane rows)."""
        good = ["1", "EB-H{n}", "FS00000000{n}", "张三", simulator.made_up_citizen_id("x"),
                "2017/4/28"]
        rows: list[tuple[bytes, str]] = []

        def row(n: int, column: int, value: str | bytes, hint: str) -> None:
            cells = [c.format(n=n).encode("gbk") for c in good]
            cells[column] = value if isinstance(value, bytes) else value.encode("gbk")
            rows.append((b",".join(cells) + b"\r\n", hint))

        row(1, 1, "EB\x01H1", "certification_id")
        row(2, 2, "FS 000000002", "retiree_id")
        row(3, 3, b"\x80\xff", "gb18030")
        row(4, 5, "0001-01-01", "certified_on")
        row(5, 5, "9999-12-31", "certified_on")
        row(6, 3, "张" * 100_000, "name")
        row(7, 4, "440604193001010000", "citizen id")
        row(8, 4, "4.40604E+17", "citizen id")
        row(9, 5, "12345", "certified_on")
        header = ",".join(eb.HEADER).encode("gbk") + b"\r\n"
        self._seq += 1
        self.allow("UNIT-HOSTILE")
        simulator.drop(self.drop_root / "UNIT-HOSTILE", f"hostile-{self._seq:05d}.csv",
                       header + b"".join(raw for raw, _ in rows),
                       datetime(2017, 5, 2, 10, 0, tzinfo=SHANGHAI))
        return [hint for _, hint in rows]

    def drop(self, events: Sequence[Event], *options: str, fmt: str | None = None,
             name: str | None = None, allow: bool = True) -> Path:
        """Drop one batch of ``events`` (one unit, one ``recorded_at``) through the
        simulator; returns the file. ``allow=False``: into the folder of a unit not
        configured (not added to ``units``)."""
        self._seq += 1
        fmt = fmt or simulator.FORMATS[self._seq % len(simulator.FORMATS)]
        ext = "xlsx" if fmt == "xlsx" else "csv"
        name = name or f"认证名单-{self._seq:05d}.{ext}"
        unit = events[0]["agency_id"]
        if allow:
            self.allow(unit)
        spool = self._path("spool", f"{self._seq:08d}.jsonl")
        spool.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                         encoding="utf-8")
        argv = [sys.executable, "-m", SIMULATOR, "drop", "--drop", str(self.drop_root),
                "--unit", unit, "--name", name, "--format", fmt,
                "--mtime", events[0]["recorded_at"], *options, str(spool)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env=dict(os.environ))
        if done.returncode != 0:
            raise RuntimeError(f"employer simulator failed (exit {done.returncode}): "
                               f"{done.stderr.strip()}")
        return self.drop_root / unit / name

    def results(self) -> list[list[str]]:
        """Every result file's lines (the header first), in name order."""
        return [p.read_bytes().decode("utf-8-sig").splitlines()
                for p in sorted(self.outbox.rglob("*.result.csv"))]
