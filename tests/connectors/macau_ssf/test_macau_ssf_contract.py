"""Both Macau SSF connectors pass the connector test kit, against the real broker and SSF's
simulator running as its own process (HTTPS with client certificates). "Partner down" is
the simulator process stopped, then started again on the same port with its state."""

from __future__ import annotations

import pytest

from lifecert_dev.partners.macau_ssf.harness import MacauSsfHarness, MacauSsfResultsHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import SinkContract, SourceContract

pytestmark = pytest.mark.stack


class TestMacauSsfSource(SourceContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> MacauSsfHarness:
        return MacauSsfHarness(break_mode="stop")


class TestMacauSsfResultsSink(SinkContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self) -> MacauSsfResultsHarness:
        return MacauSsfResultsHarness(break_mode="stop")
