"""The connector test kit's contract for the pension master connector and its simulated
master database, run against the real broker and PostgreSQL cluster."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from connectors.sdk import registry
from connectors.sdk.base import SourceConnector
from lifecert_dev.partners.pension_master.harness import PensionMasterHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import BATCH, Kit, SourceContract

pytestmark = pytest.mark.stack


class TestPensionMaster(SourceContract):
    @pytest.fixture
    def harness(self, stack: StackStatus) -> PensionMasterHarness:
        return PensionMasterHarness(stack.postgres_dsn)

    def test_the_walk_waits_for_rows_held_back_by_an_older_transaction(
        self, kit: Kit, stack: StackStatus,
    ) -> None:
        """The outbox holds a committed row back while any older transaction in the
        cluster runs (connector.py), so the contract's direct walk of the hooks must poll
        again as the runner does. A clean-clone CI run failed it with "0 events mapped for
        12 partner records" while other tests wrote to the shared cluster."""
        harness = kit.harness
        assert isinstance(harness, PensionMasterHarness)
        older = psycopg2.connect(stack.postgres_dsn)
        try:
            with older.cursor() as cur:
                cur.execute("SELECT pg_current_xact_id()")  # an xid older than the feed's
            fed = self.expected(harness, 12, seed=7)
            harness.feed(fed)
            connector = registry.load(harness.connector_kind)("walk", kit.settings)
            assert isinstance(connector, SourceConnector)
            connector._open()
            try:
                assert connector._poll(None, BATCH) == [], \
                    "the fed rows must wait for the older transaction"
                ends = threading.Timer(1.0, older.commit)
                ends.start()
                try:
                    self._walk(connector, harness, len(fed))
                finally:
                    ends.join()
            finally:
                connector._close()
        finally:
            older.close()
