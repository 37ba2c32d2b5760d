"""Worked examples of the connector guide (docs/connectors.md)."""
