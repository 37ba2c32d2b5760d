"""The test kit's harness over the district home-visit teams' simulator.

The partner side is a folder tree under the work folder::

    share/drop/<team>/   each team's folder (the connector's ``drop``)
    hub/archive/         the connector's processing/ and done/
    hub/review/          the death review queue (the death-registers connector's ``review``)
    spool/               the JSON lines each file was made from

:meth:`feed` groups consecutive events of one team and one ``recorded_at`` into one file
and runs the simulator's ``report`` as a child process for each. The kit checks the
HomeVisitReported events on lifecert.home-visit-reports (one per row); an ALIVE row's
certification goes to the input log besides. :meth:`break_partner` renames ``share/drop``
away (an unmounted share).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.home_visits.batch import HEADER
from lifecert.events.catalogue import Event
from lifecert.events.time import SHANGHAI
from lifecert_dev.partners.home_visits.simulator import team_of
from lifecert_dev.testkit.harness import SourceHarness
from lifecert_dev.testkit.samples import START

SIMULATOR = "lifecert_dev.partners.home_visits.simulator"
PER_FILE = 4
DISTRICTS = ("CHANCHENG", "NANHAI", "SHUNDE", "GAOMING", "SANSHUI")
# The connector's `teams`: a team per district, and the kit's two teams of bad files.
TEAMS = {**{team_of(d): d for d in DISTRICTS}, "HV-BAD": "CHANCHENG", "HV-HOSTILE": "NANHAI"}


def home_visit_events(count: int, seed: int, per_file: int = PER_FILE) -> list[Event]:
    """HomeVisitReported events as teams report them: ``per_file`` rows of one team per
    file (one ``recorded_at``, whole seconds), outcomes mostly ALIVE."""
    rng = random.Random(seed)
    at = START + timedelta(days=seed % 30)
    out: list[Event] = []
    for start in range(0, count, per_file):
        at += timedelta(minutes=rng.randint(1, 90), seconds=rng.randint(0, 59))
        team = team_of(DISTRICTS[(start // per_file + seed) % len(DISTRICTS)])
        for n in range(start, min(count, start + per_file)):
            visited = at.date() - timedelta(days=rng.randint(0, 20))
            out.append({"type": "HomeVisitReported", "recorded_at": at.isoformat(),
                        "retiree_id": f"KIT{seed}-{n:05d}", "team_id": team,
                        "visit_id": f"V{seed}-{n:05d}", "visited_on": visited.isoformat(),
                        "outcome": ("ALIVE", "ALIVE", "NOT_FOUND", "ALIVE", "DECEASED")[n % 5]})
    return out


class HomeVisitsHarness(SourceHarness):
    connector_kind = "home-visits"
    carries = frozenset({("HomeVisitReported", None)})
    topic_role = "home_visit_reports"

    def __init__(self, scan_interval: float = 0.2) -> None:
        self.scan_interval = scan_interval
        self.root: Path | None = None
        self._seq = 0

    def _path(self, *parts: str) -> Path:
        if self.root is None:
            raise RuntimeError("HomeVisitsHarness.start() was not called")
        return self.root.joinpath(*parts)

    @property
    def drop_root(self) -> Path:
        return self._path("share", "drop")

    @property
    def review(self) -> Path:
        return self._path("hub", "review")

    @property
    def archive(self) -> Path:
        return self._path("hub", "archive")

    def start(self, work_dir: Path) -> dict[str, Any]:
        self.root = work_dir
        for folder in (self.drop_root, self.archive, self.review, self._path("spool")):
            folder.mkdir(parents=True, exist_ok=True)
        self._seq = len(list(self._path("spool").glob("*.jsonl")))
        if not self.roster.exists():
            self.roster.write_text("retiree_id,district\n", encoding="utf-8")
        return {"drop": str(self.drop_root), "review": str(self.review),
                "archive": str(self.archive), "teams": dict(TEAMS),
                "roster": str(self.roster), "scan_interval": self.scan_interval}

    @property
    def roster(self) -> Path:
        """The bureau's export ``retiree_id,district``: the harness adds each retiree a
        team reports as one of the team's district before the team's file is written."""
        return self._path("hub", "roster.csv")

    def enrol(self, retirees: Sequence[str], district: str) -> None:
        with self.roster.open("a", encoding="utf-8") as fh:
            fh.writelines(f"{r},{district}\n" for r in retirees)

    def stop(self) -> None:
        if self.root is not None and self._path("share", "drop.unmounted").exists():
            self.mend_partner()

    def break_partner(self) -> None:
        os.rename(self.drop_root, self._path("share", "drop.unmounted"))

    def mend_partner(self) -> None:
        os.rename(self._path("share", "drop.unmounted"), self.drop_root)

    def report(self, events: Sequence[Event], *extra: str, enrol: bool = True) -> None:
        """Run the simulator for one file of ``events`` (one team); ``enrol``: first add
        its retirees to the roster as of the team's district."""
        self._seq += 1
        district = TEAMS.get(events[0]["team_id"])
        if district is not None and enrol:
            self.enrol([e["retiree_id"] for e in events], district)
        spool = self._path("spool", f"{self._seq:05d}.jsonl")
        spool.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                         encoding="utf-8")
        subprocess.run([sys.executable, "-m", SIMULATOR, "report", "--drop",
                        str(self.drop_root), "--team", events[0]["team_id"], "--name",
                        f"visits-{self._seq:05d}.csv", *extra, str(spool)],
                       check=True, timeout=120)

    def feed(self, events: Sequence[Event]) -> None:
        group: list[Event] = []
        for event in events:
            if group and (event["team_id"], event["recorded_at"]) != \
                    (group[0]["team_id"], group[0]["recorded_at"]):
                self.report(group)
                group = []
            group.append(event)
        if group:
            self.report(group)

    def feed_malformed(self) -> str:
        at = datetime(2017, 5, 2, 10, 0, tzinfo=SHANGHAI).isoformat()
        event = {"type": "HomeVisitReported", "recorded_at": at, "retiree_id": "FS000000001",
                 "team_id": "HV-BAD", "visit_id": "V-BAD-1", "visited_on": "2017-04-28",
                 "outcome": "ALIVE"}
        self.report([event], "--malform", "2:visited_on")
        return "visited_on"

    def feed_hostile(self) -> list[str]:
        """One file, valid as a file, whose rows a careless or hostile team could write
        (built here byte by byte: the simulator writes only sane rows)."""
        good = ["V-H{n}", "FS00000000{n}", "2017-04-28", "ALIVE", "", "", ""]
        rows: list[tuple[bytes, str]] = []

        def row(n: int, column: str, value: str | bytes, hint: str) -> None:
            cells = [c.format(n=n).encode() for c in good]
            index = HEADER.index(column)
            cells[index] = value if isinstance(value, bytes) else value.encode()
            rows.append((b",".join(cells) + b"\r\n", hint))

        row(1, "visit_id", "V\x01H1", "visit_id")
        row(2, "retiree_id", "FS 000000002", "retiree_id")
        row(3, "visited_on", "0001-01-01", "visited_on")
        row(4, "visited_on", "9999-12-31", "visited_on")
        row(5, "address", "佛山" * 100_000, "address")
        row(6, "phone", "call me\x1b[2J", "phone")
        row(7, "result", "MAYBE", "result")
        row(8, "date_of_death", "2017-04-01", "date_of_death")
        row(9, "visited_on", "2017-02-30", "visited_on")
        header = ",".join(HEADER).encode() + b"\r\n"
        self._seq += 1
        self.enrol([f"FS00000000{n}" for n in range(1, 10)], TEAMS["HV-HOSTILE"])
        folder = self.drop_root / "HV-HOSTILE"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"visits-{self._seq:05d}.csv"
        path.write_bytes(header + b"".join(r for r, _ in rows))
        stamp = datetime(2017, 5, 2, 10, 0, tzinfo=SHANGHAI).timestamp()
        os.utime(path, (stamp, stamp))
        return [hint for _, hint in rows]
