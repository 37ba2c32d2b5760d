"""The test kit's harness over the mailroom clerk's simulator.

    share/register.jsonl   the mailroom register (the connector's ``register``)
    share/documents/       the scans, by SHA-256 (never read by the hub)

:meth:`feed` runs the simulator as a child process; :func:`mailroom_events` makes the
kit's sample forms look like the mailroom's (the stamping agency, a form number, a
postmark, arrival at the start of a day, the scan's hash). :meth:`break_partner` renames
``share`` away (an unmounted share).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from lifecert.events.catalogue import Event
from lifecert.events.time import SHANGHAI
from lifecert_dev.partners.mailroom.simulator import registration_of, scan_sha256
from lifecert_dev.testkit.harness import SourceHarness
from lifecert_dev.testkit.samples import sample_events

SIMULATOR = "lifecert_dev.partners.mailroom.simulator"


def mailroom_events(count: int, seed: int) -> list[Event]:
    out = []
    for n, event in enumerate(sample_events({("CertificationDocumentsReceived", None)},
                                            count, seed)):
        day = datetime.fromisoformat(event["received_at"]).astimezone(SHANGHAI).date()
        out.append({**event, "agency_id": f"CC-OFFICE-{n % 7}", "form_number": (1, 2, 4)[n % 3],
                    "postmarked_on": (day - timedelta(days=3)).isoformat() if n % 5 else None,
                    "received_at": datetime.combine(day, time(0), SHANGHAI).isoformat(),
                    "scan_sha256": scan_sha256(event["certification_id"])})
    return out


class MailroomHarness(SourceHarness):
    connector_kind = "mailroom"
    carries = frozenset({("CertificationDocumentsReceived", None)})

    def start(self, work_dir: Path) -> dict[str, Any]:
        self.root = work_dir
        self.share.mkdir(parents=True, exist_ok=True)
        self.register.touch()
        return {"register": str(self.register), "scan_interval": 0.2}

    @property
    def share(self) -> Path:
        return self.root / "share"

    @property
    def register(self) -> Path:
        return self.share / "register.jsonl"

    def stop(self) -> None:
        if (self.root / "share.unmounted").exists():
            self.mend_partner()

    def break_partner(self) -> None:
        os.rename(self.share, self.root / "share.unmounted")

    def mend_partner(self) -> None:
        os.rename(self.root / "share.unmounted", self.share)

    def feed(self, events: Sequence[Event]) -> None:
        spool = self.root / "spool.jsonl"
        spool.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                         encoding="utf-8")
        subprocess.run([sys.executable, "-m", SIMULATOR, "receive", "--register",
                        str(self.register), "--documents", str(self.share / "documents"),
                        str(spool)], check=True, timeout=120)

    def feed_in_progress(self, events: Sequence[Event]) -> Callable[[], None]:
        """The register as a reader on the mailroom's share sees a clerk's append that has
        not all landed yet: the lines of ``events``, the last one cut in half (no end)."""
        data = b"".join(registration_of(n, dict(e), self.share / "documents").line()
                        for n, e in enumerate(events, start=1))
        cut = len(data) - len(data.rsplit(b"\n", 2)[-2]) // 2 - 1
        with self.register.open("ab") as fh:
            fh.write(data[:cut])

        def finish() -> None:
            with self.register.open("ab") as fh:
                fh.write(data[cut:])

        return finish

    def _raw(self, lines: Sequence[bytes]) -> None:
        with self.register.open("ab") as fh:
            fh.write(b"".join(line + b"\n" for line in lines))

    @staticmethod
    def line(**changes: Any) -> bytes:
        values = {"v": 1, "registered_at": "2017-05-05T10:00:00+08:00",
                  "certification_id": "C-H", "agency_id": "CC-OFFICE-1",
                  "retiree_id": "FS000000001", "form_number": 1,
                  "postmarked_on": "2017-05-02", "received_at": "2017-05-05T00:00:00+08:00",
                  "scan_sha256": "0" * 64}
        values.update(changes)
        return json.dumps(values, ensure_ascii=False).encode()

    def feed_malformed(self) -> str:
        self._raw([self.line(postmarked_on="2017-05-09")])
        return "postmarked_on"

    def feed_hostile(self) -> list[str]:
        lines = [
            (self.line(certification_id="C-\x00H1"), "certification_id"),
            (self.line(retiree_id="FS 1\x1b[2J"), "retiree_id"),
            (self.line(agency_id="CC-\u202eOFFICE"), "agency_id"),
            (b'{"v": 1, "certification_id": "C-\xff\xfe"}', "UTF-8"),
            (self.line(received_at="0001-01-01T00:00:00+08:00"), "received_at"),
            (self.line(postmarked_on="9999-12-31"), "postmarked_on"),
            (self.line(form_number=2**70), "form_number"),
            (self.line(scan_sha256="../../etc/passwd"), "scan_sha256"),
            (b"[" * 100_000 + b"]" * 100_000, "bytes, at most"),
            (b"[" * 2000 + b"]" * 2000, "JSON"),
            (self.line(name="李秀英"), "unknown key"),
        ]
        self._raw([line for line, _ in lines])
        return [hint for _, hint in lines]
