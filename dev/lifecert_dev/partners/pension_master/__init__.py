"""The simulated pension master system and its test-kit harness (its connector:
connectors/pension_master)."""
