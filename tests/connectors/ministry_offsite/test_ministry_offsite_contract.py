"""The ministry off-site connector passes the connector test kit, against the real broker,
with batch files dropped by the ministry simulator (a real process) into an inbox folder;
the kit's "partner down" test renames the inbox away (an unmounted share).

Tests of our own run in the kit's world too, through ``lifecert connectors run``: what a
refused batch, a re-dropped name and a malformed line look like on the dead-letter topic
and in the receipts; and a link, a FIFO and a citizen id number in a GB18030 line."""

from __future__ import annotations

import json
import os

import pytest

from connectors.ministry_offsite import batchfile as bf
from lifecert.events.personal import open_raw
from lifecert.keystore.postgres import open_keystore
from lifecert.pipeline.topics import DEAD_LETTERS, EVENTS
from lifecert_dev.partners.ministry_offsite.harness import MinistryOffsiteHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import INSTANCE, Kit, SourceContract, wait_for
from lifecert_dev.testkit.samples import sample_events

pytestmark = pytest.mark.stack


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
        assert _raw(refused).startswith(bf.HEADER.encode(bf.ENCODING))
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

    def test_a_link_a_fifo_and_a_citizen_id_never_leave_and_the_connector_goes_on(
            self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, MinistryOffsiteHarness)
        secret = kit.work_dir / "hub-secret.csv"
        secret.write_bytes(b"SECRET-OF-THE-HUB")
        (harness.inbox / bf.file_name("00000000-A")).symlink_to(secret)
        os.mkfifo(harness.inbox / bf.file_name("00000000-B"))
        number = "44010219500101123X"  # after a four-byte GB18030 character
        line = bf.csv_line(("MOHRSS-ID-1", "FS000000001", f"𠮷{number}", "yesterday",
                            "HB-WUHAN-SIB", "2017-04-05T01:00:00+08:00"))
        temp = harness.inbox / ".id.part"
        temp.write_bytes(bf.encode_batch("00000000-C", bf.encode_records([line])))
        temp.rename(harness.inbox / bf.file_name("00000000-C"))
        events = sample_events(harness.carries, 2, seed=11)
        harness.drop(events)
        proc = kit.connector()
        published = lambda: [e for e in kit.read(EVENTS) if e["type"] != "ClockTick"]  # noqa: E731
        wait_for("2 events and 3 dead letters",
                 lambda: len(published()) >= 2 and len(kit.read(DEAD_LETTERS)) >= 3, proc)
        assert proc.stop() == 0, proc.log_tail()
        assert len(published()) == 2
        letters = {json.loads(d["source_position"])["file"]: d for d in kit.read(DEAD_LETTERS)}
        assert sorted(letters) == [bf.file_name(f"00000000-{x}") for x in "ABC"]
        assert "is a symbolic link, not a regular file" in letters[bf.file_name("00000000-A")][
            "reason"]
        assert "is a FIFO (named pipe)" in letters[bf.file_name("00000000-B")]["reason"]
        assert ("𠮷" + "*" * 18).encode(bf.ENCODING) in _raw(letters[bf.file_name("00000000-C")])
        log = (kit.work_dir / "connector.log").read_bytes()
        assert b"dead letter: " in log  # the log was written
        for output in [log, *(json.dumps(d, default=repr).encode() for d in letters.values()),
                       *(d["value"] for d in letters.values()),
                       *(_raw(d) for d in letters.values())]:
            assert b"SECRET-OF-THE-HUB" not in output
            assert number.encode() not in output
        assert list(harness.inbox.iterdir()) == []


def _raw(letter: dict) -> bytes:
    """The raw record of a connector's dead letter, opened (a source seals it)."""
    keys = open_keystore()
    try:
        raw = open_raw(letter["value"], keys)
    finally:
        keys.close()
    assert raw is not None
    return raw
