"""The simulated community-office system and its test-kit harness (connector:
connectors/examples/community_office, the worked example of docs/connectors.md)."""
