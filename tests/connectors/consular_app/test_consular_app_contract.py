"""The consular-app connector passes the connector test kit against the real broker, with
the consular system's simulator serving its signed case feed over HTTPS as a real process
(the kit's "partner down" stops that process). Our own tests: a case pushed twice, a case
signed by another key, a malformed case and a case from a mission the partner directory
does not list, each with its reason on the dead-letter topic
while the feed flows on."""

from __future__ import annotations

import pytest

from lifecert.pipeline.topics import CONSULAR_CASES, DEAD_LETTERS
from lifecert_dev.partners.consular_app.harness import ConsularAppHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import INSTANCE, Kit, SourceContract, wait_for
from lifecert_dev.testkit.samples import sample_events

pytestmark = pytest.mark.stack


class TestConsularApp(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> ConsularAppHarness:
        return ConsularAppHarness()

    def test_duplicate_push_bad_signature_and_malformed_case(self, kit: Kit) -> None:
        harness = kit.harness
        assert isinstance(harness, ConsularAppHarness)
        events = sample_events(harness.carries, 6, seed=31)
        harness.push(events[:3])
        harness.push(events[:1])  # the consular system pushes case 1 again
        harness.push(events[3:6], "--bad-signature", "1", "--malform", "2:mission.type")
        # a mission the partner directory does not list (connectors/consular_app/missions.toml)
        harness.push([{**events[2], "case_id": "LS-UNLISTED", "mission_id": "CN-EMB-ZZ",
                       "mission_kind": "EMBASSY", "country": "ZZ"}])
        proc = kit.connector()
        cases = lambda: kit.read(CONSULAR_CASES)  # noqa: E731
        wait_for("5 cases and 3 dead letters",
                 lambda: len(cases()) >= 5 and len(kit.read(DEAD_LETTERS)) >= 3, proc)
        assert proc.stop() == 0, proc.log_tail()
        got = [c["case_id"] for c in cases()]
        assert sorted(got) == sorted([e["case_id"] for e in events[:3]]
                                     + [events[0]["case_id"], events[5]["case_id"]])
        assert all(c["type"] == "ConsularCaseReceived" for c in cases())
        letters = sorted(kit.read(DEAD_LETTERS), key=lambda d: d["source_position"])
        assert [d["source_position"] for d in letters] == ["5", "6", "8"]
        assert "signature does not verify" in letters[0]["reason"]
        assert "field mission.type: 'PALACE'" in letters[1]["reason"]
        assert "'CN-EMB-ZZ' is not a mission of the partner directory" in letters[2]["reason"]
        assert all(d["stage"] == f"connector:{INSTANCE}" for d in letters)
