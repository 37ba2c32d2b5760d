"""Both Guangdong connectors pass the connector test kit, against the real broker and the
provincial system's simulator running as its own process.

The kit's "partner down" test stops the source's simulator process (connections refused;
started again on the same port with its state kept) and makes the sink's answer HTTP 503;
test_guangdong_connector.py covers the other fault modes at the hooks."""

from __future__ import annotations

import pytest

from lifecert_dev.partners.guangdong.harness import GuangdongHarness, GuangdongResultsHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import SinkContract, SourceContract

pytestmark = pytest.mark.stack


class TestGuangdongSource(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> GuangdongHarness:
        return GuangdongHarness(break_mode="stop")


class TestGuangdongResultsSink(SinkContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> GuangdongResultsHarness:
        return GuangdongResultsHarness(break_mode="503")
