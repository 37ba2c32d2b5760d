"""The simulated Guangdong cross-region system and its test-kit harness (its connector:
connectors/guangdong)."""
