"""The community office's simulator, for the test kit."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connectors.testkit.harness import Event, SourceHarness

SIMULATOR = "connectors.examples.community_office.simulator"


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

    def feed_malformed(self) -> str:
        self._append("C-bad,R-1,yesterday,2017-04-03T10:00:00+08:00,OFFICE-7\n", "--raw")
        return "performed_at"

    def break_partner(self) -> None:
        self.log_file.rename(self.log_file.with_suffix(".away"))

    def mend_partner(self) -> None:
        self.log_file.with_suffix(".away").rename(self.log_file)
