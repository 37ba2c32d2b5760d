"""The employer-files connector passes the connector test kit, against the real broker,
with batches (GBK CSV, UTF-8 CSV, XLSX in turn) dropped by the units' simulator (a real
process) into per-unit folders; the kit's "partner down" test renames the drop folder away
(an unmounted share). The kit's sample events are made to fit the format (a date, not a
time; a few rows of one unit per file): ``expected`` below.

Tests of our own in the kit's world, through ``lifecert connectors run``: the same file
delivered twice has one effect; a refused file and a refused row on the dead-letter topic
and in the unit's result file; the roster's unit check."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from lifecert.events.interchange import dumps
from lifecert.events.personal import open_raw
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert.replay import replay_lines
from lifecert_dev.partners.employer_files.harness import EmployerFilesHarness, employer_events
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import Kit, SourceContract, wait_for
from lifecert_dev.testkit.harness import SourceHarness

pytestmark = pytest.mark.stack


class TestEmployerFiles(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> EmployerFilesHarness:
        return EmployerFilesHarness(roster={"FS000000777": "UNIT-OTHER"})

    def expected(self, harness: SourceHarness, count: int, seed: int) -> list[dict[str, Any]]:
        return employer_events(count, seed)

    def test_a_file_delivered_twice_has_one_effect(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, EmployerFilesHarness)
        events = employer_events(5, seed=21)
        first = harness.drop(events, fmt="xlsx", name="名单.xlsx")
        data = first.read_bytes()
        proc = kit.connector()
        wait_for("5 events", lambda: len(_published(kit)) >= 5, proc)
        wait_for("the result file", lambda: len(harness.results()) == 1, proc)
        again = first.parent / "名单 (2).xlsx"  # the clerk uploads the same file again
        again.write_bytes(data)
        wait_for("the duplicate's result file", lambda: len(harness.results()) == 2, proc)
        assert proc.stop() == 0, proc.log_tail()
        assert len(_published(kit)) == 5
        assert kit.read(DEAD_LETTERS) == []
        texts = ["\n".join(lines) for lines in harness.results()]
        assert any("#END,名单.xlsx,ACCEPTED,5,5,0," in t for t in texts), texts
        assert any("REFUSED" in t and "already received as 名单.xlsx" in t for t in texts), texts

    def test_refused_file_and_rows_in_dead_letters_and_the_result_file(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, EmployerFilesHarness)
        events = employer_events(4, seed=22, per_batch=4)
        unit = events[0]["agency_id"]
        events[1] = {**events[1], "retiree_id": "FS000000777"}  # the roster: another unit's
        harness.drop(events, "--malform", "3:公民身份号码", fmt="gbk-csv", name="四月.csv")
        folder = harness.drop_root / unit
        (folder / "四月.xls").write_bytes(b"\xd0\xcf\x11\xe0 an old Excel 97 file")
        # A well-formed batch in the folder of a unit the bureau never configured (anyone
        # with write access to the share's root could make one): refused whole, unread.
        stranger = [{**e, "agency_id": "UNIT-STRANGER", "certification_id": f"EB-X{i}"}
                    for i, e in enumerate(events)]
        harness.drop(stranger, fmt="utf8-csv", name="stranger.csv", allow=False)
        proc = kit.connector()
        wait_for("2 events and 4 dead letters",
                 lambda: len(_published(kit)) >= 2 and len(kit.read(DEAD_LETTERS)) >= 4, proc)
        wait_for("two result files", lambda: len(harness.results()) == 2, proc)
        assert proc.stop() == 0, proc.log_tail()
        assert sorted(e["certification_id"] for e in _published(kit)) == \
            sorted(e["certification_id"] for i, e in enumerate(events) if i in (0, 3))
        reasons = sorted(d["reason"] for d in kit.read(DEAD_LETTERS))
        assert any("row 3: 养老金编号 (retiree_id) FS000000777 is not a retiree of unit" in r
                   for r in reasons), reasons
        assert any("row 4: 公民身份号码 (citizen id) is a number Excel shortened" in r
                   for r in reasons), reasons
        assert any("refused as a whole" in r and "neither CSV nor XLSX" in r for r in reasons)
        assert any("unit UNIT-STRANGER refused as a whole" in r and "the folder UNIT-STRANGER "
                   "is not the folder of a unit configured (setting `units`" in r
                   for r in reasons), reasons
        assert not any(e["agency_id"] == "UNIT-STRANGER" for e in _published(kit))
        assert not (harness.outbox / "UNIT-STRANGER").exists()  # no answer to a stranger
        assert [p.name.endswith("~stranger.csv") for p in (harness.archive / "refused")
                .iterdir() if "UNIT-STRANGER" in p.name] == [True]
        positions = [json.loads(d["source_position"]) for d in kit.read(DEAD_LETTERS)]
        assert sum(1 for p in positions if p.get("refused")) == 2
        for letter in kit.read(DEAD_LETTERS):
            assert b"4.40604E+17" not in letter["value"]  # sealed
            _ = _raw(letter)
        results = {lines[-1].split(",")[1]: lines for lines in harness.results()}
        assert results["四月.csv"][0] == "行号,认证编号,养老金编号,结果,原因"
        assert results["四月.csv"][-1] == "#END,四月.csv,PARTIAL,4,2,2,"
        assert results["四月.xls"][-1].startswith("#END,四月.xls,REFUSED,0,0,0,file type")
        assert sorted(p.name for p in folder.iterdir()) == []

    def test_end_to_end_the_fold_takes_what_the_units_sent(self, kit: Kit) -> None:
        """Through the real broker and the key store's PostgreSQL, then the campaign rules
        (the code the worker runs, replayed over what the connector published): a government
        retiree's certification counts, a regular retiree's is rejected by rule 3, another
        unit's retiree is refused at the door and never reaches the log."""
        harness = kit.harness
        assert isinstance(harness, EmployerFilesHarness)
        unit = "UNIT-E2E"
        rows = [("EB-E2E-1", "FS000000101"), ("EB-E2E-2", "FS000000102"),
                ("EB-E2E-3", "FS000000777")]
        harness.drop([{"type": "CertificationRecorded", "recorded_at": "2017-04-12T09:00:00+08:00",
                       "certification_id": cert, "retiree_id": retiree,
                       "channel": "EMPLOYER_BATCH", "agency_id": unit,
                       "performed_at": "2017-04-10T00:00:00+08:00"} for cert, retiree in rows],
                     fmt="xlsx")
        proc = kit.connector()
        wait_for("2 events and a dead letter",
                 lambda: len(_published(kit)) >= 2 and len(kit.read(DEAD_LETTERS)) >= 1, proc)
        assert proc.stop() == 0, proc.log_tail()
        enrolments = [_enrolled("FS000000101", "GOV_INSTITUTION", unit),
                      _enrolled("FS000000102", "URBAN_EMPLOYEE", None)]
        lines = [dumps(e) for e in enrolments] + [dumps(e) for e in _published(kit)]
        result = replay_lines(lines, until=dt.date(2017, 7, 1))
        assert result.statuses["FS000000101"] == "CERTIFIED"
        assert result.statuses["FS000000102"] == "SUSPENDED"
        assert [r["reason"] for r in result.rejections] == ["CHANNEL_NOT_ALLOWED"]
        assert "FS000000777" not in json.dumps([e["retiree_id"] for e in _published(kit)])


def _enrolled(retiree: str, scheme: str, unit: str | None) -> dict[str, Any]:
    return {"type": "RetireeEnrolled", "event_id": f"e2e-enrol-{retiree}",
            "recorded_at": "2017-03-01T09:00:00+08:00", "retiree_id": retiree,
            "name": "李秀英", "birth_date": "1940-02-03", "scheme": scheme,
            "category": "REGULAR", "residence": "FOSHAN", "district": "CHANCHENG",
            "country": None, "pension_start": "2000-01-01", "monthly_amount_fen": 300_000,
            "disabled": False, "managing_unit": unit}


def _published(kit: Kit) -> list[dict[str, Any]]:
    return [e for e in kit.read(EVENTS) if e["type"] != "ClockTick"]


def _raw(letter: dict[str, Any]) -> bytes:
    keys = open_keystore()
    try:
        raw = open_raw(letter["value"], keys)
    finally:
        keys.close()
    assert raw is not None
    return raw
