"""The demo's district home-visit teams: the door of the campaign's HOME_VISIT
certifications (lifecert_dev.partners.systems, ``HOME_VISITS``).

Each certification the campaign file holds becomes a row ALIVE of its team's results file
(the format of docs/partners/home-visits.md), written into the team's folder of the share
the home-visits connector reads: the team is the certification's agency (the generator's
``FS-<district>-HOMEVISIT``, or the district's second team ``...-B``), the visit id its
certification id, the visit's day its ``performed_at`` as a day in Asia/Shanghai (the
files carry a date, not a time: the demo compares it as for the employers' files), the
file's modification time its ``recorded_at``. The connector's ``teams`` are the
campaign's districts' teams; the
bureau's ``roster`` (retiree_id,district) gets each visited retiree as of the team's
district before the team's file is written, rewritten whole (never read half-written).

The files are written by the simulator's own functions in this process, as the demo's
``visit`` teams are (a child process per file would cost the demo minutes); the
connector, which reads them, runs apart as everywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from lifecert.events.catalogue import Event
from lifecert.events.time import local_date
from lifecert_dev.partners.home_visits import simulator
from lifecert_dev.partners.home_visits.harness import DISTRICTS, HomeVisitsHarness


def campaign_team(district: str) -> str:
    """The agency the generator gives a district's home-visit certifications."""
    return f"FS-{district}-HOMEVISIT"


# Each district's team, and its second team ``-B`` (the generator's rule-11 clash: the same
# visit id reported by another team of the district).
TEAMS = {team: d for d in DISTRICTS for team in (campaign_team(d), f"{campaign_team(d)}-B")}


class HomeVisitTeams(HomeVisitsHarness):
    """The harness over the teams' share, fed the campaign's HOME_VISIT certifications."""

    carries = frozenset({("CertificationRecorded", "HOME_VISIT")})

    def __init__(self, scan_interval: float = 0.1) -> None:
        super().__init__(scan_interval)
        self.districts: dict[str, str] = {}  # the roster: retiree -> district
        # The file's event ids the connector publishes nothing for: the campaign's resend
        # of a visit (a new event id, the same row) is the team's file sent again, which
        # the connector knows by its content; replay judges it (DUPLICATE).
        self.absorbed: list[str] = []
        self.sent: set[tuple[str, tuple[tuple[str, ...], ...]]] = set()

    def start(self, work_dir: Path) -> dict[str, Any]:
        settings = super().start(work_dir)
        self.districts = {}
        return {**settings, "teams": dict(TEAMS)}

    def feed(self, events: Sequence[Event]) -> None:
        """One file per run of certifications of one team recorded at one time."""
        group: list[Event] = []
        for event in events:
            if group and (event["agency_id"], event["recorded_at"]) != \
                    (group[0]["agency_id"], group[0]["recorded_at"]):
                self._write(group)
                group = []
            group.append(event)
        if group:
            self._write(group)

    def _write(self, certifications: Sequence[Event]) -> None:
        team = str(certifications[0]["agency_id"])
        if team not in TEAMS:
            raise ValueError(f"HOME_VISIT certification {certifications[0]['certification_id']}"
                             f": agency {team!r} is none of the demo's teams "
                             f"({', '.join(TEAMS)})")
        self._enrol_all([str(c["retiree_id"]) for c in certifications], TEAMS[team])
        reports = [{"type": "HomeVisitReported", "recorded_at": c["recorded_at"],
                    "retiree_id": c["retiree_id"], "team_id": team,
                    "visit_id": c["certification_id"], "outcome": "ALIVE",
                    "visited_on": local_date(_aware(c["performed_at"])).isoformat()}
                   for c in certifications]
        content = (team, tuple((str(r["visit_id"]), str(r["retiree_id"]), r["visited_on"])
                               for r in reports))
        if content in self.sent:
            self.absorbed.extend(str(c["event_id"]) for c in certifications)
        self.sent.add(content)
        self._seq += 1
        simulator.report(self.drop_root, team, reports, name=f"visits-{self._seq:05d}.csv")

    def _enrol_all(self, retirees: list[str], district: str) -> None:
        if all(self.districts.get(r) == district for r in retirees):
            return
        self.districts.update((r, district) for r in retirees)
        temp = self.roster.with_name(".roster.csv.part")
        temp.write_text("retiree_id,district\n" + "".join(
            f"{r},{d}\n" for r, d in sorted(self.districts.items())), encoding="utf-8")
        os.replace(temp, self.roster)


def _aware(value: object) -> datetime:
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError(f"performed_at {value!r} has no offset")
    return at
