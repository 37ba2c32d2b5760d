"""The ministry off-site connector passes the connector test kit, against the real broker,
with batch files dropped by the ministry simulator (a real process) into an inbox folder;
the kit's "partner down" test renames the inbox away (an unmounted share).

One test of our own runs in the kit's world too: what a refused batch, a re-dropped name
and a malformed line look like on the dead-letter topic and in the receipts, through
``lifecert connectors run``."""

from __future__ import annotations

import json

import pytest

from connectors.ministry_offsite import batchfile as bf
from connectors.ministry_offsite.harness import MinistryOffsiteHarness
from connectors.testkit.contract import INSTANCE, Kit, SourceContract, wait_for
from connectors.testkit.samples import sample_events
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert.stack import StackStatus


class TestMinistryOffsite(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> MinistryOffsiteHarness:
        return MinistryOffsiteHarness()

    def test_refusals_and_rejections_on_the_dead_letter_topic_and_in_receipts(
            self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, MinistryOffsiteHarness)
        events = sample_events(harness.carries, 7, seed=9)
        good = harness.drop(events[:3])
        corrupt = harness.drop(events[3:5], "--corrupt", "checksum")
        partial = harness.drop(events[5:7], "--malform", "2:fields")
        proc = kit.connector()
        published = lambda: [e for e in kit.read(EVENTS) if e["type"] != "ClockTick"]  # noqa: E731
        wait_for("4 events and 2 dead letters",
                 lambda: len(published()) >= 4 and len(kit.read(DEAD_LETTERS)) >= 2, proc)
        harness.drop(events[5:7], batch_id=good)  # the ministry sends a used name again
        wait_for("the re-drop's dead letter", lambda: len(kit.read(DEAD_LETTERS)) >= 3, proc)
        assert proc.stop() == 0, proc.log_tail()

        assert sorted(str(e["certification_id"]) for e in published()) == \
            sorted(str(e["certification_id"]) for e in events[:3] + events[5:6])
        letters = {json.loads(d["source_position"])["file"]: d for d in kit.read(DEAD_LETTERS)}
        assert sorted(letters) == sorted([bf.file_name(corrupt), bf.file_name(partial),
                                          f"MOHRSS_440600_{good}.redrop-1.csv"])
        refused = letters[bf.file_name(corrupt)]
        assert refused["key"] == bf.file_name(corrupt).encode()
        assert json.loads(refused["source_position"]) == {"file": bf.file_name(corrupt),
                                                          "refused": True}
        assert refused["value"].startswith(bf.HEADER.encode(bf.ENCODING))
        assert "batch refused as a whole" in refused["reason"]
        assert "checksum" in refused["reason"]
        line = letters[bf.file_name(partial)]
        assert json.loads(line["source_position"]) == {"file": bf.file_name(partial), "line": 3}
        assert "line 3: 5 fields, expected 6" in line["reason"]
        redrop = letters[f"MOHRSS_440600_{good}.redrop-1.csv"]
        assert "was already received" in redrop["reason"]
        assert all(d["stage"] == f"connector:{INSTANCE}" for d in letters.values())

        statuses = {}
        for path in harness.receipts.glob("*.receipt.csv"):
            receipt = bf.read_receipt(path.read_bytes())
            statuses[path.name] = (receipt.status, receipt.accepted, receipt.rejected)
        assert statuses == {
            bf.receipt_name(bf.file_name(good)): (bf.ACCEPTED, 3, 0),
            bf.receipt_name(bf.file_name(corrupt)): (bf.REFUSED, 0, 0),
            bf.receipt_name(bf.file_name(partial)): (bf.PARTIAL, 1, 1),
            f"MOHRSS_440600_{good}.redrop-1.receipt.csv": (bf.REFUSED, 0, 0),
        }
        assert list(harness.inbox.iterdir()) == []
