"""The payment-ledger sink passes the connector test kit, against the real broker and a
ledger database of its own in the running PostgreSQL server (created by the simulator's
command line; the kit's "partner down" refuses connections to that database only)."""

from __future__ import annotations

import pytest

from lifecert_dev.partners.payment_ledger.harness import PaymentLedgerHarness
from lifecert_dev.stack import StackStatus
from lifecert_dev.testkit.contract import SinkContract

pytestmark = pytest.mark.stack


class TestPaymentLedgerSink(SinkContract):
    @pytest.fixture
    def connector_kit_bootstrap(self, stack: StackStatus) -> str:
        return stack.kafka_bootstrap

    @pytest.fixture
    def harness(self, stack: StackStatus) -> PaymentLedgerHarness:
        return PaymentLedgerHarness(stack.postgres_dsn)
