"""The simulated payment system and its test-kit harness (its connector:
connectors/payment_ledger)."""
