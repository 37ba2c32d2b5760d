"""The hk-assist connector passes the connector test kit, against the real broker, with
batch files dropped by the bodies' simulator (a real process) into an inbox folder; the
kit's "partner down" test renames the inbox away (an unmounted share).

Our own tests run in the kit's world too, through ``lifecert connectors run``: a file
delivered twice has one effect (a DUPLICATE receipt, no event, no dead letter); a refused
file (no byte-order mark, bad checksum, a used name with other content) and a malformed
line land on the dead-letter topic with their reasons while the rest flows on; the
receipts say the same, line by line; an identity card number never leaves."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.hk_assist import batchfile as bf
from lifecert.events.personal import open_raw
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert_dev.partners.hk_assist.harness import HkAssistHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import INSTANCE, Kit, SourceContract, wait_for
from lifecert_dev.testkit.harness import SourceHarness
from lifecert_dev.testkit.samples import sample_events

pytestmark = pytest.mark.stack


def _published(kit: Kit) -> list[dict]:
    return [e for e in kit.read(EVENTS) if e["type"] != "ClockTick"]


def _receipts(harness: HkAssistHarness) -> dict[str, tuple[str, int, int]]:
    out = {}
    for path in harness.receipts.glob("*.receipt.csv"):
        data = path.read_bytes()
        assert data.startswith(bf.BOM), path
        receipt = bf.read_receipt(data)
        out[path.name] = (receipt.status, receipt.accepted, receipt.rejected)
    return out


class TestHkAssist(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> HkAssistHarness:
        return HkAssistHarness()

    def expected(self, harness: SourceHarness, count: int, seed: int) -> list[dict[str, Any]]:
        """The kit's samples as one body reports them: its own certifications."""
        assert isinstance(harness, HkAssistHarness)
        return harness.own(super().expected(harness, count, seed))

    def test_a_file_delivered_twice_has_one_effect(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, HkAssistHarness)
        events = harness.own(sample_events(harness.carries, 5, seed=21))
        first = harness.drop(events[:4])
        proc = kit.connector()
        wait_for("4 events", lambda: len(_published(kit)) >= 4, proc)
        harness.drop(events[:4], batch_id=first)  # the same file, sent again
        later = harness.drop(events[4:])  # and the connector goes on after it
        wait_for("the later batch's receipt",
                 lambda: (harness.receipts / bf.receipt_name(bf.file_name(later))).exists(),
                 proc)
        assert proc.stop() == 0, proc.log_tail()
        assert sorted(e["certification_id"] for e in _published(kit)) == \
            sorted(e["certification_id"] for e in events)
        assert all(e["channel"] == "HK_AGENCY" for e in _published(kit))
        assert kit.read(DEAD_LETTERS) == []
        assert _receipts(harness) == {
            bf.receipt_name(bf.file_name(first)): (bf.ACCEPTED, 4, 0),
            f"HKASSIST_{first}.redrop-1.receipt.csv": (bf.DUPLICATE, 0, 0),
            bf.receipt_name(bf.file_name(later)): (bf.ACCEPTED, 1, 0),
        }
        dup = bf.read_receipt((harness.receipts / f"HKASSIST_{first}.redrop-1.receipt.csv")
                              .read_bytes())
        assert bf.receipt_name(bf.file_name(first)) in dup.reason
        assert list(harness.inbox.iterdir()) == []

    def test_each_refusal_and_rejection_with_its_reason(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, HkAssistHarness)
        events = harness.own(sample_events(harness.carries, 9, seed=23))
        good = harness.drop(events[:3])
        no_bom = harness.drop(events[3:4], "--corrupt", "no-bom")
        corrupt = harness.drop(events[4:5], "--corrupt", "checksum")
        partial = harness.drop(events[5:8], "--malform", "2:養老金編號")
        proc = kit.connector()
        wait_for("5 events and 3 dead letters",
                 lambda: len(_published(kit)) >= 5 and len(kit.read(DEAD_LETTERS)) >= 3, proc)
        harness.drop(events[8:9], batch_id=good)  # a used name, other content
        wait_for("the re-drop's dead letter", lambda: len(kit.read(DEAD_LETTERS)) >= 4, proc)
        assert proc.stop() == 0, proc.log_tail()

        assert sorted(str(e["certification_id"]) for e in _published(kit)) == \
            sorted(str(e["certification_id"]) for e in [*events[:3], events[5], events[7]])
        letters = {json.loads(d["source_position"])["file"]: d for d in kit.read(DEAD_LETTERS)}
        assert sorted(letters) == sorted([bf.file_name(no_bom), bf.file_name(corrupt),
                                          bf.file_name(partial),
                                          f"HKASSIST_{good}.redrop-1.csv"])
        assert "byte-order mark" in letters[bf.file_name(no_bom)]["reason"]
        assert "checksum" in letters[bf.file_name(corrupt)]["reason"]
        line = letters[bf.file_name(partial)]
        assert json.loads(line["source_position"]) == {"file": bf.file_name(partial), "line": 3}
        assert "line 3, field 養老金編號 (retiree_id)" in line["reason"]
        assert "identity card number" in line["reason"]
        assert b"A123456(7)" not in _raw(line)
        assert "was already received" in letters[f"HKASSIST_{good}.redrop-1.csv"]["reason"]
        assert all(d["stage"] == f"connector:{INSTANCE}" for d in letters.values())
        assert _receipts(harness) == {
            bf.receipt_name(bf.file_name(good)): (bf.ACCEPTED, 3, 0),
            bf.receipt_name(bf.file_name(no_bom)): (bf.REFUSED, 0, 0),
            bf.receipt_name(bf.file_name(corrupt)): (bf.REFUSED, 0, 0),
            bf.receipt_name(bf.file_name(partial)): (bf.PARTIAL, 2, 1),
            f"HKASSIST_{good}.redrop-1.receipt.csv": (bf.REFUSED, 0, 0),
        }
        lines = bf.read_receipt((harness.receipts / bf.receipt_name(bf.file_name(partial)))
                                .read_bytes()).lines
        assert [(r.line, r.result) for r in lines] == \
            [(2, bf.ACCEPTED), (3, bf.REJECTED), (4, bf.ACCEPTED)]
        assert "identity card number" in lines[1].reason
        assert list(harness.inbox.iterdir()) == []


    def test_a_line_naming_another_agency_is_refused(self, kit: Kit) -> None:
        """The agency is the inbox's body (the connector's ``agency``), never what a line
        says: a line naming another body is a dead letter and REJECTED on the receipt, and
        the body's own lines flow on."""
        harness = kit.harness
        assert isinstance(harness, HkAssistHarness)
        events = harness.own(sample_events(harness.carries, 3, seed=25))
        events[1] = {**events[1], "agency_id": "HAD-WCH"}
        batch = harness.drop(events)
        proc = kit.connector()
        wait_for("2 events and a dead letter",
                 lambda: len(_published(kit)) >= 2 and len(kit.read(DEAD_LETTERS)) >= 1, proc)
        assert proc.stop() == 0, proc.log_tail()
        published = _published(kit)
        assert sorted(e["certification_id"] for e in published) == \
            sorted([events[0]["certification_id"], events[2]["certification_id"]])
        assert {e["agency_id"] for e in published} == {harness.agency}
        [letter] = kit.read(DEAD_LETTERS)
        assert json.loads(letter["source_position"]) == {"file": bf.file_name(batch), "line": 3}
        assert ("line 3, field 協助機構代碼 (agency_id): names agency 'HAD-WCH' but this inbox "
                f"is {harness.agency}'s") in letter["reason"]
        assert _receipts(harness) == {bf.receipt_name(bf.file_name(batch)): (bf.PARTIAL, 2, 1)}


def _raw(letter: dict) -> bytes:
    """The raw record of a connector's dead letter, opened (a source seals it)."""
    keys = open_keystore()
    try:
        raw = open_raw(letter["value"], keys)
    finally:
        keys.close()
    assert raw is not None
    return raw
