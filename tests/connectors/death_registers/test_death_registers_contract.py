"""The connector test kit's contract for the death registers: the simulated offices drop
extracts, the simulated master system writes the roster, the connector runs as a process
against the real broker."""

from __future__ import annotations

import pytest

from lifecert_dev.partners.death_registers.harness import DeathRegistersHarness
from lifecert_dev.testkit.contract import SourceContract

pytestmark = pytest.mark.stack


class TestDeathRegisters(SourceContract):
    @pytest.fixture
    def harness(self) -> DeathRegistersHarness:
        return DeathRegistersHarness()
