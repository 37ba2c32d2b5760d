"""The community office's simulator, for the test kit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lifecert_dev.testkit.harness import Event, SourceHarness

SIMULATOR = "lifecert_dev.partners.community_office.simulator"


class CommunityOfficeHarness(SourceHarness):
    connector_kind = "community-office"
    carries = frozenset({("CertificationRecorded", "ASSISTING_AGENCY")})

    def start(self, work_dir: Path) -> dict[str, Any]:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.dir = work_dir
        self.log_file = work_dir / "offices.csv"
        self.log_file.touch()
        return {"log_file": str(self.log_file)}

    def stop(self) -> None:
        pass

    def _append(self, content: str, *raw: str) -> None:
        batch = self.dir / "batch.jsonl"
        batch.write_text(content, encoding="utf-8")
        subprocess.run([sys.executable, "-m", SIMULATOR, "append", *raw, str(self.log_file),
                        str(batch)], check=True)

    def feed(self, events: Sequence[Event]) -> None:
        self._append("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))

    def feed_in_progress(self, events: Sequence[Event]) -> Callable[[], None]:
        """The desk application caught mid-line: the simulator writes the lines of
        ``events`` up to the middle of the last one; the returned function writes the rest."""
        scratch = self.dir / "in-progress.csv"
        scratch.unlink(missing_ok=True)
        batch = self.dir / "in-progress.jsonl"
        batch.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                         encoding="utf-8")
        subprocess.run([sys.executable, "-m", SIMULATOR, "append", str(scratch), str(batch)],
                       check=True)
        content = scratch.read_bytes()
        cut = len(content) - len(content.rstrip(b"\n").rsplit(b"\n", 1)[-1]) // 2 - 1
        head, tail = self.dir / "head.csv", self.dir / "tail.csv"
        head.write_bytes(content[:cut])
        tail.write_bytes(content[cut:])
        subprocess.run([sys.executable, "-m", SIMULATOR, "append", "--raw", str(self.log_file),
                        str(head)], check=True)

        def finish() -> None:
            subprocess.run([sys.executable, "-m", SIMULATOR, "append", "--raw",
                            str(self.log_file), str(tail)], check=True)

        return finish

    def feed_malformed(self) -> str:
        self._append("C-bad,R-1,yesterday,2017-04-03T10:00:00+08:00,OFFICE-7\n", "--raw")
        return "performed_at"

    def feed_hostile(self) -> list[str]:
        times = "2017-04-02T10:00:00+08:00,2017-04-03T10:00:00+08:00"
        lines = [
            (f"C-h1\x00,R-1,{times},OFFICE-7\n".encode(), "certification_id"),
            (f"C-h2,R 1\x1b[2J,{times},OFFICE-7\n".encode(), "retiree_id"),
            (b"C-h3,R-3,0001-01-01T00:00:00+08:00,2017-04-03T10:00:00+08:00,OFFICE-7\n",
             "performed_at"),
            (b"C-h4,R-4,2017-04-02T10:00:00+08:00,9999-12-31T23:59:59-10:00,OFFICE-7\n",
             "recorded_at"),
            (f"C-h5,R-\xff\xfe,{times},OFFICE-7\n".encode("latin-1"), "UTF-8"),
            (f"C-h6,{'R' * 100_000},{times},OFFICE-7\n".encode(), "retiree_id"),
            (f"C-h7,R-7,{times},\u202eOFFICE-7\n".encode(), "agency_id"),
        ]
        batch = self.dir / "hostile.csv"
        batch.write_bytes(b"".join(line for line, _ in lines))
        subprocess.run([sys.executable, "-m", SIMULATOR, "append", "--raw", str(self.log_file),
                        str(batch)], check=True)
        return [hint for _, hint in lines]

    def break_partner(self) -> None:
        self.log_file.rename(self.log_file.with_suffix(".away"))

    def mend_partner(self) -> None:
        self.log_file.with_suffix(".away").rename(self.log_file)
