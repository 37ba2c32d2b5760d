"""The simulated consular system (China Consular app back end) and its test-kit harness
(connector: connectors/consular_app)."""
