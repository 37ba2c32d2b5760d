"""The home-visits connector passes the connector test kit against the real broker, with
results files written by the district teams' simulator (a real process) into per-team
folders; the kit checks the HomeVisitReported events on lifecert.home-visit-reports (one
per row) and its "partner down" test renames the drop folder away.

Tests of our own in the kit's world, through ``lifecert connectors run``: ALIVE is a
HOME_VISIT certification (with the contact update sealed when the team wrote a phone or
an address), DECEASED waits in the death review queue and is never a DeathRecorded;
a malformed row is refused with its reason and the rest flows on, without the phone or
address in any log line or dead letter; the same file delivered twice has one effect."""

from __future__ import annotations

import os
from typing import Any

import pytest

from connectors.death_registers import review
from lifecert.events.personal import is_sealed, reveal
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert_dev.partners.home_visits.harness import HomeVisitsHarness, home_visit_events
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import Kit, SourceContract, wait_for
from lifecert_dev.testkit.harness import SourceHarness

pytestmark = pytest.mark.stack

PHONE, ADDRESS = "13800138000", "佛山市顺德区大良街道秘密路 8 号"
AT = "2017-05-02T10:00:00+08:00"


class TestHomeVisits(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> HomeVisitsHarness:
        return HomeVisitsHarness()

    def expected(self, harness: SourceHarness, count: int, seed: int) -> list[dict[str, Any]]:
        return home_visit_events(count, seed)

    def test_outcomes_contact_sealed_deaths_reviewed_bad_row_refused(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, HomeVisitsHarness)

        def visit(n: int, outcome: str, **extra: str) -> dict[str, Any]:
            return {"type": "HomeVisitReported", "recorded_at": AT,
                    "retiree_id": f"FS00000010{n}", "team_id": "HV-SHUNDE",
                    "visit_id": f"V-{n}", "visited_on": "2017-04-28", "outcome": outcome,
                    **extra}

        harness.report([visit(1, "ALIVE", phone=PHONE, address=ADDRESS),
                        visit(2, "NOT_FOUND"),
                        visit(3, "DECEASED", date_of_death="2017-04-20"),
                        visit(4, "ALIVE", phone=PHONE),  # line 5: malformed below
                        visit(5, "ALIVE")],
                       "--malform", "5:visited_on")
        proc = kit.connector()
        wait_for("4 reports and a dead letter",
                 lambda: len(kit.read("home_visit_reports")) >= 4
                 and len(kit.read(DEAD_LETTERS)) >= 1, proc)
        assert proc.stop() == 0, proc.log_tail()

        reports = kit.read("home_visit_reports")
        assert sorted((e["visit_id"], e["outcome"]) for e in reports) == [
            ("V-1", "ALIVE"), ("V-2", "NOT_FOUND"), ("V-3", "DECEASED"), ("V-5", "ALIVE")]
        inputs = kit.read(EVENTS)
        certs = [e for e in inputs if e["type"] == "CertificationRecorded"]
        assert sorted((e["certification_id"], e["channel"], e["agency_id"]) for e in certs) \
            == [("V-1", "HOME_VISIT", "HV-SHUNDE"), ("V-5", "HOME_VISIT", "HV-SHUNDE")]
        assert not [e for e in inputs if e["type"] == "DeathRecorded"], \
            "a team's report of a death is never a DeathRecorded on its own"
        [contact] = [e for e in inputs if e["type"] == "ContactDetailsUpdated"]
        assert is_sealed(contact["phone"]) and is_sealed(contact["address"])
        keys = open_keystore()
        try:
            assert reveal(contact, "phone", keys) == PHONE
            assert reveal(contact, "address", keys) == ADDRESS
        finally:
            keys.close()
        [pending] = review.listing(harness.review)
        assert (pending["candidates"], pending["source"], pending["date_of_death"]) == \
            (["FS000000103"], "HOME_VISIT", "2017-04-20")

        [letter] = kit.read(DEAD_LETTERS)
        assert "line 5: visited_on" in letter["reason"]
        log = (kit.work_dir / "connector.log").read_text(encoding="utf-8")
        for secret in (PHONE, ADDRESS, "秘密"):
            assert secret not in letter["reason"] and secret not in log
            assert secret.encode() not in (letter["value"] or b"")

    def test_a_team_reports_only_its_district_from_its_own_configured_folder(
            self, kit: Kit) -> None:
        """A row of a retiree of another district (by the roster) is refused, the rest of
        the file flows on; a file in the folder of a team not configured is refused whole,
        and nothing of it is published."""
        harness = kit.harness
        assert isinstance(harness, HomeVisitsHarness)

        def visit(team: str, n: int) -> dict[str, Any]:
            return {"type": "HomeVisitReported", "recorded_at": AT,
                    "retiree_id": f"FS00000020{n}", "team_id": team, "visit_id": f"V-D{n}",
                    "visited_on": "2017-04-28", "outcome": "ALIVE"}

        harness.enrol(["FS000000201"], "SHUNDE")
        harness.enrol(["FS000000202"], "NANHAI")
        harness.report([visit("HV-SHUNDE", 1), visit("HV-SHUNDE", 2)], enrol=False)
        harness.enrol(["FS000000203"], "SHUNDE")
        harness.report([visit("HV-ROGUE", 3)])
        proc = kit.connector()
        wait_for("a report and 2 dead letters",
                 lambda: len(kit.read("home_visit_reports")) >= 1
                 and len(kit.read(DEAD_LETTERS)) >= 2, proc)
        assert proc.stop() == 0, proc.log_tail()
        assert [e["visit_id"] for e in kit.read("home_visit_reports")] == ["V-D1"]
        assert [e["certification_id"] for e in kit.read(EVENTS)
                if e["type"] == "CertificationRecorded"] == ["V-D1"]
        reasons = sorted(d["reason"] for d in kit.read(DEAD_LETTERS))
        assert any("team HV-SHUNDE" in r and "line 3: retiree_id FS000000202 is not a "
                   "retiree of district SHUNDE" in r and "NANHAI" not in r
                   for r in reasons), reasons
        assert any("team HV-ROGUE refused as a whole" in r and "the folder HV-ROGUE is not "
                   "the folder of a team configured (setting `teams`" in r
                   for r in reasons), reasons

    def test_a_file_delivered_twice_has_one_effect(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, HomeVisitsHarness)
        events = home_visit_events(5, seed=21, per_file=5)
        harness.feed(events)
        [first] = (harness.drop_root / events[0]["team_id"]).iterdir()
        data = first.read_bytes()
        proc = kit.connector()
        wait_for("5 reports", lambda: len(kit.read("home_visit_reports")) >= 5, proc)
        again = first.parent / "visits (2).csv"  # the team uploads the same file again
        again.write_bytes(data)
        done = harness.archive / "done"
        wait_for("the duplicate set aside",
                 lambda: any(n.endswith("~dup1") for n in os.listdir(done)), proc)
        assert proc.stop() == 0, proc.log_tail()
        assert len(kit.read("home_visit_reports")) == 5
        alive = sum(1 for e in events if e["outcome"] == "ALIVE")
        assert len([e for e in kit.read(EVENTS) if e["type"] == "CertificationRecorded"]) \
            == alive
        assert len(review.listing(harness.review)) == \
            sum(1 for e in events if e["outcome"] == "DECEASED")
        assert kit.read(DEAD_LETTERS) == []
