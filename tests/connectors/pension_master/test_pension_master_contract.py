"""The connector test kit's contract for the pension master connector and its simulated
master database, run against the real broker and PostgreSQL cluster."""

from __future__ import annotations

import pytest

from connectors.pension_master.harness import PensionMasterHarness
from connectors.testkit.contract import SourceContract
from lifecert.stack import StackStatus

pytestmark = pytest.mark.stack


class TestPensionMaster(SourceContract):
    @pytest.fixture
    def harness(self, stack: StackStatus) -> PensionMasterHarness:
        return PensionMasterHarness(stack.postgres_dsn)
