"""The simulated ministry off-site system and its test-kit harness (its connector:
connectors/ministry_offsite)."""
