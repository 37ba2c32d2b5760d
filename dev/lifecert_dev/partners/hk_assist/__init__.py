"""The simulated Hong Kong assisting bodies and their test-kit harness (connector:
connectors/hk_assist)."""
