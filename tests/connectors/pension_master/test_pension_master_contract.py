"""The connector test kit's contract for the pension master connector and its simulated
master database, run against the real broker and PostgreSQL cluster."""

from __future__ import annotations

import pytest

from lifecert_dev.partners.pension_master.harness import PensionMasterHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import SourceContract

pytestmark = pytest.mark.stack


class TestPensionMaster(SourceContract):
    @pytest.fixture
    def harness(self, stack: StackStatus) -> PensionMasterHarness:
        return PensionMasterHarness(stack.postgres_dsn)
