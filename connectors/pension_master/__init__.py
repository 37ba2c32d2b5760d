"""Connector 1: the Foshan pension master system (the bureau's own core system), source of
RetireeEnrolled and PensionAmountChanged.

- ``connector.py``: :class:`PensionMasterSource` reads the master's transactional outbox
  (PostgreSQL, LISTEN/NOTIFY plus polling), in commit-safe order, and why that order;
- ``mapping.py``: an outbox row in the master's own shape -> a lifecert event, or the
  precise reason it cannot be one;
- ``codes.py``: the master's code tables (insurance types, residence, districts...);
- ``schema.sql``: the master's outbox tables, as the connector reads them.

The simulated master database and its command (``python -m
lifecert_dev.partners.pension_master.simulator init|apply|refuse|accept``), and its harness
for the test kit and the demo, are lifecert-dev's.
"""
